// The configuration model: what docs/configuration.md describes, after validation.
// Defaults here are the documented defaults.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sy {

using Millis = std::chrono::milliseconds;

// "host:port" or "[v6]:port". `host` holds the address without brackets.
struct Address {
    std::string host;
    std::uint16_t port = 0;
    bool is_ipv6 = false;
    std::string to_string() const;  // back to "host:port" / "[v6]:port"
};

// One certificate chain and its key, as read (and checked) at load time: a reload reads
// the files again.
struct TlsCertificate {
    std::string cert_file;
    std::string key_file;
    std::string cert_pem;
    std::string key_pem;
};

struct ListenerTls {
    std::vector<TlsCertificate> certificates;  // chosen by SNI; [0] is the default
    int min_version = 12;                      // 12 = TLS 1.2, 13 = TLS 1.3
};

struct ListenerConfig {
    Address address;
    std::optional<ListenerTls> tls;
    bool proxy_protocol = false;  // every connection starts with a PROXY v1/v2 header
};

// upstreams.<name>.proxy_protocol: a PROXY header sent to the servers first.
enum class ProxyProtocolOut { off, v1, v2 };

enum class Balance { round_robin, least_conn, hash };

// balance: hash picks the server by this part of the request (docs/upgrades.md,
// "Balancing long-lived connections").
struct HashKey {
    enum class Kind { client_ip, header, cookie, query };
    Kind kind = Kind::client_ip;
    std::string name;  // header (lower-cased), cookie or query parameter name
};

// sticky: an affinity cookie naming the server (without its address).
struct StickyConfig {
    std::string cookie;
    Millis max_age{3'600'000};
};

struct HealthCheck {
    std::string path = "/healthz";
    Millis interval{5000};
};

struct HealthConfig {
    std::uint32_t max_fails = 3;  // consecutive connect failures before a server is skipped
    Millis cooldown{10000};
    std::optional<HealthCheck> check;
};

// TLS toward the servers of a pool.
struct UpstreamTls {
    std::string ca_file;      // empty: the system trust store
    std::string ca_pem;       // its content, read at load
    std::string server_name;  // SNI and the name verified; empty: each server's host
    bool verify = true;
};

struct UpstreamConfig {
    std::string name;
    std::vector<Address> servers;
    std::optional<UpstreamTls> tls;
    Balance balance = Balance::round_robin;
    HashKey hash_key;              // with balance: hash
    std::optional<StickyConfig> sticky;
    std::uint32_t max_tunnels = 0; // per server, all workers together; 0 = no limit
    Millis slow_start{0};          // a server back from down is ramped up over this time
    ProxyProtocolOut proxy_protocol = ProxyProtocolOut::off;
    std::uint32_t keepalive = 32;  // idle pooled connections per worker
    HealthConfig health;
};

enum class OnDisallowed { strip, reject };

// upgrade.terminate: the proxy is the WebSocket server and the upstream a plain TCP service.
enum class Terminate { none, websocket };

struct UpgradeConfig {
    std::vector<std::string> allow;  // "name", "name/version" or "*", as written
    OnDisallowed on_disallowed = OnDisallowed::strip;
    bool require = false;
    Terminate terminate = Terminate::none;
    // With terminate: the Sec-WebSocket-Protocol values the proxy may select, in its order
    // of preference: "binary" and/or "base64" (websockify's).
    std::vector<std::string> subprotocols;
    std::uint64_t max_message = 1024 * 1024;  // with terminate: larger client messages close with 1009
    // Admission of new upgrades on the route, all workers together (0 = no limit): per
    // second (a bucket of one second's worth) and open tunnels.
    std::uint32_t max_rate = 0;
    std::uint32_t max_tunnels = 0;
};

struct RouteMatch {
    std::string host;               // "" = any; exact name or "*.suffix", lower-cased
    std::string path_prefix = "/";
    std::string upgrade;            // "" = any request; else only upgrade requests offering it
};

struct RouteConfig {
    std::string name;               // label in logs and metrics; "route<N>" (N from 1) when unset
    RouteMatch match;
    std::string upstream;           // name of the pool
    std::size_t upstream_index = 0; // index into Config::upstreams
    UpgradeConfig upgrade;
    int line = 0;                   // where the route starts in the file (for logs)
};

struct Timeouts {
    Millis request_header{10'000};
    Millis keepalive_idle{60'000};
    Millis upstream_connect{5'000};
    Millis upstream_response{60'000};
    Millis tunnel_idle{3'600'000};
    Millis shutdown_drain{30'000};
};

struct Limits {
    std::uint32_t max_connections = 10'000;
    std::size_t max_header_bytes = 32 * 1024;
    std::size_t max_headers = 100;
};

struct TunnelConfig {
    std::size_t buffer = 256 * 1024;
    bool splice = true;  // "auto" = true, "off" = false
};

struct ForwardingConfig {
    bool x_forwarded_for = true;
    bool x_forwarded_proto = true;
    bool via = false;
};

struct AdminConfig {
    Address address;
};

enum class AccessLogFormat { text, json };

struct AccessLogConfig {
    std::string path = "-";  // "-" = stdout, "off" = disabled, else a file path
    AccessLogFormat format = AccessLogFormat::text;
    bool enabled() const { return path != "off"; }
};

struct Config {
    std::string file;  // where it was loaded from
    std::vector<ListenerConfig> listen;
    unsigned workers = 1;  // "auto" resolves to the number of cores at load time
    std::vector<UpstreamConfig> upstreams;
    std::vector<RouteConfig> routes;
    Timeouts timeouts;
    Limits limits;
    TunnelConfig tunnel;
    ForwardingConfig forwarding;
    std::optional<AdminConfig> admin;
    AccessLogConfig access_log;
    std::string pid_file;  // "" = none
};

}  // namespace sy
