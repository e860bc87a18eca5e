#include "proxy/uring/uring_tunnel.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>

#include <sys/socket.h>

#include "proxy/log.hpp"
#include "proxy/ops/stats.hpp"

namespace sy {

UringTunnel::UringTunnel(TunnelOwner& owner, uv_loop_t* loop, Transport& client_end, Transport& upstream_end,
                         std::size_t buffer, UringRing& ring)
    : TunnelBase(owner, loop, client_end, upstream_end), ring_(ring), link_(new UringLink), buffer_(buffer) {
    link_->user = this;
}

UringTunnel::~UringTunnel() {
    ring_.forget(this);
    if (link_->in_flight > 0) {
        // Not ended through end() (on_end cancels and waits): the same here.
        for (Side s : {kClient, kUpstream}) {
            if (fds_[s] < 0) continue;
            io_uring_sqe* sqe = ring_.sqe(link_);
            if (sqe == nullptr) break;
            io_uring_prep_cancel_fd(sqe, fds_[s], IORING_ASYNC_CANCEL_ALL);
            io_uring_sqe_set_data64(sqe, UringRing::user_data(link_, kCancel | unsigned(s)));
        }
        ring_.wait_idle(link_);
    }
    if (link_->in_flight == 0) {
        for (Direction& d : dirs_) {
            for (const Chunk& c : d.queue) ring_.recycle(c.id);
            d.queue.clear();
        }
    }
    // Still in flight (a wait that ran out): the ring frees the link after the last
    // completion; buffers a send may still read stay out of the buffer ring.
    ring_.leave(link_);
}

void UringTunnel::start(std::string_view to_upstream, std::string_view to_client) {
    // The held bytes go first, in order (docs/upgrades.md, "Bytes around the switch"),
    // through the transports, like the 101 before them.
    if (!to_upstream.empty()) {
        ends_[kUpstream]->write(to_upstream);
        bytes_[kClient] += to_upstream.size();
    }
    if (!to_client.empty()) {
        ends_[kClient]->write(to_client);
        bytes_[kUpstream] += to_client.size();
        g_stats.add(g_stats.bytes_to_clients, static_cast<std::int64_t>(to_client.size()));
    }
    for (Transport* t : ends_) {
        t->set_user(this);
        t->stop_reading();
    }
    // The ring takes the sockets once libuv has nothing left to write there.
    if (ends_[kClient]->queued() == 0 && ends_[kUpstream]->queued() == 0) take_sockets();
}

void UringTunnel::take_sockets() {
    for (Side s : {kClient, kUpstream}) {
        fds_[s] = ends_[s]->splice_fd();  // uv_fileno of a plain TCP transport
        if (fds_[s] < 0) {
            end(TunnelEnd::error);
            return;
        }
    }
    in_ring_ = true;
    update_reading(kClient);
    update_reading(kUpstream);
}

// ---------------------------------------------------------------------------------------
// Before the ring takes over (the transports are not reading: these are a safe net).

void UringTunnel::on_transport_read(Transport& t, BufferPool::Buffer* buf, std::size_t len) {
    if (ended_ || in_ring_) {
        buf->pool->give(buf);
        if (!ended_) end(TunnelEnd::error);
        return;
    }
    const Side from = side_of(t);
    bytes_[from] += len;
    g_stats.add(from == kClient ? g_stats.bytes_from_clients : g_stats.bytes_to_clients, static_cast<std::int64_t>(len));
    touch();
    t.stop_reading();
    if (ends_[other(from)]->write_buffer(buf, len) == Transport::Written::failed) end(reset_of(other(from)));
}

void UringTunnel::on_transport_read_end(Transport& t, int status) {
    if (ended_) return;
    end(status == UV_EOF ? TunnelEnd::error : reset_of(side_of(t)));
}

void UringTunnel::on_transport_drained(Transport&) {
    if (ended_ || in_ring_) return;
    if (ends_[kClient]->queued() == 0 && ends_[kUpstream]->queued() == 0) take_sockets();
}

void UringTunnel::on_transport_write_failed(Transport& t, int) {
    if (ended_) return;
    end(reset_of(side_of(t)));
}

void UringTunnel::on_transport_shutdown(Transport& t, int status) { on_shutdown_done(side_of(t), status); }

// ---------------------------------------------------------------------------------------
// On the ring.

// Reads `from` while it has not ended and less than `buffer` waits toward the other side.
void UringTunnel::update_reading(Side from) {
    if (ended_ || !in_ring_) return;
    Direction& d = dirs_[from];
    const bool want = !d.eof && d.queued < buffer_;
    if (want && !d.armed && !d.starved) {
        arm(from);
    } else if (!want && d.armed && !d.cancelling) {
        io_uring_sqe* sqe = ring_.sqe(link_);
        if (sqe == nullptr) {
            end(TunnelEnd::error);
            return;
        }
        io_uring_prep_cancel64(sqe, UringRing::user_data(link_, kRecv | unsigned(from)), 0);
        io_uring_sqe_set_data64(sqe, UringRing::user_data(link_, kCancel | unsigned(from)));
        d.cancelling = true;
    }
}

void UringTunnel::arm(Side from) {
    io_uring_sqe* sqe = ring_.sqe(link_);
    if (sqe == nullptr) {
        end(TunnelEnd::error);
        return;
    }
    io_uring_prep_recv_multishot(sqe, fds_[from], nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = UringRing::kGroup;
    // The receive ends by itself once it took what `buffer` leaves room for (sqe->optlen,
    // named file_index in liburing 2.3; the last receive may pass it by less than one
    // buffer): whatever the socket holds, this direction holds less than `buffer` plus one
    // buffer. It is armed again once sends made room.
    const std::size_t room = buffer_ - dirs_[from].queued;
    sqe->file_index = static_cast<std::uint32_t>(std::min<std::size_t>(room, UINT32_MAX));
    io_uring_sqe_set_data64(sqe, UringRing::user_data(link_, kRecv | unsigned(from)));
    dirs_[from].armed = true;
}

void UringTunnel::on_completion(unsigned op, int res, unsigned flags) {
    const auto side = static_cast<Side>(op & 1);
    const unsigned kind = op & ~1u;
    if (kind == kSend) {
        sent(side, res);
        return;
    }
    if (kind != kRecv) return;  // a cancel's own completion: the receive's tells the rest
    Direction& d = dirs_[side];
    const bool more = (flags & IORING_CQE_F_MORE) != 0;
    if (!more) {
        d.armed = false;
        d.cancelling = false;
    }
    if ((flags & IORING_CQE_F_BUFFER) != 0) {
        const unsigned id = flags >> IORING_CQE_BUFFER_SHIFT;
        if (res > 0 && !ended_) {
            received(side, id, static_cast<std::size_t>(res));
        } else {
            ring_.recycle(id);
        }
    }
    if (ended_) return;
    if (res == 0) {
        on_eof(side);
    } else if (res == -ECANCELED) {
        update_reading(side);  // backpressure's cancel: armed again if the queue fell meanwhile
    } else if (res == -EAGAIN) {
        update_reading(side);  // as for a send: from an io-wq thread; armed again
    } else if (res == -ENOBUFS) {
        d.starved = true;  // the worker's buffers are all in flight
        ring_.want_buffers(this);
    } else if (res < 0) {
        end(reset_of(side));
    } else if (!more) {
        update_reading(side);  // the multishot receive stopped by itself (a full CQ)
    }
}

void UringTunnel::on_buffers() {
    for (Side s : {kClient, kUpstream}) {
        if (!dirs_[s].starved) continue;
        dirs_[s].starved = false;
        update_reading(s);
    }
}

void UringTunnel::received(Side from, unsigned id, std::size_t len) {
    bytes_[from] += len;
    g_stats.add(from == kClient ? g_stats.bytes_from_clients : g_stats.bytes_to_clients, static_cast<std::int64_t>(len));
    touch();
    Direction& d = dirs_[from];
    d.queue.push_back(Chunk{id, 0, static_cast<std::uint32_t>(len)});
    d.queued += len;
    send(other(from));
    if (d.queued >= buffer_) update_reading(from);
}

// One send in flight per direction, of everything queued (up to kMaxIov buffers): bytes
// leave in the order they came.
void UringTunnel::send(Side to, bool poll_first) {
    Direction& d = dirs_[other(to)];
    if (ended_ || d.sending || d.queue.empty()) return;
    io_uring_sqe* sqe = ring_.sqe(link_);
    if (sqe == nullptr) {
        end(TunnelEnd::error);
        return;
    }
    if (d.queue.size() == 1) {
        const Chunk& c = d.queue.front();
        io_uring_prep_send(sqe, fds_[to], ring_.buffer(c.id) + c.offset, c.len, MSG_NOSIGNAL);
    } else {
        const std::size_t n = std::min<std::size_t>(d.queue.size(), kMaxIov);
        for (std::size_t i = 0; i < n; ++i) {
            const Chunk& c = d.queue[i];
            d.iov[i] = iovec{ring_.buffer(c.id) + c.offset, c.len};
        }
        d.msg = msghdr{};
        d.msg.msg_iov = d.iov.data();
        d.msg.msg_iovlen = n;
        io_uring_prep_sendmsg(sqe, fds_[to], &d.msg, MSG_NOSIGNAL);
    }
    if (poll_first) sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    io_uring_sqe_set_data64(sqe, UringRing::user_data(link_, kSend | unsigned(to)));
    d.sending = true;
}

void UringTunnel::sent(Side to, int res) {
    const Side from = other(to);
    Direction& d = dirs_[from];
    d.sending = false;
    if (ended_) return;  // the buffers go back once nothing is in flight (on_end)
    if (res == -EAGAIN) {
        // A send that met a full socket twice is retried by the kernel from an io-wq
        // thread, where the socket's O_NONBLOCK (libuv's) answers EAGAIN: sent again,
        // waiting for room first this time.
        send(to, true);
        return;
    }
    if (res <= 0) {
        end(reset_of(to));
        return;
    }
    std::size_t left = static_cast<std::size_t>(res);
    d.queued -= left;
    while (left > 0 && !d.queue.empty()) {
        Chunk& c = d.queue.front();
        if (left >= c.len) {
            left -= c.len;
            ring_.recycle(c.id);
            d.queue.pop_front();
        } else {
            c.offset += static_cast<std::uint32_t>(left);
            c.len -= static_cast<std::uint32_t>(left);
            left = 0;
        }
    }
    if (!d.queue.empty()) {
        send(to);  // the rest (a short send, or buffers that came meanwhile)
    } else if (d.shutdown_requested && !d.done) {
        shut(to);  // the EOF being passed on waited for these bytes
        if (ended_) return;
    }
    update_reading(from);
}

void UringTunnel::on_eof(Side from) {
    Direction& d = dirs_[from];
    d.eof = true;
    SY_TRACE("uring tunnel %p: EOF from %s", static_cast<void*>(this), from == kClient ? "client" : "upstream");
    if (d.shutdown_requested) return;
    d.shutdown_requested = true;
    const Side to = other(from);
    if (dirs_[to].done && d.queue.empty() && !d.sending) {
        // `to` already sent its EOF and got everything: both directions are over. Closing
        // sends the FIN itself.
        end(TunnelEnd::eof);
        return;
    }
    if (d.queue.empty() && !d.sending) shut(to);  // else after the last send (sent())
}

void UringTunnel::shut(Side to) {
    const int rc = ::shutdown(fds_[to], SHUT_WR);
    on_shutdown_done(to, rc == 0 ? 0 : UV_EPIPE);
}

void UringTunnel::on_shutdown_done(Side side, int status) {
    if (ended_) return;
    if (status != 0) {
        end(reset_of(side));
        return;
    }
    dirs_[other(side)].done = true;
    if (dirs_[kClient].done && dirs_[kUpstream].done) end(TunnelEnd::eof);
}

// Before the owner closes the sockets: every op in flight is cancelled and its completion
// awaited, then the buffers held go back to the ring.
void UringTunnel::on_end(TunnelEnd) {
    ring_.forget(this);
    if (!in_ring_) return;
    if (link_->in_flight > 0) {
        for (Side s : {kClient, kUpstream}) {
            io_uring_sqe* sqe = ring_.sqe(link_);
            if (sqe == nullptr) break;
            io_uring_prep_cancel_fd(sqe, fds_[s], IORING_ASYNC_CANCEL_ALL);
            io_uring_sqe_set_data64(sqe, UringRing::user_data(link_, kCancel | unsigned(s)));
        }
        if (!ring_.wait_idle(link_)) {
            log_error("uring tunnel: ops still in flight at the end; their buffers are left out");
            return;
        }
    }
    for (Direction& d : dirs_) {
        for (const Chunk& c : d.queue) ring_.recycle(c.id);
        d.queue.clear();
        d.queued = 0;
    }
}

}  // namespace sy
