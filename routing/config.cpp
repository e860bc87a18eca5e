#include "routing/config.hpp"

namespace sy {

std::string Address::to_string() const {
    std::string text;
    text.reserve(host.size() + 8);
    if (is_ipv6) {
        text += '[';
        text += host;
        text += ']';
    } else {
        text += host;
    }
    text += ':';
    text += std::to_string(port);
    return text;
}

}  // namespace sy
