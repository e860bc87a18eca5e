#include "proxy/tunnel.hpp"

#include <cerrno>

#include "proxy/log.hpp"

namespace sy {

TunnelBase::TunnelBase(TunnelOwner& owner, uv_loop_t* loop, Transport& client_end, Transport& upstream_end)
    : owner_(owner), loop_(loop), ends_{&client_end, &upstream_end} {
    last_activity_ms_ = uv_now(loop_);
}

void TunnelBase::set_labels(std::string_view protocol, std::string_view method, std::string_view target,
                            std::string_view client) {
    labels_.clear();
    labels_.reserve(protocol.size() + method.size() + target.size() + client.size() + 4);
    for (std::string_view part : {protocol, method, target, client}) {
        labels_.append(part);
        labels_.push_back('\0');
    }
}

std::string_view TunnelBase::label(int index) const {
    std::string_view rest = labels_;
    for (int i = 0; i < index && !rest.empty(); ++i) rest.remove_prefix(rest.find('\0') + 1);
    return rest.substr(0, rest.find('\0'));
}

// The owner closes both transports (which then call no one) before it lets the tunnel go.
void TunnelBase::end(TunnelEnd how) {
    if (ended_) return;
    ended_ = true;
    for (Transport* t : ends_) t->stop_reading();
    SY_TRACE("tunnel %p ended: %s", static_cast<void*>(this), tunnel_end_name(how));
    on_end(how);
    owner_.tunnel_ended(how);
}

Tunnel::Tunnel(TunnelOwner& owner, uv_loop_t* loop, Transport& client_end, Transport& upstream_end,
               std::size_t buffer, SplicePipe* splice)
    : TunnelBase(owner, loop, client_end, upstream_end), buffer_(buffer), splice_(splice) {}

namespace {

// A read at least this large turns its direction to splice(2); a move smaller than
// kSpliceBelow turns it back. Below a few KiB, two splices cost more than a read and a
// write (HAProxy's splice-auto reasons the same way).
constexpr std::size_t kSpliceFrom = 16 * 1024;
constexpr std::size_t kSpliceBelow = 2 * 1024;

}  // namespace

void Tunnel::start(std::string_view to_upstream, std::string_view to_client) {
    // The held bytes go first, in order (docs/upgrades.md, "Bytes around the switch").
    if (!to_upstream.empty()) {
        ends_[kUpstream]->write(to_upstream);
        bytes_[kClient] += to_upstream.size();
    }
    if (!to_client.empty()) {
        ends_[kClient]->write(to_client);
        bytes_[kUpstream] += to_client.size();
        g_stats.add(g_stats.bytes_to_clients, static_cast<std::int64_t>(to_client.size()));
    }
    become_user();
    update_reading(kClient);
    update_reading(kUpstream);
}

void Tunnel::become_user() {
    for (Transport* t : ends_) {
        t->set_user(this);
        t->set_read_limit(buffer_);
    }
}

Tunnel::State Tunnel::state() const {
    State s;
    s.bytes = bytes_;
    s.idle_ms = uv_now(loop_) - last_activity_ms_;
    s.dirs = dirs_;
    return s;
}

void Tunnel::resume(const State& state, const std::array<std::string_view, 2>& unwritten) {
    bytes_ = state.bytes;
    dirs_ = state.dirs;
    const std::uint64_t now = uv_now(loop_);
    last_activity_ms_ = now > state.idle_ms ? now - state.idle_ms : 0;
    become_user();
    for (Side side : {kClient, kUpstream}) {
        if (!unwritten[side].empty() && !ends_[side]->write(unwritten[side])) {
            end(reset_of(side));
            return;
        }
    }
    // An EOF being passed on when the old process let go: sent again, behind the queued
    // bytes (a second shutdown of a side already shut down does no harm).
    for (Side from : {kClient, kUpstream}) {
        Direction& dir = dirs_[from];
        if (!dir.shutdown_requested || dir.done) continue;
        const Side to = other(from);
        switch (ends_[to]->shutdown_write()) {
            case Transport::Shutdown::done: on_shutdown_done(to, 0); break;
            case Transport::Shutdown::pending: break;
            case Transport::Shutdown::failed: on_shutdown_done(to, UV_EPIPE); break;
        }
        if (ended_) return;
    }
    update_reading(kClient);
    update_reading(kUpstream);
}

void Tunnel::on_transport_read(Transport& t, BufferPool::Buffer* buf, std::size_t len) {
    if (ended_) {
        buf->pool->give(buf);
        return;
    }
    const Side from = side_of(t);
    const Side to = other(from);
    count(from, len);
    if (splice_ != nullptr && len >= kSpliceFrom) set_spliced(from, true);
    switch (ends_[to]->write_buffer(buf, len)) {
        case Transport::Written::all: break;
        case Transport::Written::queued:
            // What the kernel did not take waits in the other transport: `from` is not read
            // until it is out (on_transport_drained).
            t.stop_reading();
            break;
        case Transport::Written::failed: end(reset_of(to)); break;
    }
}

void Tunnel::count(Side from, std::size_t len) {
    bytes_[from] += len;
    g_stats.add(from == kClient ? g_stats.bytes_from_clients : g_stats.bytes_to_clients, static_cast<std::int64_t>(len));
    touch();
}

void Tunnel::set_spliced(Side from, bool on) {
    if (on && (ends_[from]->splice_fd() < 0 || ends_[other(from)]->splice_fd() < 0)) return;
    spliced_[from] = on;
    ends_[from]->set_report_readable(on);
}

// `from` is readable: socket -> pipe -> the other socket, the pipe empty again on return
// (proxy/splice_pipe.hpp). What the other side does not take at once goes the copy path's
// way: into a pool buffer, queued, and `from` waits until it is written.
void Tunnel::on_transport_readable(Transport& t) {
    if (ended_ || splice_ == nullptr) return;
    const Side from = side_of(t);
    const Side to = other(from);
    // splice(2) answers 0 at an EOF, and also at TCP urgent data after the peer's FIN, and
    // EAGAIN at the mark before it (tcp_read_sock never steps over the mark; FIONREAD counts
    // only up to it). So whatever is not a move goes back to the copy path, whose read steps
    // over the mark and tells an EOF or an error for sure (once per direction at EOF).
    const std::size_t n = splice_->fill(t.splice_fd(), buffer_);
    if (n == 0) {
        set_spliced(from, false);
        return;
    }
    count(from, n);
    int error = 0;
    const std::size_t out = splice_->drain_to(ends_[to]->splice_fd(), n, &error);
    g_stats.add(g_stats.bytes_spliced, static_cast<std::int64_t>(out));
    if (error == EPIPE || error == ECONNRESET || error == ETIMEDOUT) {
        splice_->discard(n - out);
        end(reset_of(to));
        return;
    }
    if (out < n) {
        // The destination is full (or refused splice for another reason, in which case the
        // copy path's write meets the error, if it is one).
        BufferPool::Buffer* rest = splice_->read_out(n - out);
        if (rest == nullptr) {
            end(TunnelEnd::error);
            return;
        }
        switch (ends_[to]->write_buffer(rest, n - out)) {
            case Transport::Written::all: break;
            case Transport::Written::queued: t.stop_reading(); break;
            case Transport::Written::failed: end(reset_of(to)); return;
        }
    }
    if (n < kSpliceBelow) set_spliced(from, false);
}

void Tunnel::on_transport_read_end(Transport& t, int status) {
    if (ended_) return;
    const Side from = side_of(t);
    if (status == UV_EOF) {
        on_eof(from);
    } else {
        end(reset_of(from));
    }
}

void Tunnel::on_transport_drained(Transport& t) {
    if (ended_) return;
    update_reading(other(side_of(t)));
}

void Tunnel::on_transport_write_failed(Transport& t, int) {
    if (ended_) return;
    end(reset_of(side_of(t)));
}

void Tunnel::on_transport_shutdown(Transport& t, int status) { on_shutdown_done(side_of(t), status); }

// Reads `from` only while it has not ended and nothing is queued toward the other side.
void Tunnel::update_reading(Side from) {
    if (ended_) return;
    Transport& t = *ends_[from];
    if (!dirs_[from].eof && ends_[other(from)]->queued() == 0) {
        if (!t.start_reading()) end(reset_of(from));
    } else {
        t.stop_reading();
    }
}

void Tunnel::on_eof(Side from) {
    Direction& dir = dirs_[from];
    dir.eof = true;
    SY_TRACE("tunnel %p: EOF from %s", static_cast<void*>(this), from == kClient ? "client" : "upstream");
    if (dir.shutdown_requested) return;
    dir.shutdown_requested = true;
    const Side to = other(from);
    if (dirs_[to].done && ends_[to]->queued() == 0) {
        // `to` already sent its EOF (all of it read) and got ours: both directions are over.
        // Closing sends the FIN itself, so no shutdown(2) first.
        end(TunnelEnd::eof);
        return;
    }
    switch (ends_[to]->shutdown_write()) {
        case Transport::Shutdown::done: on_shutdown_done(to, 0); break;
        case Transport::Shutdown::pending: break;  // after what is queued toward `to`
        case Transport::Shutdown::failed: on_shutdown_done(to, UV_EPIPE); break;
    }
}

void Tunnel::on_shutdown_done(Side side, int status) {
    if (ended_) return;
    if (status != 0) {
        end(reset_of(side));
        return;
    }
    dirs_[other(side)].done = true;
    if (dirs_[kClient].done && dirs_[kUpstream].done) end(TunnelEnd::eof);
}

}  // namespace sy
