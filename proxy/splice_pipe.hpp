// The worker's pipe for splice(2) tunnels (tunnel.splice: auto). Bytes move socket -> pipe
// -> socket without entering user space, and the pipe is empty again before the callback
// that filled it returns: what the destination does not take at once is read out into a
// pool buffer and queued on the copy path. So one pipe (made when the worker starts, two
// descriptors) serves every tunnel of the worker, a tunnel holds no pipe (no descriptors,
// no pinned pages) while idle, and a hand-off never finds bytes in one.
#pragma once

#include <cstddef>

#include "proxy/buffer_pool.hpp"

namespace sy {

class SplicePipe {
public:
    // The pipe's size (F_SETPIPE_SZ), which bounds one move, is at most the size of a
    // buffer of `buffers`, so a rest always fits in one.
    explicit SplicePipe(BufferPool& buffers) : buffers_(buffers) { open(); }
    ~SplicePipe();
    SplicePipe(const SplicePipe&) = delete;
    SplicePipe& operator=(const SplicePipe&) = delete;

    // False when the pipe could not be made (descriptors exhausted): tunnels copy.
    bool ok() const { return read_fd_ >= 0; }
    std::size_t capacity() const { return capacity_; }

    // Moves up to `max` bytes from socket `from` into the pipe; how many. 0 for anything
    // else (nothing waiting, an EOF, TCP urgent data, an error): the caller reads the
    // socket the ordinary way, which tells them apart.
    std::size_t fill(int from, std::size_t max);
    // Moves up to `len` bytes from the pipe to socket `to` without blocking; how many. It
    // stops early at a full socket (*error 0) or an error (*error the errno).
    std::size_t drain_to(int to, std::size_t len, int* error);
    // Reads `len` bytes that are in the pipe into a pool buffer. Null on error, and then
    // the pipe is made anew (it is shared: no tunnel may find another's bytes in it).
    BufferPool::Buffer* read_out(std::size_t len);
    // Throws away what the pipe holds (a destination that failed); on an error, the pipe is
    // made anew.
    void discard(std::size_t len);

private:
    void open();
    void reopen();
    int read_fd_ = -1;
    int write_fd_ = -1;
    std::size_t capacity_ = 0;
    BufferPool& buffers_;
};

}  // namespace sy
