// The tunnel: after an accepted 101, raw bytes flow both ways between the client and the
// upstream connection, never parsed, never changed (docs/upgrades.md, "The tunnel").
//
// One symmetric pump, parameterised by direction: bytes read from side `from` are written
// to side `1 - from`. It is entered by making the tunnel the user of both connections'
// transports (proxy/transport/transport.hpp); ClientConn and UpstreamConn keep owning them.
// Per direction:
//   - zero copy: a read lands in a buffer from the worker's pool and is handed to the other
//     transport with write_buffer, which writes it (the rest of a partial write too) from
//     that same buffer and gives it back when written: buffers exist only while bytes flow;
//   - backpressure: a side is read only while nothing is queued toward the other side, and
//     a read never takes more than `buffer` (tunnel.buffer), so at most that much is ever
//     queued per direction;
//   - half-close: EOF from a side becomes Transport::shutdown_write toward the other side,
//     which waits for what is queued; the other direction keeps flowing.
// The tunnel ends when both directions have ended, on a reset or error of either side, after
// tunnel_idle without a byte either way (the worker's sweep calls end(), see
// idle_since()), or when its owner ends it (shutdown); then the owner closes both
// connections and writes the access-log record. A tunnel holds no timer and no buffer of
// its own: idle, it costs this object and the two connections.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <uv.h>

#include "proxy/ops/stats.hpp"
#include "proxy/splice_pipe.hpp"
#include "proxy/transport/transport.hpp"

namespace sy {

class TunnelOwner {
public:
    virtual ~TunnelOwner() = default;
    // The tunnel ended (for the access log and the metrics). Called once.
    virtual void tunnel_ended(TunnelEnd how) = 0;
};

// What the owner sees of a tunnel, raw (Tunnel) or a terminated WebSocket
// (proxy/ws_tunnel.hpp): two transports it is the user of, byte counters, the idle clock,
// and an end that is told to the owner once.
class TunnelBase : protected TransportUser {
public:
    enum Side { kClient = 0, kUpstream = 1 };

    ~TunnelBase() override = default;
    TunnelBase(const TunnelBase&) = delete;
    TunnelBase& operator=(const TunnelBase&) = delete;

    // Ends the tunnel now (e.g. shutdown's drain deadline). Idempotent.
    void end(TunnelEnd how);
    bool ended() const { return ended_; }

    // Bytes that went from `side` toward the other side, as written there (a terminated
    // WebSocket counts payload toward the upstream and frames toward the client).
    std::uint64_t bytes_from(Side side) const { return bytes_[side]; }
    // The loop time of the last byte either way (or of the switch).
    std::uint64_t idle_since() const { return last_activity_ms_; }

    // For the access log: the protocol switched to, the request line, the client's IP. Kept
    // in one block (one allocation, 32 bytes in the tunnel instead of four strings' 128).
    void set_labels(std::string_view protocol, std::string_view method, std::string_view target,
                    std::string_view client);
    std::string_view protocol() const { return label(0); }
    std::string_view method() const { return label(1); }
    std::string_view target() const { return label(2); }
    std::string_view client() const { return label(3); }
    // The four labels as one block, for a tunnel that sleeps (proxy/hibernation.hpp).
    const std::string& labels_block() const { return labels_; }
    void set_labels_block(std::string block) { labels_ = std::move(block); }

protected:
    TunnelBase(TunnelOwner& owner, uv_loop_t* loop, Transport& client_end, Transport& upstream_end);
    std::string_view label(int index) const;
    // Called by end() before the owner hears of it (and closes both transports).
    virtual void on_end(TunnelEnd /*how*/) {}

    static Side other(Side s) { return s == kClient ? kUpstream : kClient; }
    Side side_of(const Transport& t) const { return &t == ends_[kClient] ? kClient : kUpstream; }
    static TunnelEnd reset_of(Side side) {
        return side == kClient ? TunnelEnd::client_reset : TunnelEnd::upstream_reset;
    }
    void touch() { last_activity_ms_ = uv_now(loop_); }

    TunnelOwner& owner_;
    uv_loop_t* loop_;  // for its clock
    std::array<Transport*, 2> ends_;
    std::array<std::uint64_t, 2> bytes_{};  // indexed by the side the bytes came from
    std::string labels_;  // protocol, method, target, client, each followed by a NUL
    std::uint64_t last_activity_ms_ = 0;
    bool ended_ = false;
};

class Tunnel final : public TunnelBase {
public:
    // `buffer`: tunnel.buffer, the most bytes a read takes and the bound per direction.
    // `splice`: the worker's pipe when both ends are plain TCP and tunnel.splice is auto;
    // a direction whose reads come in large then moves its bytes with splice(2) (and goes
    // back to reading when they come in small).
    Tunnel(TunnelOwner& owner, uv_loop_t* loop, Transport& client_end, Transport& upstream_end, std::size_t buffer,
           SplicePipe* splice = nullptr);

    // Hands over the bytes already read at the switch, in order (`to_upstream`: what the
    // client sent after its request; `to_client`: what the upstream sent after its 101 head),
    // then becomes both transports' user and reads both sides. A transport that is already
    // reading keeps reading (no stop and start).
    void start(std::string_view to_upstream, std::string_view to_client);

    // A binary upgrade (proxy/handoff/): what the tunnel is, apart from its sockets and the
    // bytes queued toward each side (which the transports give).
    struct DirectionState {
        bool eof = false;                 // the side sent EOF
        bool shutdown_requested = false;  // ... passed on toward the other side
        bool done = false;                // ... and sent
    };
    struct State {
        std::array<std::uint64_t, 2> bytes{};  // from each side
        std::uint64_t idle_ms = 0;
        std::array<DirectionState, 2> dirs;   // indexed by the side read from
    };
    State state() const;
    // Continues a handed tunnel: `state` as the old process left it, then `unwritten[side]`
    // (what it had not written toward each side yet) goes first, an EOF it was passing on
    // follows that, and every side that has not ended is read.
    void resume(const State& state, const std::array<std::string_view, 2>& unwritten);

private:
    // One direction: bytes read from `from` written toward the other side.
    using Direction = DirectionState;

    void on_transport_read(Transport& t, BufferPool::Buffer* buf, std::size_t len) override;
    void on_transport_read_end(Transport& t, int status) override;
    void on_transport_drained(Transport& t) override;
    void on_transport_write_failed(Transport& t, int status) override;
    void on_transport_shutdown(Transport& t, int status) override;
    void on_transport_readable(Transport& t) override;

    void become_user();
    void set_spliced(Side from, bool on);
    // After `len` bytes were moved from `from` toward the other side (a read or a splice).
    void count(Side from, std::size_t len);
    void update_reading(Side from);
    void on_eof(Side from);
    void on_shutdown_done(Side side, int status);

    std::array<Direction, 2> dirs_;  // indexed by the side read from
    std::array<bool, 2> spliced_{};  // the direction moves its bytes with splice(2)
    std::size_t buffer_;
    SplicePipe* splice_;
};

}  // namespace sy
