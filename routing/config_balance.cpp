// An upstream's balancing keys (docs/configuration.md, "upstreams"): balance, hash_key,
// sticky, max_tunnels, slow_start.
#include <algorithm>
#include <string_view>

#include "parser/tokens.hpp"
#include "routing/config_reader.hpp"

namespace sy::config_detail {

void ConfigReader::read_balancing(const Fields& fields, UpstreamConfig& upstream) {
    if (const Entry* e = fields.find("balance")) {
        if (auto index = r_.choice(*e, {"round_robin", "least_conn", "hash"})) {
            upstream.balance = *index == 0 ? Balance::round_robin : *index == 1 ? Balance::least_conn : Balance::hash;
        }
    }
    if (const Entry* e = fields.find("hash_key")) {
        if (upstream.balance != Balance::hash) {
            r_.error(e->key_node.Mark(), "'hash_key' applies only with balance: hash");
        } else if (auto text = r_.scalar(*e)) {
            const std::string_view key = *text;
            const std::size_t colon = key.find(':');
            const std::string_view kind = key.substr(0, colon);
            const std::string_view name = colon == std::string_view::npos ? std::string_view() : key.substr(colon + 1);
            const bool named = is_token(name);
            if (key == "client_ip") {
                upstream.hash_key.kind = HashKey::Kind::client_ip;
            } else if (kind == "header" && named) {
                upstream.hash_key = {HashKey::Kind::header, to_lower(name)};
            } else if (kind == "cookie" && named) {
                upstream.hash_key = {HashKey::Kind::cookie, std::string(name)};
            } else if (kind == "query" && named) {
                upstream.hash_key = {HashKey::Kind::query, std::string(name)};
            } else {
                r_.error(e->value_mark(), "invalid hash_key " + quoted(*text) +
                                              " (expected client_ip, header:NAME, cookie:NAME or query:NAME)");
            }
        }
    }
    if (const Entry* e = fields.find("sticky"); e != nullptr && r_.expect_map(*e)) {
        const Fields sticky = r_.fields(e->value, {"cookie", "max_age"});
        StickyConfig config;
        bool ok = true;
        if (const Entry* c = r_.required(sticky, e->value, "cookie")) {
            auto name = r_.scalar(*c);
            // A cookie-name is an RFC 9110 token (RFC 6265 §4.1.1).
            if (name && is_token(*name)) {
                config.cookie = std::move(*name);
            } else {
                if (name) r_.error(c->value_mark(), "invalid cookie name " + quoted(*name) + " (expected a token)");
                ok = false;
            }
        } else {
            ok = false;
        }
        if (const Entry* m = sticky.find("max_age")) {
            if (auto value = r_.duration(*m)) {
                config.max_age = *value;
            } else {
                ok = false;
            }
        }
        if (ok) upstream.sticky = std::move(config);
    }
    if (const Entry* e = fields.find("max_tunnels")) {
        if (auto value = r_.integer(*e, 0, UINT32_MAX)) upstream.max_tunnels = static_cast<std::uint32_t>(*value);
    }
    if (const Entry* e = fields.find("slow_start")) {
        if (auto value = r_.duration(*e, true)) upstream.slow_start = *value;
    }
}

}  // namespace sy::config_detail
