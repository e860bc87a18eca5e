// The upgrade policy (docs/upgrades.md): what to do with a request's
// Upgrade offer on a route, and whether a backend's 101 may switch the connection.
// Pure functions: no I/O, no libuv.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "parser/message.hpp"
#include "routing/config.hpp"

namespace sy {

// What happened to an upgrade, in the words of the metrics' `outcome` label and the access
// log (docs/operations.md). `decide` yields none .. bad_request; the proxy records the rest
// when the backend answers.
enum class UpgradeOutcome : std::uint8_t {
    none,         // not an upgrade request
    forwarded,    // the filtered offer went to the backend
    stripped,     // nothing allowed: forwarded without the upgrade
    rejected,     // nothing allowed, on_disallowed: reject (403)
    required,     // require: true and nothing allowed (426)
    bad_request,  // an allowed protocol's handshake is malformed (400, or 426 for the version)
    switched,     // the backend's 101 was accepted
    declined,     // the backend answered a final status other than 101
    refused_101,  // the backend's 101 was refused (502)
    terminated,   // the proxy answered the 101 itself (terminate routes)
    throttled,    // refused by max_rate / max_tunnels (503)
};
inline constexpr std::size_t kUpgradeOutcomes = 11;
const char* outcome_name(UpgradeOutcome outcome);

struct UpgradeDecision {
    enum class Kind {
        plain,    // not an upgrade request (no Upgrade + "upgrade" token, or HTTP/1.0): forward as is
        forward,  // forward with `upstream_fields` (Upgrade: <filtered offer>, Connection: Upgrade, ...)
        strip,    // an upgrade request whose offer has nothing allowed: forward without the upgrade
        respond,  // the proxy answers itself: `status`, `response_fields`, `response_body`
    };
    Kind kind = Kind::plain;
    UpgradeOutcome outcome = UpgradeOutcome::none;

    // The client's offer (every Upgrade line joined, in order, as spelled) for upgrade
    // requests; empty otherwise.
    std::vector<std::string> offer;
    // forward: the offer filtered to what the route allows, order kept.
    std::vector<std::string> forwarded;
    // forward: fields the proxy regenerates for the upstream request, in order:
    // HTTP2-Settings (h2c only, kept as received), Upgrade, Connection
    // ("Upgrade", or "Upgrade, HTTP2-Settings" for h2c).
    HeaderList upstream_fields;
    // forward with websocket in `forwarded`: the Sec-WebSocket-Accept the 101 must carry
    // (RFC 6455 §4.2.2: base64(SHA-1(key + GUID))).
    std::string websocket_accept;

    // respond: 400 (bad WebSocket handshake), 403 (reject), 426 (require, or a WebSocket
    // version other than 13).
    int status = 0;
    bool close = false;           // 403 closes the connection (docs/upgrades.md, reject)
    HeaderList response_fields;   // e.g. Upgrade + Connection: Upgrade for 426,
                                  // Sec-WebSocket-Version: 13 for a bad version
    std::string response_body;    // short text; for 403 it names the refused protocols
    std::string reason;           // for logs
};

// docs/upgrades.md, "Words": an HTTP/1.1 (not 1.0) request with an Upgrade field and
// the token "upgrade" in its Connection field(s).
bool is_upgrade_request(const MessageHead& request);

// Decides for `request` on a route with `rule` (docs/upgrades.md, "Request side").
UpgradeDecision decide(const MessageHead& request, const UpgradeConfig& rule);
// The same, for a caller that already knows is_upgrade_request(request) and, for an upgrade
// request, its offer (collect_list of its Upgrade fields).
UpgradeDecision decide(const MessageHead& request, const UpgradeConfig& rule, bool upgrade_request,
                       const std::vector<std::string_view>& offer);

struct SwitchVerdict {
    bool accept = false;
    std::string reason;                // why it was refused (for logs), empty when accepted
    std::vector<std::string> protocols;  // accepted: the protocols of the 101's Upgrade
};

// May the connection switch on this 101 response to a request decided as `decision`?
// Refused: an unsolicited 101 (decision not `forward`), no Upgrade, a protocol not in the
// forwarded offer, or a failed profile check (websocket: Sec-WebSocket-Accept).
SwitchVerdict validate_switch(const UpgradeDecision& decision, const MessageHead& response);

// A backend's 426 keeps its Upgrade field filtered to what the route allows: the value
// to send (empty: drop the field).
std::string filter_upgrade_field(const MessageHead& response, const UpgradeConfig& rule);

// RFC 6455 §4.2.2: base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
std::string websocket_accept_for(std::string_view key);
// Looks SHA-1 up in OpenSSL's provider registry for this thread (about 4,600 instructions,
// once), so the first handshake a worker sees does not pay for it.
void prepare_websocket_accept();

}  // namespace sy
