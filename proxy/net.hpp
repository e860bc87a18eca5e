// Socket set-up helpers: address resolution and listening sockets.
#pragma once

#include <string>
#include <vector>

#include <sys/socket.h>

#include "routing/config.hpp"

namespace sy {

// Resolves "host:port" (IP literal or name, first result) into `out`.
bool resolve_address(const Address& address, sockaddr_storage* out, std::string* error);

// Every server of an upstream, resolved (a server that does not resolve is left
// AF_UNSPEC, and connecting to it fails like a refused connection).
std::vector<sockaddr_storage> resolve_servers(const UpstreamConfig& upstream);

// A bound, listening TCP socket (SO_REUSEADDR; SO_REUSEPORT when `reuse_port`, so several
// workers can listen on the same port; TCP_NODELAY, which accepted sockets inherit). Returns -1 with `error` set on failure.
int open_listener(const sockaddr_storage& address, bool reuse_port, std::string* error);

// The text of a socket address: "ip" without the port, "ip:port" / "[v6]:port" with it.
// "-" for an address family other than IPv4/IPv6.
std::string address_text(const sockaddr* address, bool with_port);

// "ip:port" of a bound socket (for the "listening on" line; resolves port 0).
std::string local_address(int fd);

}  // namespace sy
