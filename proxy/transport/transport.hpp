// One byte stream to a peer, whatever carries it (plain TCP today; TLS plugs in here):
// reads into buffers lent by the worker's pool, ordered writes (copied, or zero-copy from a
// pool buffer), cork, half-close, close. The HTTP exchange (ClientConn, UpstreamConn) and
// the tunnel pump are written against this interface once and know nothing of what is
// under it (docs/architecture.md, "Layers").
//
// Backpressure is the user's: queued() says how many bytes wait to reach the peer, and
// on_transport_drained says when that reached 0; the user stops and starts reading.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "proxy/buffer_pool.hpp"

namespace sy {

class Transport;

// What a transport's user hears. Callbacks come from the event loop; the ones a call can
// also trigger at once are noted.
class TransportUser {
public:
    virtual ~TransportUser() = default;
    // `len` bytes arrived at buf->data() + the read headroom. The user owns `buf` from now
    // on: it gives it back to its pool (buf->pool->give) or hands it on with
    // Transport::write_buffer.
    virtual void on_transport_read(Transport& t, BufferPool::Buffer* buf, std::size_t len) = 0;
    // The peer ended its direction (UV_EOF) or the connection broke (another status).
    // Reading is stopped.
    virtual void on_transport_read_end(Transport& t, int status) = 0;
    // Everything written has reached the kernel: queued() is 0.
    virtual void on_transport_drained(Transport& t) = 0;
    // A write failed; no later write does anything. Once; also from inside write().
    virtual void on_transport_write_failed(Transport& t, int status) = 0;
    // A shutdown_write() that answered `pending` is done (status 0) or failed.
    virtual void on_transport_shutdown(Transport& t, int status) = 0;
    // While set_report_readable is on: the socket has bytes (or its EOF) to take, and the
    // user takes them itself (splice(2)). Nothing was read.
    virtual void on_transport_readable(Transport& /*t*/) {}
};

class Transport {
public:
    enum class Shutdown { done, pending, failed };

    virtual ~Transport() = default;

    // Who hears the events (null: nobody; reads are then given back unread).
    void set_user(TransportUser* user) { user_ = user; }

    // Reads take at most this many bytes (and never more than a pool buffer holds).
    void set_read_limit(std::size_t max) { read_limit_ = static_cast<std::uint32_t>(max < kMaxReadLimit ? max : kMaxReadLimit); }
    // Reads land this many bytes into their buffer, leaving room before the bytes (for a
    // WebSocket frame header, written in front of the payload so that both leave in one
    // write). Set while not reading.
    void set_read_headroom(std::size_t bytes) { read_headroom_ = static_cast<std::uint8_t>(bytes); }
    std::size_t read_headroom() const { return read_headroom_; }
    // False when reading could not start (the connection is broken).
    virtual bool start_reading() = 0;
    virtual void stop_reading() = 0;
    bool reading() const { return reading_; }
    // splice(2) (proxy/splice_pipe.hpp): the socket under a plain TCP transport, -1 for any
    // other; and, while reporting readable, a readable socket is announced with
    // on_transport_readable instead of being read.
    virtual int splice_fd() const { return -1; }
    // Bytes from the peer wait in the kernel, not read yet.
    virtual bool input_waiting() const = 0;
    void set_report_readable(bool on) { report_readable_ = on; }

    // Writes the pieces in order, as one write; what the peer does not take at once is
    // copied. False once writing has failed.
    virtual bool write(std::initializer_list<std::string_view> pieces) = 0;
    bool write(std::string_view data) { return write({data}); }
    // Writes buf->data()[offset, offset + len) and gives `buf` back to its pool once
    // written: no copy. Takes `buf` in every case (given back at once on failure). `queued`:
    // part of it waits (queued() > 0, on_transport_drained follows).
    enum class Written { all, queued, failed };
    virtual Written write_buffer(BufferPool::Buffer* buf, std::size_t offset, std::size_t len) = 0;
    Written write_buffer(BufferPool::Buffer* buf, std::size_t len) { return write_buffer(buf, 0, len); }
    // While corked, writes are collected and uncork() sends them as one.
    virtual void cork() = 0;
    virtual void uncork() = 0;
    // Gives back what corking keeps between uses (for a transport that will not cork again).
    virtual void drop_cork_buffer() = 0;
    // Bytes accepted by write()/write_buffer() that have not reached the kernel yet.
    virtual std::size_t queued() const = 0;
    // Bytes accepted by write() since the start (write_buffer's bytes are counted by
    // whoever hands the buffers on: the tunnel).
    virtual std::uint64_t bytes_written() const = 0;

    // Ends our direction once everything queued is out (TCP: FIN; TLS: close_notify, then
    // FIN). `done`: ended now; `pending`: on_transport_shutdown follows; `failed`.
    virtual Shutdown shutdown_write() = 0;
    // Closes now: no event after this returns. The transport frees itself once its handles
    // are closed, then calls `closed(arg)` if given; the caller forgets it.
    using ClosedCallback = void (*)(void* arg);
    virtual void close(ClosedCallback closed = nullptr, void* arg = nullptr) = 0;

protected:
    // For close(): remember who to tell, and (from the last close callback) free the
    // transport and tell them.
    void set_closed_callback(ClosedCallback closed, void* arg) {
        closed_ = closed;
        closed_arg_ = arg;
    }
    static void finish_close(Transport* t) {
        const ClosedCallback closed = t->closed_;
        void* arg = t->closed_arg_;
        delete t;
        if (closed != nullptr) closed(arg);
    }

    static constexpr std::size_t kMaxReadLimit = 1u << 30;
    TransportUser* user_ = nullptr;
    std::uint32_t read_limit_ = 64 * 1024;
    std::uint8_t read_headroom_ = 0;
    bool reading_ : 1 = false;
    // For the implementations (packed here with the fields above: an idle tunnel holds two
    // transports, so every 8 bytes count).
    bool write_failed_ : 1 = false;
    bool closing_ : 1 = false;
    bool report_readable_ : 1 = false;

private:
    ClosedCallback closed_ = nullptr;
    void* closed_arg_ = nullptr;
};

}  // namespace sy
