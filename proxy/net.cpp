#include "proxy/net.hpp"

#include <cerrno>
#include <cstring>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

namespace sy {

bool resolve_address(const Address& address, sockaddr_storage* out, std::string* error) {
    std::memset(out, 0, sizeof *out);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* result = nullptr;
    std::string port = std::to_string(address.port);
    int r = getaddrinfo(address.host.c_str(), port.c_str(), &hints, &result);
    if (r != 0 || result == nullptr) {
        *error = "cannot resolve '" + address.to_string() + "': " + gai_strerror(r);
        return false;
    }
    std::memcpy(out, result->ai_addr, result->ai_addrlen);
    freeaddrinfo(result);
    return true;
}

std::vector<sockaddr_storage> resolve_servers(const UpstreamConfig& upstream) {
    std::vector<sockaddr_storage> out(upstream.servers.size());
    std::string error;
    for (std::size_t i = 0; i < upstream.servers.size(); ++i) resolve_address(upstream.servers[i], &out[i], &error);
    return out;
}

int open_listener(const sockaddr_storage& address, bool reuse_port, std::string* error) {
    int fd = ::socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *error = std::string("socket: ") + std::strerror(errno);
        return -1;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuse_port) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (address.ss_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    // Accepted sockets inherit TCP_NODELAY from the listener on Linux: one setsockopt here
    // instead of one per connection.
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    socklen_t len = address.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), len) != 0) {
        *error = std::string("bind: ") + std::strerror(errno);
        ::close(fd);
        return -1;
    }
    if (::listen(fd, 511) != 0) {
        *error = std::string("listen: ") + std::strerror(errno);
        ::close(fd);
        return -1;
    }
    return fd;
}

std::string address_text(const sockaddr* address, bool with_port) {
    char host[INET6_ADDRSTRLEN] = "-";
    unsigned port = 0;
    if (address->sa_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(address);
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        return with_port ? std::string(host) + ":" + std::to_string(port) : std::string(host);
    }
    if (address->sa_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        return with_port ? "[" + std::string(host) + "]:" + std::to_string(port) : std::string(host);
    }
    return "-";
}

std::string local_address(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
    return address_text(reinterpret_cast<const sockaddr*>(&ss), true);
}

}  // namespace sy
