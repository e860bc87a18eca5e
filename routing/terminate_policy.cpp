#include "routing/terminate_policy.hpp"

#include <algorithm>

#include "parser/tokens.hpp"

namespace sy {

TerminatePlan plan_termination(const UpgradeDecision& decision, const MessageHead& request, const UpgradeConfig& rule) {
    TerminatePlan plan;
    if (rule.terminate != Terminate::websocket || decision.kind != UpgradeDecision::Kind::forward ||
        decision.websocket_accept.empty()) {
        return plan;  // websocket_accept is set exactly when websocket was forwarded
    }
    plan.terminate = true;
    const std::vector<std::string_view> offered = collect_list(request.headers, "sec-websocket-protocol");
    for (const std::string& mine : rule.subprotocols) {
        if (std::find(offered.begin(), offered.end(), std::string_view(mine)) != offered.end()) {
            plan.subprotocol = mine;
            break;
        }
    }
    plan.response_fields = {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
                            {"Sec-WebSocket-Accept", decision.websocket_accept}};
    if (!plan.subprotocol.empty()) plan.response_fields.push_back({"Sec-WebSocket-Protocol", plan.subprotocol});
    return plan;
}

}  // namespace sy
