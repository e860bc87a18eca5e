// The hand-off channel's socket: whole messages with descriptors beside them. A
// SOCK_SEQPACKET Unix socket keeps each message whole and its SCM_RIGHTS with it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <uv.h>

namespace sy {

// The most descriptors, and bytes, one message carries.
inline constexpr std::size_t kMaxHandoffFds = 64;
inline constexpr std::size_t kMaxHandoffMessage = 64 * 1024 + 4096;

// Stops and closes `poll` if `polling` (then false), and closes `socket` if open (then -1).
void close_polled_socket(uv_poll_t* poll, bool* polling, int* socket);

// A connected pair (close-on-exec both), or false with `error`.
bool handoff_socketpair(int fds[2], std::string* error);

// Sends one message with `fds` beside it (they stay open here). Blocks while the socket is
// full, at most `timeout_ms`. False with `error` on failure.
bool send_handoff_message(int socket, std::string_view bytes, const std::vector<int>& fds, std::string* error,
                          int timeout_ms = 10'000);

// Receives one message; the descriptors that came with it (close-on-exec) go to `fds`.
// `nothing`: none waiting (timeout_ms 0 only); `error` says what went wrong, including a
// message or descriptor list cut short, or no message within `timeout_ms` (-1: no bound).
enum class Received { message, closed, nothing, error };
Received recv_handoff_message(int socket, std::string* bytes, std::vector<int>* fds, std::string* error,
                              int timeout_ms = -1);

}  // namespace sy
