#include "proxy/handoff/handoff_channel.hpp"

#include <cerrno>
#include <cstring>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/handoff/handoff_wire.hpp"

namespace sy {

namespace {

constexpr std::size_t kMaxFds = kMaxHandoffFds;
constexpr std::size_t kMaxMessage = kMaxHandoffMessage;
static_assert(kMaxMessage > kHandoffChunk + 16, "a data chunk and its header fit in a message");

bool wait_for(int socket, short events, int timeout_ms) {
    pollfd p{socket, events, 0};
    for (;;) {
        int r = ::poll(&p, 1, timeout_ms);
        if (r > 0) return true;
        if (r == 0) {
            errno = ETIMEDOUT;
            return false;
        }
        if (errno != EINTR) return false;
    }
}

}  // namespace

void close_polled_socket(uv_poll_t* poll, bool* polling, int* socket) {
    if (*polling) {
        *polling = false;
        uv_poll_stop(poll);
        uv_close(reinterpret_cast<uv_handle_t*>(poll), nullptr);
    }
    if (*socket >= 0) {
        ::close(*socket);
        *socket = -1;
    }
}

bool handoff_socketpair(int fds[2], std::string* error) {
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) == 0) return true;
    *error = std::string("socketpair: ") + std::strerror(errno);
    return false;
}

bool send_handoff_message(int socket, std::string_view bytes, const std::vector<int>& fds, std::string* error,
                          int timeout_ms) {
    if (fds.size() > kMaxFds || bytes.size() > kMaxMessage) {
        *error = "hand-off message too large";
        return false;
    }
    iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    if (!fds.empty()) {
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    for (;;) {
        ssize_t n = ::sendmsg(socket, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n == static_cast<ssize_t>(bytes.size())) return true;
        if (n >= 0) {
            *error = "hand-off message cut short";
            return false;
        }
        if (errno == EINTR) continue;
        if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_for(socket, POLLOUT, timeout_ms)) continue;
        *error = std::string("hand-off send: ") + std::strerror(errno);
        return false;
    }
}

Received recv_handoff_message(int socket, std::string* bytes, std::vector<int>* fds, std::string* error,
                              int timeout_ms) {
    // One receive buffer per thread, not zero-filled per message (a hand-off of 10,000
    // tunnels receives 10,000 records).
    thread_local std::vector<char> scratch(kMaxMessage);
    bytes->clear();
    iovec iov{scratch.data(), scratch.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    for (;;) {
        n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n >= 0) break;
        if (errno == EINTR) continue;
        if ((errno == EAGAIN || errno == EWOULDBLOCK) && timeout_ms == 0) return Received::nothing;
        if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_for(socket, POLLIN, timeout_ms)) continue;
        *error = std::string("hand-off receive: ") + std::strerror(errno);
        return Received::error;
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const auto* data = reinterpret_cast<const int*>(CMSG_DATA(c));
        for (std::size_t i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, data + i, sizeof fd);
            fds->push_back(fd);
        }
    }
    bytes->assign(scratch.data(), static_cast<std::size_t>(n));
    if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
        *error = "hand-off message cut short";
        return Received::error;
    }
    return n == 0 ? Received::closed : Received::message;
}

}  // namespace sy
