// Route selection: first route in file order whose match block fits the request.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "routing/config.hpp"

namespace sy {

// What route matching looks at in a request.
struct RouteRequest {
    std::string_view host;              // Host field value (port, if any, is ignored), or
                                        // the authority of an absolute-form target
    std::string_view path;              // path of the target, without the query
    std::vector<std::string_view> offer;  // protocols offered by an upgrade request
                                          // (empty when it is not one)
};

// Splits a request target (origin-form "/p?q" or absolute-form "http://h/p?q") into
// the host it names (empty for origin-form) and the path without query ("/" if empty).
struct TargetParts {
    std::string_view host;
    std::string_view path;
};
TargetParts split_target(std::string_view target);

// True when an offered protocol ("name" or "name/version") is allowed by `pattern`
// ("name" allows every version, "name/version" exactly that one, "*" anything).
// Case-insensitive.
bool protocol_matches(std::string_view pattern, std::string_view offered);

// Host match: exact (case-insensitive, port ignored) or "*.suffix" (one or more labels).
bool host_matches(std::string_view pattern, std::string_view host);

// The first matching route, or nullptr (the proxy answers 404).
const RouteConfig* match_route(const Config& config, const RouteRequest& request);

}  // namespace sy
