// A raw tunnel between two plain-TCP connections driven by the worker's io_uring
// (proxy/uring/ring.hpp) instead of epoll and read/write: the io_uring experiment, on with
// SWITCHYARD_IO_URING=1. Same contract as Tunnel (proxy/tunnel.hpp), other mechanics:
//
//   - The bytes held at the switch (and the 101 before them) go through the transports as
//     usual; once both transports have written everything, the tunnel takes the two
//     sockets (uv_fileno) and libuv never reads or writes them again: it only closes them,
//     when the owner closes the connections after the tunnel ended.
//   - Per direction: one multishot receive (IORING_RECV_MULTISHOT, buffers picked from the
//     worker's provided-buffer ring) on the side read; each buffer received is queued
//     toward the other side and sent from the buffer itself, one send (or sendmsg of the
//     queued buffers) in flight at a time, so bytes leave in order; a buffer goes back to
//     the ring when its last byte was sent.
//   - Backpressure: while `buffer` (tunnel.buffer) bytes or more are queued toward the
//     other side, the receive is cancelled; it is armed again once the queue fell under it.
//     A receive that found the buffer ring empty (ENOBUFS) is armed again when buffers
//     come back.
//   - Half-close: a receive of 0 bytes (EOF) becomes shutdown(SHUT_WR) of the other side
//     once what is queued toward it was sent; the other direction keeps flowing.
//   - Errors and resets end the tunnel. At the end every op in flight is cancelled and its
//     completion awaited (UringRing::wait_idle) before the owner closes the sockets, and the
//     buffers held go back to the ring.
// Not carried over (this is an experiment): uring tunnels never splice, never sleep
// (proxy/hibernation.hpp) and are not handed to a new process by a binary upgrade.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string_view>

#include <sys/socket.h>
#include <sys/uio.h>

#include "proxy/tunnel.hpp"
#include "proxy/uring/ring.hpp"

namespace sy {

class UringTunnel final : public TunnelBase, private UringUser {
public:
    UringTunnel(TunnelOwner& owner, uv_loop_t* loop, Transport& client_end, Transport& upstream_end,
                std::size_t buffer, UringRing& ring);
    ~UringTunnel() override;

    // As Tunnel::start: the held bytes first, in order, then both sides are read.
    void start(std::string_view to_upstream, std::string_view to_client);

private:
    static constexpr unsigned kMaxIov = 16;
    // An op's code: its kind | the side (its socket).
    static constexpr unsigned kRecv = 0;
    static constexpr unsigned kSend = 2;
    static constexpr unsigned kCancel = 4;

    struct Chunk {
        unsigned id;  // the provided buffer
        std::uint32_t offset;
        std::uint32_t len;
    };
    // Indexed by the side read from: its bytes go toward the other side.
    struct Direction {
        std::deque<Chunk> queue;  // received, not sent yet (the first maybe in part)
        std::size_t queued = 0;   // bytes in `queue`
        bool armed = false;       // a multishot receive is in the ring
        bool cancelling = false;  // ... and its cancel too
        bool starved = false;     // it ended ENOBUFS: armed again at on_buffers
        bool sending = false;     // a send toward the other side is in the ring
        bool eof = false;
        bool shutdown_requested = false;
        bool done = false;  // the EOF reached the other side
        msghdr msg{};
        std::array<iovec, kMaxIov> iov{};
    };

    // TransportUser: only until the ring takes over (and as a safe net).
    void on_transport_read(Transport& t, BufferPool::Buffer* buf, std::size_t len) override;
    void on_transport_read_end(Transport& t, int status) override;
    void on_transport_drained(Transport& t) override;
    void on_transport_write_failed(Transport& t, int status) override;
    void on_transport_shutdown(Transport& t, int status) override;
    // UringUser.
    void on_completion(unsigned op, int res, unsigned flags) override;
    void on_buffers() override;
    void on_end(TunnelEnd how) override;

    void take_sockets();
    void update_reading(Side from);
    void arm(Side from);
    void received(Side from, unsigned id, std::size_t len);
    void send(Side to, bool poll_first = false);
    void sent(Side to, int res);
    void on_eof(Side from);
    void shut(Side to);
    void on_shutdown_done(Side side, int status);

    UringRing& ring_;
    UringLink* link_;
    std::size_t buffer_;
    std::array<int, 2> fds_{-1, -1};
    std::array<Direction, 2> dirs_;
    bool in_ring_ = false;  // the sockets are the ring's
};

}  // namespace sy
