// The hand-off channel's messages (docs/operations.md, "Binary upgrade"): what the old
// process and its successor say to each other over their Unix socket, as bytes. Pure: the
// descriptors travel beside the bytes (SCM_RIGHTS, proxy/handoff/handoff_channel.hpp) and
// no libuv is involved, so the format is tested on its own.
//
// The conversation, each line one SOCK_SEQPACKET message:
//   new -> old  ready {pid}                   configuration loaded and checked
//   old -> new  listener {key} + N fds        once per listening socket group
//   old -> new  listeners_done
//   new -> old  listening {pid}               the new process accepts from now on
//   old -> new  tunnel {record} + 2 fds       once per tunnel, then its queued bytes as
//   old -> new  tunnel_data {bytes}           chunks (record.unwritten_bytes() in all)
// The channel closes when the old process exits.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sy {

enum class HandoffMessage : std::uint8_t {
    ready = 1,
    listener = 2,
    listeners_done = 3,
    listening = 4,
    tunnel = 5,
    tunnel_data = 6,
};

// One side of a handed tunnel (kClient = 0, kUpstream = 1, as in proxy/tunnel.hpp).
struct HandedSide {
    std::string unwritten;          // bytes queued toward this side, not written yet
    bool eof_read = false;            // this side sent its EOF (it is not read again)
    bool shutdown_requested = false;  // that EOF is being passed on to the other side
    bool shutdown_done = false;       // ... and was (our FIN toward the other side is out)
};

// Everything a raw tunnel is, apart from its two sockets.
struct HandedTunnel {
    std::string route;      // routes[].name
    std::string upstream;   // upstreams.<name>
    std::string server;     // the server's address as configured
    std::string protocol, method, target, client;  // the access-log labels
    std::array<std::uint64_t, 2> bytes{};  // bytes read from each side
    std::uint64_t age_ms = 0;    // since the switch
    std::uint64_t idle_ms = 0;   // since the last byte either way
    std::uint32_t request_ms = 0;  // the request, head to switch
    std::array<HandedSide, 2> sides;

    std::size_t unwritten_bytes() const { return sides[0].unwritten.size() + sides[1].unwritten.size(); }
};

// The largest tunnel_data chunk (a message stays well under the socket's send buffer).
inline constexpr std::size_t kHandoffChunk = 64 * 1024;

std::string encode_pid_message(HandoffMessage type, std::uint32_t pid);
std::string encode_listener(std::string_view key);
std::string encode_listeners_done();
// The record without its queued bytes, which follow as tunnel_data chunks.
std::string encode_tunnel(const HandedTunnel& tunnel);
std::string encode_tunnel_data(std::string_view chunk);

// The type of a received message, or nothing for an empty one.
std::optional<HandoffMessage> message_type(std::string_view message);
// Each decoder: false on a message of another type, truncated or with bytes left over.
bool decode_pid_message(std::string_view message, HandoffMessage type, std::uint32_t* pid);
bool decode_listener(std::string_view message, std::string* key);
// Leaves sides[].unwritten empty; *to_client / *to_upstream get the lengths that follow.
bool decode_tunnel(std::string_view message, HandedTunnel* tunnel, std::uint64_t* to_client,
                   std::uint64_t* to_upstream);
bool decode_tunnel_data(std::string_view message, std::string_view* chunk);

}  // namespace sy
