// The routes section of the configuration (docs/configuration.md, "routes"): each route's
// name, match and upgrade rule, terminate mode included.
#include <algorithm>
#include <string_view>

#include "parser/tokens.hpp"
#include "routing/config_reader.hpp"

namespace sy::config_detail {
namespace {

// An exact host name (letters, digits, '-', '_', non-empty dot-separated labels), an IPv6
// literal in brackets, or "*." followed by a name. Already lower-cased.
bool is_host_pattern(std::string_view pattern) {
    if (pattern.size() > 2 && pattern.front() == '[' && pattern.back() == ']') {
        const std::string_view inside = pattern.substr(1, pattern.size() - 2);
        return std::all_of(inside.begin(), inside.end(), [](char c) {
            return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == ':' || c == '.';
        });
    }
    if (pattern.starts_with("*.")) {
        pattern.remove_prefix(2);
    }
    if (pattern.empty() || pattern.front() == '.' || pattern.back() == '.' ||
        pattern.find("..") != std::string_view::npos) {
        return false;
    }
    return std::all_of(pattern.begin(), pattern.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    });
}

}  // namespace

void ConfigReader::read_routes(const Entry& entry, Config& config) {
    if (!r_.expect_list(entry)) {
        return;
    }
    if (entry.value.size() == 0) {
        r_.error(entry.value_mark(), "'routes' needs at least one route");
        return;
    }
    for (const Entry& item : r_.items(entry)) {
        if (!r_.expect_map(item)) {
            continue;
        }
        RouteConfig route;
        route.line = item.value.Mark().line + 1;
        read_route(item, route);
        config.routes.push_back(std::move(route));
    }
}

void ConfigReader::read_route(const Entry& entry, RouteConfig& route) {
    const Fields fields = r_.fields(entry.value, {"name", "match", "upstream", "upgrade"});
    YAML::Mark name_mark = YAML::Mark::null_mark();
    if (const Entry* e = fields.find("name")) {
        if (auto name = r_.scalar(*e)) {
            // A label value in metrics and a field in log lines: printable ASCII, no quotes
            // or backslashes, so that it reads the same everywhere it appears.
            const bool printable = !name->empty() && name->size() <= 128 &&
                                   std::all_of(name->begin(), name->end(), [](char c) {
                                       return c > ' ' && c < 0x7f && c != '"' && c != '\\';
                                   });
            if (printable) {
                route.name = std::move(*name);
                name_mark = e->value_mark();
            } else {
                r_.error(e->value_mark(), "invalid route name " + quoted(*name) +
                                              " (expected 1 to 128 printable characters without spaces, "
                                              "quotes or backslashes)");
            }
        }
    }
    route_name_marks_.push_back(name_mark);
    if (const Entry* e = fields.find("match")) {
        read_match(*e, route.match);
    }
    YAML::Mark upstream_mark = YAML::Mark::null_mark();
    if (const Entry* e = r_.required(fields, entry.value, "upstream")) {
        if (auto name = r_.scalar(*e)) {
            route.upstream = std::move(*name);
            upstream_mark = e->value_mark();
        }
    }
    route_upstream_marks_.push_back(upstream_mark);
    if (const Entry* e = fields.find("upgrade")) {
        read_upgrade(*e, route.upgrade);
    }
}

void ConfigReader::read_match(const Entry& entry, RouteMatch& match) {
    if (!r_.expect_map(entry)) {
        return;
    }
    const Fields fields = r_.fields(entry.value, {"host", "path_prefix", "upgrade"});
    if (const Entry* e = fields.find("host")) {
        if (auto host = r_.scalar(*e)) {
            std::string pattern = to_lower(*host);
            if (is_host_pattern(pattern)) {
                match.host = std::move(pattern);
            } else {
                r_.error(e->value_mark(),
                         "invalid host " + quoted(*host) +
                             " (expected a name like example.com or a wildcard like \"*.example.com\", "
                             "without a port)");
            }
        }
    }
    if (const Entry* e = fields.find("path_prefix")) {
        if (auto prefix = r_.scalar(*e)) {
            if (prefix->starts_with('/')) {
                match.path_prefix = std::move(*prefix);
            } else {
                r_.error(e->value_mark(), "'path_prefix' must start with '/', got " + quoted(*prefix));
            }
        }
    }
    if (const Entry* e = fields.find("upgrade")) {
        if (auto protocol = r_.scalar(*e)) {
            if (*protocol != "*" && is_protocol(*protocol)) {  // "*" is a token, but not here
                match.upgrade = std::move(*protocol);
            } else {
                r_.error(e->value_mark(), "invalid protocol " + quoted(*protocol) +
                                              " (expected a name like websocket, or name/version)");
            }
        }
    }
}

void ConfigReader::read_upgrade(const Entry& entry, UpgradeConfig& upgrade) {
    if (!r_.expect_map(entry)) {
        return;
    }
    const Fields fields =
        r_.fields(entry.value, {"allow", "on_disallowed", "require", "terminate", "subprotocols", "max_message",
                                "max_rate", "max_tunnels"});
    if (const Entry* e = fields.find("allow"); e != nullptr && r_.expect_list(*e)) {
        for (const Entry& item : r_.items(*e)) {
            auto protocol = r_.scalar(item);
            if (!protocol) {
                continue;
            }
            if (*protocol == "*" || is_protocol(*protocol)) {
                upgrade.allow.push_back(std::move(*protocol));
            } else {
                r_.error(item.value_mark(),
                         "invalid protocol " + quoted(*protocol) +
                             " (expected \"*\", a name like websocket, or name/version)");
            }
        }
    }
    if (const Entry* e = fields.find("on_disallowed")) {
        if (auto index = r_.choice(*e, {"strip", "reject"})) {
            upgrade.on_disallowed = *index == 0 ? OnDisallowed::strip : OnDisallowed::reject;
        }
    }
    if (const Entry* e = fields.find("require")) {
        if (auto value = r_.boolean(*e)) {
            upgrade.require = *value;
            // RFC 9110 §15.5.22: a 426 must name the protocols to switch to in Upgrade.
            bool names_protocol = std::any_of(upgrade.allow.begin(), upgrade.allow.end(),
                                              [](const std::string& p) { return p != "*"; });
            if (*value && !names_protocol) {
                r_.error(e->value_mark(),
                         "require: true needs at least one protocol named in upgrade.allow "
                         "(a 426 must tell the client what to upgrade to)");
            }
        }
    }
    read_terminate(fields, upgrade);
    if (const Entry* e = fields.find("max_rate")) {
        if (auto value = r_.integer(*e, 0, 1'000'000)) upgrade.max_rate = static_cast<std::uint32_t>(*value);
    }
    if (const Entry* e = fields.find("max_tunnels")) {
        if (auto value = r_.integer(*e, 0, UINT32_MAX)) upgrade.max_tunnels = static_cast<std::uint32_t>(*value);
    }
}

// terminate: websocket, and the keys that only apply with it (docs/upgrades.md,
// "Terminating WebSocket").
void ConfigReader::read_terminate(const Fields& fields, UpgradeConfig& upgrade) {
    const Entry* terminate = fields.find("terminate");
    if (terminate != nullptr && r_.choice(*terminate, {"websocket"})) {
        upgrade.terminate = Terminate::websocket;
        const bool allows_websocket = std::any_of(upgrade.allow.begin(), upgrade.allow.end(), [](const std::string& p) {
            return p == "*" || iequals(std::string_view(p).substr(0, p.find('/')), "websocket");
        });
        if (!allows_websocket) {
            r_.error(terminate->value_mark(), "terminate: websocket needs websocket in upgrade.allow");
        }
    }
    const bool terminating = upgrade.terminate == Terminate::websocket;
    if (const Entry* e = fields.find("subprotocols")) {
        if (!terminating) {
            r_.error(e->key_node.Mark(), "'subprotocols' applies only with terminate: websocket");
        } else if (r_.expect_list(*e)) {
            for (const Entry& item : r_.items(*e)) {
                if (auto index = r_.choice(item, {"binary", "base64"})) {
                    upgrade.subprotocols.emplace_back(*index == 0 ? "binary" : "base64");
                }
            }
        }
    }
    if (const Entry* e = fields.find("max_message")) {
        if (!terminating) {
            r_.error(e->key_node.Mark(), "'max_message' applies only with terminate: websocket");
        } else if (auto value = r_.size(*e, 1, "1 byte")) {
            upgrade.max_message = *value;
        }
    }
}

}  // namespace sy::config_detail
