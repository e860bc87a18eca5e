// ClientConn and the PROXY protocol (docs/operations.md, "PROXY protocol"): on a listener
// with proxy_protocol: true each connection starts with a v1 or v2 header from the L4
// balancer in front; its source address is the client's for X-Forwarded-For, the access log
// and hash_key: client_ip. A connection without a valid header is closed, counted and
// logged. Toward upstreams with proxy_protocol: v1 | v2, the header this connection's
// exchange sends first.
#include <cstring>

#include <sys/socket.h>

#include "proxy/client_conn.hpp"
#include "proxy/net.hpp"
#include "proxy/upstream_pool.hpp"

namespace sy {
namespace {

ProxyAddress to_proxy_address(const sockaddr_storage& ss) {
    ProxyAddress a;
    if (ss.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
        a.family = ProxyAddress::Family::ipv4;
        std::memcpy(a.ip.data(), &in->sin_addr, 4);
        a.port = ntohs(in->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
        a.family = ProxyAddress::Family::ipv6;
        std::memcpy(a.ip.data(), &in6->sin6_addr, 16);
        a.port = ntohs(in6->sin6_port);
    }
    return a;
}

}  // namespace

void ClientConn::on_proxy_header_bytes(BufferPool::Buffer* buf, std::size_t len) {
    PendingProxyHeader& pending = *proxy_header_;
    // Every byte read is kept: what follows the header in the same read is the client's.
    // The header itself is bounded (kMaxProxyHeader), so this holds at most that plus a read.
    pending.bytes.append(buf->data(), len);
    buf->pool->give(buf);
    const ProxyHeader header = parse_proxy_header(pending.bytes);
    if (header.status == ProxyHeader::Status::need_more && pending.bytes.size() < kMaxProxyHeader) return;
    if (header.status != ProxyHeader::Status::ok) {
        g_stats.add(g_stats.proxy_protocol_errors);
        log_error("PROXY protocol: %s", header.reason != nullptr ? header.reason : "header too long");
        close();
        return;
    }
    if (header.source.family != ProxyAddress::Family::none) {
        http_->client_ip = header.source.ip_text();
        http_->pp_source = header.source;
        http_->pp_destination = header.destination;
    }
    // What came behind the header is the client's: TLS records or HTTP.
    std::string rest = pending.bytes.substr(header.length);
    const ServerTls* tls = pending.tls;
    proxy_header_.reset();
    transport_->stop_reading();
    start_tls(tls);
    if (closing_) return;
    if (tls_ != nullptr) {
        tls_->preload_ciphertext(rest);
        update_reading();
        return;
    }
    update_reading();
    if (!rest.empty()) on_client_bytes(rest.data(), rest.size());
}

std::string ClientConn::upstream_proxy_header() {
    const ProxyProtocolOut version = pool_->config().proxy_protocol;
    if (version == ProxyProtocolOut::off) return {};
    ProxyAddress source = http_->pp_source;
    ProxyAddress destination = http_->pp_destination;
    if (source.family == ProxyAddress::Family::none) {
        // The connection's own ends.
        uv_tcp_t* tcp = tls_ != nullptr ? tls_->tcp().tcp() : static_cast<TcpTransport*>(transport_)->tcp();
        sockaddr_storage peer{};
        sockaddr_storage local{};
        int peer_len = sizeof peer;
        int local_len = sizeof local;
        if (uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&peer), &peer_len) == 0 &&
            uv_tcp_getsockname(tcp, reinterpret_cast<sockaddr*>(&local), &local_len) == 0) {
            source = to_proxy_address(peer);
            destination = to_proxy_address(local);
        }
    }
    return version == ProxyProtocolOut::v1 ? proxy_header_v1(source, destination) : proxy_header_v2(source, destination);
}

}  // namespace sy
