// Terminate mode's handshake (docs/upgrades.md, "Terminating WebSocket"): whether the proxy
// answers a request's WebSocket upgrade itself, and the 101 it sends. Pure: no I/O.
#pragma once

#include <string>

#include "parser/message.hpp"
#include "routing/config.hpp"
#include "routing/upgrade_policy.hpp"

namespace sy {

struct TerminatePlan {
    bool terminate = false;     // the proxy is the WebSocket server for this request
    std::string subprotocol;    // the selected Sec-WebSocket-Protocol value; empty: none
    HeaderList response_fields; // the 101's fields: Upgrade, Connection, Sec-WebSocket-Accept
                                // and, when one was selected, Sec-WebSocket-Protocol
};

// A request that `decide` forwards with websocket among the forwarded protocols, on a route
// with terminate: websocket, is terminated. The subprotocol is the first of the route's
// `subprotocols` that the client offered in its Sec-WebSocket-Protocol field(s) (values
// compare exactly, RFC 6455 §4.1). No extension is ever accepted: a
// Sec-WebSocket-Extensions offer is declined by leaving the field out (§9.1).
TerminatePlan plan_termination(const UpgradeDecision& decision, const MessageHead& request, const UpgradeConfig& rule);

}  // namespace sy
