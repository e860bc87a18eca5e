#include "proxy/splice_pipe.hpp"

#include <algorithm>
#include <cerrno>

#include <fcntl.h>
#include <unistd.h>

namespace sy {

void SplicePipe::reopen() {
    if (read_fd_ >= 0) ::close(read_fd_);
    if (write_fd_ >= 0) ::close(write_fd_);
    read_fd_ = write_fd_ = -1;
    open();
}

void SplicePipe::open() {
    const std::size_t capacity = buffers_.size();
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return;
    read_fd_ = fds[0];
    write_fd_ = fds[1];
    // The kernel rounds up to pages; what it grants is the bound (at least the 64 KiB default).
    const int granted = ::fcntl(write_fd_, F_SETPIPE_SZ, static_cast<int>(capacity));
    const int size = granted > 0 ? granted : ::fcntl(write_fd_, F_GETPIPE_SZ);
    capacity_ = size > 0 ? std::min(capacity, static_cast<std::size_t>(size)) : 0;
    if (capacity_ == 0) {
        ::close(read_fd_);
        ::close(write_fd_);
        read_fd_ = write_fd_ = -1;
    }
}

SplicePipe::~SplicePipe() {
    if (read_fd_ >= 0) ::close(read_fd_);
    if (write_fd_ >= 0) ::close(write_fd_);
}

std::size_t SplicePipe::fill(int from, std::size_t max) {
    for (;;) {
        const ssize_t r = ::splice(from, nullptr, write_fd_, nullptr, std::min(max, capacity_),
                                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (r > 0) return static_cast<std::size_t>(r);
        if (r < 0 && errno == EINTR) continue;
        return 0;
    }
}

std::size_t SplicePipe::drain_to(int to, std::size_t len, int* error) {
    std::size_t moved = 0;
    *error = 0;
    while (moved < len) {
        const ssize_t r = ::splice(read_fd_, nullptr, to, nullptr, len - moved, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (r > 0) {
            moved += static_cast<std::size_t>(r);
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno != EAGAIN) *error = errno;
        break;  // the socket is full, or the error
    }
    return moved;
}

BufferPool::Buffer* SplicePipe::read_out(std::size_t len) {
    BufferPool::Buffer* b = buffers_.take();
    std::size_t got = 0;
    while (got < len) {
        const ssize_t r = ::read(read_fd_, b->data() + got, len - got);
        if (r > 0) {
            got += static_cast<std::size_t>(r);
        } else if (!(r < 0 && errno == EINTR)) {
            buffers_.give(b);
            reopen();
            return nullptr;
        }
    }
    return b;
}

void SplicePipe::discard(std::size_t len) {
    char sink[4096];
    while (len > 0) {
        const ssize_t r = ::read(read_fd_, sink, std::min(len, sizeof sink));
        if (r <= 0 && !(r < 0 && errno == EINTR)) {
            reopen();
            return;
        }
        if (r > 0) len -= static_cast<std::size_t>(r);
    }
}

}  // namespace sy
