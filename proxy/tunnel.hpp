// The tunnel: after an accepted 101, raw bytes flow both ways between the client and the
// upstream connection, never parsed, never changed (docs/upgrades.md, "The tunnel").
//
// One symmetric pump, parameterised by direction: bytes read from side `from` are written
// to side `1 - from`. It is entered by swapping the streams' read callbacks to the tunnel's
// (ClientConn and UpstreamConn keep owning their handles). Per direction:
//   - zero copy: a read lands in a buffer from the worker's pool; what the kernel does not
//     take at once is written from that same buffer, and the buffer goes back to the pool
//     when written, so buffers exist only while bytes flow;
//   - backpressure: while a buffer is being written toward a side (or the connection's
//     own writer still holds bytes for it), the other side is not read; a read never takes
//     more than `buffer` (tunnel.buffer), so at most that much is queued per direction;
//   - half-close: EOF from a side becomes a write shutdown toward the other side once what
//     is queued toward it is written (libuv's uv_shutdown waits for the queue); the other
//     direction keeps flowing.
// The tunnel ends when both directions have ended, on a reset or error of either side, after
// tunnel_idle without a byte either way (the worker's sweep calls end(), see
// idle_since()), or when its owner ends it (shutdown); then the owner closes both
// connections and writes the access-log record. A tunnel holds no timer and no buffer of
// its own: idle, it costs this object and the two connections' sockets.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <uv.h>

#include "proxy/buffer_pool.hpp"
#include "proxy/ops/stats.hpp"
#include "proxy/stream_writer.hpp"

namespace sy {

class TunnelOwner {
public:
    virtual ~TunnelOwner() = default;
    // Shut down writing toward `side` (0 = client, 1 = upstream); answer with
    // Tunnel::on_shutdown_done.
    virtual void tunnel_shutdown(int side) = 0;
    // The tunnel ended (for the access log and the metrics). Called once.
    virtual void tunnel_ended(TunnelEnd how) = 0;
};

class Tunnel {
public:
    enum Side { kClient = 0, kUpstream = 1 };

    struct Endpoint {
        uv_stream_t* stream = nullptr;
        StreamWriter* writer = nullptr;  // the connection's writer toward this side (held
                                         // bytes and the 101 go through it first)
    };

    Tunnel(TunnelOwner& owner, Endpoint client_end, Endpoint upstream_end, BufferPool& pool, std::size_t buffer);
    ~Tunnel();
    Tunnel(const Tunnel&) = delete;
    Tunnel& operator=(const Tunnel&) = delete;

    // Hands over the bytes already read at the switch, in order (`to_upstream`: what the
    // client sent after its request; `to_client`: what the upstream sent after its 101 head),
    // then reads both sides. A side whose stream is already being read (`*_reading`) keeps
    // being read: its read callbacks are swapped to the tunnel's in place.
    void start(std::string_view to_upstream, std::string_view to_client, bool client_reading,
               bool upstream_reading);

    // Events the owner forwards from its writers and its shutdown requests.
    void on_writer_drained(Side side);
    void on_writer_failed(Side side, int status);
    void on_shutdown_done(Side side, int status);

    // Ends the tunnel now (e.g. shutdown's drain deadline). Idempotent.
    void end(TunnelEnd how);
    bool ended() const { return ended_; }

    // Bytes that went from `side` to the other side.
    std::uint64_t bytes_from(Side side) const { return dirs_[side].bytes; }
    // The loop time of the last byte either way (or of the switch).
    std::uint64_t idle_since() const { return last_activity_ms_; }

    // For the access log: the protocol switched to, the request line, the client's IP.
    std::string protocol;
    std::string method;
    std::string target;
    std::string client;

private:
    // One direction: bytes read from `from` written toward the other side.
    struct Direction {
        BufferPool::Buffer* writing = nullptr;  // being written toward the other side
        bool reading = false;   // reading `from` is started
        bool eof = false;       // `from` sent EOF
        bool shutdown_requested = false;
        bool done = false;      // EOF forwarded as a shutdown toward the other side
        std::uint64_t bytes = 0;
    };

    static void on_alloc(uv_handle_t* handle, std::size_t suggested, uv_buf_t* buf);
    static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
    static void on_write(uv_write_t* req, int status);

    static Side other(Side s) { return s == kClient ? kUpstream : kClient; }
    Side side_of(uv_stream_t* stream) const { return stream == ends_[kClient].stream ? kClient : kUpstream; }
    void pump(Side from, BufferPool::Buffer* buffer, std::size_t len);
    void set_reading(Side from, bool on);
    void update_reading(Side from);
    void on_eof(Side from);

    TunnelOwner& owner_;
    std::array<Endpoint, 2> ends_;
    std::array<Direction, 2> dirs_;  // indexed by the side read from
    BufferPool& pool_;
    std::size_t buffer_;
    std::uint64_t last_activity_ms_ = 0;
    bool ended_ = false;
};

}  // namespace sy
