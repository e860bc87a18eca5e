// The plain-TCP transport: one uv_tcp_t. Copied writes go through a StreamWriter (the
// kernel first, a queued copy of the rest); pool buffers are written from the buffer
// itself (the rest of a partial write too), so the tunnel's bytes are never copied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <uv.h>

#include "proxy/stream_writer.hpp"
#include "proxy/transport/transport.hpp"

namespace sy {

class TcpTransport final : public Transport, private WriterOwner {
public:
    // An unconnected socket on `loop`; reads take buffers from `buffers`.
    TcpTransport(uv_loop_t* loop, BufferPool& buffers);

    // For accepting into and connecting (the socket before any byte flows).
    uv_tcp_t* tcp() { return &tcp_; }
    uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }

    // Adopts a connected socket (a binary upgrade's hand-off). False: `fd` is left open.
    bool open(int fd) { return uv_tcp_open(&tcp_, fd) == 0; }
    // For a binary upgrade (proxy/handoff/): a duplicate of the socket (close-on-exec) and
    // the bytes accepted for writing that have not reached the kernel, in order. Nothing
    // changes here: the caller closes this transport before the loop turns again, which
    // cancels the queued writes without sending them (or, on -1, carries on with it).
    // -1 when the queue cannot be read back exactly (corked, or libuv disagrees).
    int detach_for_handoff(std::string* unwritten);

    int splice_fd() const override;
    bool input_waiting() const override;
    bool start_reading() override;
    void stop_reading() override;
    using Transport::write;
    bool write(std::initializer_list<std::string_view> pieces) override;
    using Transport::write_buffer;
    Written write_buffer(BufferPool::Buffer* buf, std::size_t offset, std::size_t len) override;
    void cork() override { writer_.cork(); }
    void uncork() override { writer_.uncork(); }
    void drop_cork_buffer() override { writer_.drop_cork_buffer(); }
    std::size_t queued() const override { return writer_.queued() + buffer_bytes_queued_; }
    std::uint64_t bytes_written() const override { return writer_.bytes_written(); }
    Shutdown shutdown_write() override;
    void close(ClosedCallback closed = nullptr, void* arg = nullptr) override;

private:
    ~TcpTransport() override = default;  // only through close()

    static void on_alloc(uv_handle_t* handle, std::size_t suggested, uv_buf_t* buf);
    static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
    static void on_buffer_written(uv_write_t* req, int status);
    static void on_shutdown(uv_shutdown_t* req, int status);
    static void on_closed(uv_handle_t* handle);

    void on_writer_drained(StreamWriter& writer) override;
    void on_writer_failed(StreamWriter& writer, int status) override;
    void fail_write(int status);

    uv_tcp_t tcp_{};
    BufferPool& buffers_;
    StreamWriter writer_;
    std::size_t buffer_bytes_queued_ = 0;  // rests of pool buffers being written
};

}  // namespace sy
