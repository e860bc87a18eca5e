#include "proxy/tunnel.hpp"

#include <cerrno>

#include <sys/socket.h>

#include "proxy/log.hpp"

namespace sy {

Tunnel::Tunnel(TunnelOwner& owner, Endpoint client_end, Endpoint upstream_end, BufferPool& pool, std::size_t buffer)
    : owner_(owner), ends_{client_end, upstream_end}, pool_(pool), buffer_(buffer) {
    last_activity_ms_ = uv_now(client_end.stream->loop);
}

Tunnel::~Tunnel() {
    // Writes still in flight complete (or are cancelled) after we are gone: they only give
    // their buffer back.
    for (Direction& dir : dirs_) {
        if (dir.writing != nullptr) dir.writing->owner = nullptr;
    }
}

void Tunnel::start(std::string_view to_upstream, std::string_view to_client, bool client_reading,
                   bool upstream_reading) {
    // The held bytes go first, in order (docs/upgrades.md, "Bytes around the switch").
    if (!to_upstream.empty()) {
        ends_[kUpstream].writer->write(to_upstream);
        dirs_[kClient].bytes += to_upstream.size();
    }
    if (!to_client.empty()) {
        ends_[kClient].writer->write(to_client);
        dirs_[kUpstream].bytes += to_client.size();
    }
    const bool reading[2] = {client_reading, upstream_reading};
    for (Side side : {kClient, kUpstream}) {
        uv_stream_t* stream = ends_[side].stream;
        stream->data = this;
        if (reading[side]) {
            // libuv reads stream->alloc_cb/read_cb at every read, so replacing them takes
            // effect at once, even inside the old read callback.
            stream->alloc_cb = &Tunnel::on_alloc;
            stream->read_cb = &Tunnel::on_read;
            dirs_[side].reading = true;
        }
    }
    update_reading(kClient);
    update_reading(kUpstream);
}

// A buffer from the pool, never larger than the per-direction bound.
void Tunnel::on_alloc(uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
    auto* self = static_cast<Tunnel*>(handle->data);
    BufferPool::Buffer* b = self->pool_.take();
    std::size_t len = self->pool_.size() < self->buffer_ ? self->pool_.size() : self->buffer_;
    *buf = uv_buf_init(b->data(), static_cast<unsigned>(len));
}

void Tunnel::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* self = static_cast<Tunnel*>(stream->data);
    BufferPool::Buffer* b = buf->base != nullptr ? BufferPool::Buffer::of(buf->base) : nullptr;
    if (nread <= 0 || self->ended_) {
        if (b != nullptr) self->pool_.give(b);  // nread 0: EAGAIN, the buffer comes back
        if (self->ended_ || nread == 0) return;
        Side from = self->side_of(stream);
        if (nread == UV_EOF) {
            self->on_eof(from);
        } else {
            self->end(from == kClient ? TunnelEnd::client_reset : TunnelEnd::upstream_reset);
        }
        return;
    }
    self->pump(self->side_of(stream), b, static_cast<std::size_t>(nread));
}

void Tunnel::pump(Side from, BufferPool::Buffer* b, std::size_t len) {
    Side to = other(from);
    dirs_[from].bytes += len;
    g_stats.add(from == kClient ? g_stats.bytes_from_clients : g_stats.bytes_to_clients, static_cast<std::int64_t>(len));
    last_activity_ms_ = uv_now(ends_[from].stream->loop);
    uv_stream_t* out = ends_[to].stream;
    uv_buf_t data = uv_buf_init(b->data(), static_cast<unsigned>(len));
    int sent = uv_try_write(out, &data, 1);
    if (sent == static_cast<int>(len)) {
        pool_.give(b);
        return;
    }
    if (sent < 0 && sent != UV_EAGAIN) {
        pool_.give(b);
        end(to == kClient ? TunnelEnd::client_reset : TunnelEnd::upstream_reset);
        return;
    }
    // The kernel took part of it (or nothing): the rest is written from this very buffer,
    // and `from` is not read until it is out.
    std::size_t done = sent > 0 ? static_cast<std::size_t>(sent) : 0;
    uv_buf_t rest = uv_buf_init(b->data() + done, static_cast<unsigned>(len - done));
    b->owner = this;
    b->side = from;
    b->req.data = b;
    if (uv_write(&b->req, out, &rest, 1, &Tunnel::on_write) != 0) {
        pool_.give(b);
        end(to == kClient ? TunnelEnd::client_reset : TunnelEnd::upstream_reset);
        return;
    }
    dirs_[from].writing = b;
    set_reading(from, false);
}

// Runs when a buffer's write ends, also after the tunnel is gone (a close cancels it).
void Tunnel::on_write(uv_write_t* req, int status) {
    auto* b = static_cast<BufferPool::Buffer*>(req->data);
    auto* self = static_cast<Tunnel*>(b->owner);
    auto from = static_cast<Side>(b->side);
    b->pool->give(b);
    if (self == nullptr) return;
    self->dirs_[from].writing = nullptr;
    if (self->ended_) return;
    if (status < 0) {
        self->end(other(from) == kClient ? TunnelEnd::client_reset : TunnelEnd::upstream_reset);
        return;
    }
    self->update_reading(from);
}

// Reads `from` only while it has not ended and nothing is queued toward the other side
// beyond what the connection's writer may still hold under the bound.
void Tunnel::update_reading(Side from) {
    if (ended_) return;
    const Direction& dir = dirs_[from];
    bool want = !dir.eof && dir.writing == nullptr && ends_[other(from)].writer->queued() < buffer_;
    set_reading(from, want);
}

void Tunnel::set_reading(Side from, bool on) {
    Direction& dir = dirs_[from];
    if (dir.reading == on) return;
    uv_stream_t* stream = ends_[from].stream;
    if (on) {
        if (uv_read_start(stream, &Tunnel::on_alloc, &Tunnel::on_read) != 0) {
            end(TunnelEnd::error);
            return;
        }
    } else {
        uv_read_stop(stream);
    }
    dir.reading = on;
}

void Tunnel::on_eof(Side from) {
    Direction& dir = dirs_[from];
    dir.eof = true;
    set_reading(from, false);
    SY_TRACE("tunnel %p: EOF from %s", static_cast<void*>(this), from == kClient ? "client" : "upstream");
    if (dir.shutdown_requested) return;
    dir.shutdown_requested = true;
    const Side to = other(from);
    const bool flushed = dir.writing == nullptr && ends_[to].writer->queued() == 0;
    if (!flushed) {
        // Bytes are still on their way toward `to`: libuv shuts down after them.
        owner_.tunnel_shutdown(to);
        return;
    }
    if (dirs_[to].done) {
        // `to` already sent its EOF (all of it read) and got ours: both directions are over.
        // Closing sends the FIN itself, so no shutdown(2) first.
        end(TunnelEnd::eof);
        return;
    }
    // Nothing queued toward `to`: shut its write side down now. uv_shutdown would first
    // wait for writability (an epoll_ctl, an epoll_wait round, another epoll_ctl).
    int fd = -1;
    int r = uv_fileno(reinterpret_cast<uv_handle_t*>(ends_[to].stream), &fd);
    if (r == 0 && ::shutdown(fd, SHUT_WR) != 0) r = -errno;
    on_shutdown_done(to, r);
}

void Tunnel::on_shutdown_done(Side side, int status) {
    if (ended_) return;
    if (status != 0) {
        end(side == kClient ? TunnelEnd::client_reset : TunnelEnd::upstream_reset);
        return;
    }
    dirs_[other(side)].done = true;
    if (dirs_[kClient].done && dirs_[kUpstream].done) end(TunnelEnd::eof);
}

void Tunnel::on_writer_drained(Side side) {
    if (ended_) return;
    update_reading(other(side));
}

void Tunnel::on_writer_failed(Side side, int) {
    if (ended_) return;
    end(side == kClient ? TunnelEnd::client_reset : TunnelEnd::upstream_reset);
}

void Tunnel::end(TunnelEnd how) {
    if (ended_) return;
    ended_ = true;
    set_reading(kClient, false);
    set_reading(kUpstream, false);
    SY_TRACE("tunnel %p ended: %s", static_cast<void*>(this), tunnel_end_name(how));
    owner_.tunnel_ended(how);
}

}  // namespace sy
