// Ordered writes to one libuv stream: tries the kernel first (uv_try_write, vectored) and
// copies only what it did not take into a queued write request. Tracks the queued byte
// count for backpressure decisions.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include <uv.h>

namespace sy {

class StreamWriter;

class WriterOwner {
public:
    virtual ~WriterOwner() = default;
    // A write completed and the queue is now empty. Called from a write callback, never
    // from write().
    virtual void on_writer_drained(StreamWriter& writer) = 0;
    // A write failed (EPIPE, ECONNRESET, ECANCELED on close, ...). Called once per writer.
    virtual void on_writer_failed(StreamWriter& writer, int status) = 0;
};

class StreamWriter {
public:
    StreamWriter(uv_stream_t* stream, WriterOwner& owner) : stream_(stream), owner_(owner) {}
    StreamWriter(const StreamWriter&) = delete;
    StreamWriter& operator=(const StreamWriter&) = delete;

    // Writes the pieces in order, as one vectored write. Returns false when the stream has
    // already failed or the write could not be started (the owner is told once).
    bool write(std::initializer_list<std::string_view> pieces);
    bool write(std::string_view data) { return write({data}); }

    // While corked, writes are only collected; uncork() sends them as one write. A writer
    // closed while corked sends nothing of them.
    void cork() { corked_ = true; }
    bool corked() const { return corked_; }
    void uncork();
    // Gives back the cork's buffer (kept between requests otherwise): for a connection that
    // will not cork again (a tunnel end).
    void drop_cork_buffer() { cork_.reset(); }

    // Bytes accepted by write() but not yet handed to the kernel.
    std::size_t queued() const { return queued_; }
    std::uint64_t bytes_written() const { return bytes_; }

private:
    struct Request;
    // Hands already counted bytes to the kernel, queueing what it does not take.
    bool send(const uv_buf_t* bufs, unsigned n, std::size_t total);
    static void on_write(uv_write_t* req, int status);
    void fail(int status);

    uv_stream_t* stream_;
    WriterOwner& owner_;
    std::size_t queued_ = 0;
    std::uint64_t bytes_ = 0;
    std::unique_ptr<std::string> cork_;  // allocated at the first cork, then kept
    bool corked_ = false;
    bool failed_ = false;
};

}  // namespace sy
