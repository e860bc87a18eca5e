// Validation of the configuration file (docs/configuration.md) into sy::Config.
// Every section reader reports what it finds wrong and goes on, so that one run shows
// every error in the file.
#include "routing/config_loader.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

#include "parser/tokens.hpp"
#include "routing/tls_files.hpp"
#include "routing/yaml_text.hpp"
#include "routing/config_reader.hpp"
#include "routing/yaml_reader.hpp"

namespace sy {

using config_detail::Entry;
using config_detail::Fields;
using config_detail::Reader;
using config_detail::quoted;

namespace config_detail {

constexpr unsigned kMaxWorkers = 1024;


void ConfigReader::read_root(const YAML::Node& root, Config& config) {
    file_ = config.file;
    if (!root.IsMap()) {
        r_.error(root.Mark(), "expected a map at the top level (with listen, upstreams and routes), got " +
                                  config_detail::describe(root));
        return;
    }
    const Fields fields =
        r_.fields(root, {"listen", "workers", "upstreams", "routes", "timeouts", "limits", "tunnel",
                         "forwarding", "admin", "access_log", "pid_file"});
    if (const Entry* e = r_.required(fields, root, "listen")) {
        read_listen(*e, config);
    }
    if (const Entry* e = fields.find("workers")) {
        read_workers(*e, config);
    }
    if (const Entry* e = r_.required(fields, root, "upstreams")) {
        read_upstreams(*e, config);
    }
    if (const Entry* e = r_.required(fields, root, "routes")) {
        read_routes(*e, config);
    }
    if (const Entry* e = fields.find("timeouts")) {
        read_timeouts(*e, config.timeouts);
    }
    if (const Entry* e = fields.find("limits")) {
        read_limits(*e, config.limits);
    }
    if (const Entry* e = fields.find("tunnel")) {
        read_tunnel(*e, config.tunnel);
    }
    if (const Entry* e = fields.find("forwarding")) {
        read_forwarding(*e, config.forwarding);
    }
    if (const Entry* e = fields.find("admin")) {
        read_admin(*e, config);
    }
    if (const Entry* e = fields.find("access_log")) {
        read_access_log(*e, config.access_log);
    }
    if (const Entry* e = fields.find("pid_file")) {
        if (auto path = r_.scalar(*e)) {
            if (path->empty()) {
                r_.error(e->value_mark(), "'pid_file' must not be empty (leave the key out for no pid file)");
            } else {
                config.pid_file = std::move(*path);
            }
        }
    }
    resolve_upstreams(config);
    name_routes(config);
}

void ConfigReader::read_workers(const Entry& entry, Config& config) {
    const auto text = r_.scalar(entry);
    if (!text) {
        return;
    }
    if (*text == "auto") {
        config.workers = std::max(1U, std::thread::hardware_concurrency());
        return;
    }
    const bool digits = !text->empty() && text->size() <= 4 &&
                        std::all_of(text->begin(), text->end(), [](char c) { return c >= '0' && c <= '9'; });
    const unsigned value = digits ? static_cast<unsigned>(std::stoul(*text)) : 0;
    if (value >= 1 && value <= kMaxWorkers) {
        config.workers = value;
        return;
    }
    r_.error(entry.value_mark(), "invalid value " + quoted(*text) +
                                     " for 'workers' (expected \"auto\" or an integer from 1 to " +
                                     std::to_string(kMaxWorkers) + ")");
}

void ConfigReader::read_upstreams(const Entry& entry, Config& config) {
    if (!r_.expect_map(entry)) {
        return;
    }
    upstreams_read_ = true;
    if (entry.value.size() == 0) {
        r_.error(entry.value_mark(), "'upstreams' needs at least one upstream");
        return;
    }
    for (const Entry& item : r_.entries(entry.value)) {
        UpstreamConfig upstream;
        upstream.name = item.key;
        if (upstream.name.empty()) {
            r_.error(item.key_node.Mark(), "an upstream needs a name");
        }
        read_upstream(item, upstream);
        config.upstreams.push_back(std::move(upstream));
    }
}

void ConfigReader::read_upstream(const Entry& entry, UpstreamConfig& upstream) {
    if (!r_.expect_map(entry)) {
        return;
    }
    const Fields fields = r_.fields(entry.value, {"servers", "balance", "hash_key", "sticky", "max_tunnels", "slow_start",
                                                  "keepalive", "health", "tls", "proxy_protocol"});
    const Entry* servers = fields.find("servers");
    if (servers == nullptr) {
        r_.error(entry.value_mark(), "upstream " + quoted(upstream.name) + " has no servers");
    } else if (r_.expect_list(*servers)) {
        if (servers->value.size() == 0) {
            r_.error(servers->value_mark(), "upstream " + quoted(upstream.name) + " has no servers");
        }
        for (const Entry& item : r_.items(*servers)) {
            if (auto address = r_.address(item)) {
                upstream.servers.push_back(std::move(*address));
            }
        }
    }
    read_balancing(fields, upstream);
    if (const Entry* e = fields.find("keepalive")) {
        if (auto value = r_.integer(*e, 0, UINT32_MAX)) {
            upstream.keepalive = static_cast<std::uint32_t>(*value);
        }
    }
    if (const Entry* e = fields.find("health")) {
        read_health(*e, upstream.health);
    }
    if (const Entry* e = fields.find("tls")) {
        upstream.tls = read_upstream_tls(*e);
    }
    if (const Entry* e = fields.find("proxy_protocol")) {
        if (auto index = r_.choice(*e, {"off", "v1", "v2"})) {
            upstream.proxy_protocol = *index == 0 ? ProxyProtocolOut::off
                                      : *index == 1 ? ProxyProtocolOut::v1
                                                    : ProxyProtocolOut::v2;
        }
    }
}

// upstreams.<name>.tls: ca (default: the system store), server_name, verify (default true).
std::optional<UpstreamTls> ConfigReader::read_upstream_tls(const Entry& entry) {
    if (!r_.expect_map(entry)) return std::nullopt;
    const Fields fields = r_.fields(entry.value, {"ca", "server_name", "verify"});
    UpstreamTls tls;
    if (const Entry* e = fields.find("ca")) {
        if (auto path = r_.scalar(*e)) {
            const std::size_t slash = file_.rfind('/');
            tls.ca_file = path->empty() || (*path)[0] == '/' || slash == std::string::npos
                              ? *path
                              : file_.substr(0, slash + 1) + *path;
            std::string error;
            if (auto pem = read_text_file(tls.ca_file, &error)) {
                tls.ca_pem = std::move(*pem);
                if (!check_ca_bundle(tls.ca_pem)) r_.error(e->value_mark(), "no PEM certificate in " + tls.ca_file);
            } else {
                r_.error(e->value_mark(), error);
            }
        }
    }
    if (const Entry* e = fields.find("server_name")) {
        if (auto name = r_.scalar(*e)) tls.server_name = *name;
    }
    if (const Entry* e = fields.find("verify")) {
        if (auto value = r_.boolean(*e)) tls.verify = *value;
    }
    return tls;
}

void ConfigReader::read_health(const Entry& entry, HealthConfig& health) {
    if (!r_.expect_map(entry)) {
        return;
    }
    const Fields fields = r_.fields(entry.value, {"max_fails", "cooldown", "check"});
    if (const Entry* e = fields.find("max_fails")) {
        if (auto value = r_.integer(*e, 1, UINT32_MAX)) {
            health.max_fails = static_cast<std::uint32_t>(*value);
        }
    }
    if (const Entry* e = fields.find("cooldown")) {
        if (auto value = r_.duration(*e, /*allow_zero=*/true)) {
            health.cooldown = *value;
        }
    }
    const Entry* check_entry = fields.find("check");
    if (check_entry == nullptr || !r_.expect_map(*check_entry)) {
        return;
    }
    HealthCheck check;
    const Fields check_fields = r_.fields(check_entry->value, {"path", "interval"});
    if (const Entry* e = check_fields.find("path")) {
        if (auto path = r_.scalar(*e)) {
            if (path->starts_with('/')) {
                check.path = std::move(*path);
            } else {
                r_.error(e->value_mark(), "'path' must start with '/', got " + quoted(*path));
            }
        }
    }
    if (const Entry* e = check_fields.find("interval")) {
        if (auto value = r_.duration(*e)) {
            check.interval = *value;
        }
    }
    health.check = std::move(check);
}

void ConfigReader::read_timeouts(const Entry& entry, Timeouts& timeouts) {
    if (!r_.expect_map(entry)) {
        return;
    }
    const Fields fields = r_.fields(entry.value, {"request_header", "keepalive_idle", "upstream_connect",
                                                  "upstream_response", "tunnel_idle", "shutdown_drain"});
    const std::pair<std::string_view, Millis*> targets[] = {
        {"request_header", &timeouts.request_header},
        {"keepalive_idle", &timeouts.keepalive_idle},
        {"upstream_connect", &timeouts.upstream_connect},
        {"upstream_response", &timeouts.upstream_response},
        {"tunnel_idle", &timeouts.tunnel_idle},
        {"shutdown_drain", &timeouts.shutdown_drain},
    };
    for (const auto& [key, target] : targets) {
        if (const Entry* e = fields.find(key)) {
            if (auto value = r_.duration(*e)) {
                *target = *value;
            }
        }
    }
}

void ConfigReader::read_limits(const Entry& entry, Limits& limits) {
    if (!r_.expect_map(entry)) {
        return;
    }
    const Fields fields = r_.fields(entry.value, {"max_connections", "max_header_bytes", "max_headers"});
    if (const Entry* e = fields.find("max_connections")) {
        if (auto value = r_.integer(*e, 1, UINT32_MAX)) {
            limits.max_connections = static_cast<std::uint32_t>(*value);
        }
    }
    if (const Entry* e = fields.find("max_header_bytes")) {
        if (auto value = r_.size(*e, 1, "1 byte")) {
            limits.max_header_bytes = *value;
        }
    }
    if (const Entry* e = fields.find("max_headers")) {
        if (auto value = r_.integer(*e, 1, UINT32_MAX)) {
            limits.max_headers = static_cast<std::size_t>(*value);
        }
    }
}

void ConfigReader::read_tunnel(const Entry& entry, TunnelConfig& tunnel) {
    if (!r_.expect_map(entry)) {
        return;
    }
    const Fields fields = r_.fields(entry.value, {"buffer", "splice"});
    if (const Entry* e = fields.find("buffer")) {
        if (auto value = r_.size(*e, 1024, "1KiB")) {
            tunnel.buffer = *value;
        }
    }
    if (const Entry* e = fields.find("splice")) {
        if (auto index = r_.choice(*e, {"auto", "off"})) {
            tunnel.splice = *index == 0;
        }
    }
}

void ConfigReader::read_forwarding(const Entry& entry, ForwardingConfig& forwarding) {
    if (!r_.expect_map(entry)) {
        return;
    }
    const Fields fields = r_.fields(entry.value, {"x_forwarded_for", "x_forwarded_proto", "via"});
    const std::pair<std::string_view, bool*> targets[] = {
        {"x_forwarded_for", &forwarding.x_forwarded_for},
        {"x_forwarded_proto", &forwarding.x_forwarded_proto},
        {"via", &forwarding.via},
    };
    for (const auto& [key, target] : targets) {
        if (const Entry* e = fields.find(key)) {
            if (auto value = r_.boolean(*e)) {
                *target = *value;
            }
        }
    }
}

void ConfigReader::read_admin(const Entry& entry, Config& config) {
    if (!r_.expect_map(entry)) {
        return;
    }
    const Fields fields = r_.fields(entry.value, {"address"});
    if (const Entry* e = r_.required(fields, entry.value, "address")) {
        if (auto address = r_.address(*e)) {
            config.admin = AdminConfig{std::move(*address)};
        }
    }
}

void ConfigReader::read_access_log(const Entry& entry, AccessLogConfig& access_log) {
    if (!r_.expect_map(entry)) {
        return;
    }
    const Fields fields = r_.fields(entry.value, {"path", "format"});
    if (const Entry* e = fields.find("format")) {
        if (auto index = r_.choice(*e, {"text", "json"})) {
            access_log.format = *index == 0 ? AccessLogFormat::text : AccessLogFormat::json;
        }
    }
    if (const Entry* e = fields.find("path")) {
        if (auto path = r_.scalar(*e)) {
            if (path->empty()) {
                r_.error(e->value_mark(), "'path' must not be empty (use \"-\" for stdout, \"off\" to disable)");
            } else {
                access_log.path = std::move(*path);
            }
        }
    }
}

// Sets each route's upstream_index; a route naming no defined upstream is an error at its
// `upstream` value. Skipped when the upstreams section itself is missing or malformed.
void ConfigReader::resolve_upstreams(Config& config) {
    if (!upstreams_read_) {
        return;
    }
    std::vector<std::string_view> names;
    for (const UpstreamConfig& upstream : config.upstreams) {
        names.push_back(upstream.name);
    }
    for (std::size_t i = 0; i < config.routes.size(); ++i) {
        RouteConfig& route = config.routes[i];
        if (route.upstream.empty() && route_upstream_marks_[i].line < 0) {
            continue;  // already reported as missing or malformed
        }
        const auto found = std::find(names.begin(), names.end(), route.upstream);
        if (found != names.end()) {
            route.upstream_index = static_cast<std::size_t>(found - names.begin());
            continue;
        }
        std::string message = "unknown upstream " + quoted(route.upstream);
        const std::string_view suggestion = config_detail::closest_match(route.upstream, names);
        if (!suggestion.empty()) {
            message += " (did you mean " + quoted(suggestion) + "?)";
        }
        r_.error(route_upstream_marks_[i], std::move(message));
    }
}

// Unnamed routes are "route<N>", N their position from 1 (docs/configuration.md). Names label metrics
// and log lines, so two routes may not share one, given or defaulted.
void ConfigReader::name_routes(Config& config) {
    for (std::size_t i = 0; i < config.routes.size(); ++i) {
        RouteConfig& route = config.routes[i];
        if (route.name.empty()) {
            route.name = "route" + std::to_string(i + 1);
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (config.routes[j].name != route.name) {
                continue;
            }
            const bool named = i < route_name_marks_.size() && route_name_marks_[i].line >= 0;
            if (named) {
                r_.error(route_name_marks_[i], "duplicate route name " + quoted(route.name) + " (route " +
                                                   std::to_string(j + 1) + " has it)");
            } else {
                r_.error(route_name_marks_[j], "route name " + quoted(route.name) + " is the default name of route " +
                                                   std::to_string(i + 1) + ", which has no name of its own");
            }
            break;
        }
    }
}

// yaml-cpp's own words, plus a hint for the two mistakes YAML makes easy here.
std::string syntax_error_message(const std::string& yaml_message) {
    std::string message = "invalid YAML: " + yaml_message;
    if (yaml_message.find("anchor") != std::string::npos) {
        message += " (a value starting with '*' must be quoted, e.g. \"*.example.com\")";
    }
    return message;
}

}  // namespace config_detail

using config_detail::ConfigReader;
using config_detail::syntax_error_message;

std::string ConfigError::to_string() const {
    if (line == 0) {
        return file + ": " + message;
    }
    return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

ConfigResult load_config_string(std::string_view yaml, const std::string& file) {
    if (std::optional<ConfigError> bad = check_yaml_text(yaml, file)) {
        ConfigResult result;
        result.errors.push_back(std::move(*bad));
        return result;
    }
    Reader reader(file);
    Config config;
    config.file = file;
    try {
        const std::string text(yaml);
        const YAML::Node root = YAML::Load(text);  // the first document only
        if (!root.IsDefined() || root.IsNull()) {
            reader.error(YAML::Mark::null_mark(),
                         "the configuration is empty (expected listen, upstreams and routes)");
        } else {
            if (const std::optional<YAML::Mark> second = second_yaml_document(text)) {
                reader.error(*second, "only one YAML document is allowed");
            }
            ConfigReader(reader).read_root(root, config);
        }
    } catch (const YAML::Exception& e) {
        reader.error(e.mark, syntax_error_message(e.msg));
    } catch (const std::exception& e) {
        reader.error(YAML::Mark::null_mark(), std::string("cannot load: ") + e.what());
    }
    ConfigResult result;
    if (reader.has_errors()) {
        result.errors = reader.take_sorted_errors();
    } else {
        result.config = std::move(config);
    }
    return result;
}

ConfigResult load_config_file(const std::string& path) {
    std::string text;
    int read_errno = 0;
    if (std::FILE* file = std::fopen(path.c_str(), "rb")) {
        char buffer[65536];
        std::size_t n = 0;
        while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) {
            text.append(buffer, n);
        }
        if (std::ferror(file)) {
            read_errno = errno != 0 ? errno : EIO;
        }
        std::fclose(file);
    } else {
        read_errno = errno;
    }
    if (read_errno != 0) {
        ConfigResult result;
        result.errors.push_back(
            ConfigError{path, 0, 0, std::string("cannot read file: ") + std::strerror(read_errno)});
        return result;
    }
    return load_config_string(text, path);
}

}  // namespace sy
