// The configuration loader's section readers (routing/config_loader.cpp and, for the
// routes section, routing/config_routes.cpp). Internal to routing/.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "routing/config.hpp"
#include "routing/yaml_reader.hpp"

namespace sy::config_detail {

// Reads one section into `config`. Each takes the section's entry in its parent map.
class ConfigReader {
public:
    explicit ConfigReader(Reader& reader) : r_(reader) {}

    void read_root(const YAML::Node& root, Config& config);

private:
    void read_listen(const Entry& entry, Config& config);
    std::optional<ListenerTls> read_listener_tls(const Entry& entry, const std::string& config_file);
    std::optional<TlsCertificate> read_certificate(const Entry& cert, const Entry& key, const std::string& config_file);
    void read_workers(const Entry& entry, Config& config);
    void read_upstreams(const Entry& entry, Config& config);
    void read_upstream(const Entry& entry, UpstreamConfig& upstream);
    std::optional<UpstreamTls> read_upstream_tls(const Entry& entry);
    void read_balancing(const Fields& fields, UpstreamConfig& upstream);
    void read_health(const Entry& entry, HealthConfig& health);
    void read_routes(const Entry& entry, Config& config);
    void read_route(const Entry& entry, RouteConfig& route);
    void read_match(const Entry& entry, RouteMatch& match);
    void read_upgrade(const Entry& entry, UpgradeConfig& upgrade);
    void read_terminate(const Fields& fields, UpgradeConfig& upgrade);
    void read_timeouts(const Entry& entry, Timeouts& timeouts);
    void read_limits(const Entry& entry, Limits& limits);
    void read_tunnel(const Entry& entry, TunnelConfig& tunnel);
    void read_forwarding(const Entry& entry, ForwardingConfig& forwarding);
    void read_admin(const Entry& entry, Config& config);
    void read_access_log(const Entry& entry, AccessLogConfig& access_log);
    void resolve_upstreams(Config& config);
    void name_routes(Config& config);

    Reader& r_;
    std::string file_;  // the configuration file, for relative paths
    bool upstreams_read_ = false;          // the upstreams section was a map
    std::vector<YAML::Mark> route_upstream_marks_;  // per route, where `upstream` is
    std::vector<YAML::Mark> route_name_marks_;      // per route, where `name` is (null: unnamed)
};

}  // namespace sy::config_detail
