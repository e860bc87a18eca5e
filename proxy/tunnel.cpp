#include "proxy/tunnel.hpp"

#include "proxy/log.hpp"

namespace sy {

Tunnel::Tunnel(uv_loop_t* loop, TunnelOwner& owner, Endpoint client_end, Endpoint upstream_end, char* read_buffer,
               std::size_t read_buffer_size, std::size_t buffer)
    : loop_(loop),
      owner_(owner),
      ends_{client_end, upstream_end},
      read_buffer_(read_buffer),
      read_buffer_size_(read_buffer_size),
      buffer_(buffer) {
    started_ms_ = last_activity_ms_ = uv_now(loop_);
}

void Tunnel::start(std::string_view to_upstream, std::string_view to_client) {
    // The held bytes go first, in order (upgrade-semantics.md, "Bytes around the switch").
    if (!to_upstream.empty()) {
        ends_[kUpstream].writer->write(to_upstream);
        dirs_[kClient].bytes += to_upstream.size();
    }
    if (!to_client.empty()) {
        ends_[kClient].writer->write(to_client);
        dirs_[kUpstream].bytes += to_client.size();
    }
    ends_[kClient].stream->data = this;
    ends_[kUpstream].stream->data = this;
    ends_[kClient].writer->set_low_water(buffer_ / 2);
    ends_[kUpstream].writer->set_low_water(buffer_ / 2);
    update_reading(kClient);
    update_reading(kUpstream);
}

// Reads at most what still fits under the bound toward the other side, so the queue never
// exceeds `buffer` however fast the sender is.
void Tunnel::on_alloc(uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
    auto* self = static_cast<Tunnel*>(handle->data);
    Side from = self->side_of(reinterpret_cast<uv_stream_t*>(handle));
    std::size_t queued = self->ends_[from == kClient ? kUpstream : kClient].writer->queued();
    std::size_t room = queued < self->buffer_ ? self->buffer_ - queued : 1;
    std::size_t len = room < self->read_buffer_size_ ? room : self->read_buffer_size_;
    *buf = uv_buf_init(self->read_buffer_, static_cast<unsigned>(len));
}

void Tunnel::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* self = static_cast<Tunnel*>(stream->data);
    if (self->ended_ || nread == 0) return;
    Side from = self->side_of(stream);
    if (nread == UV_EOF) {
        self->on_eof(from);
        return;
    }
    if (nread < 0) {
        self->end(from == kClient ? "client_reset" : "upstream_reset");
        return;
    }
    self->pump(from, buf->base, static_cast<std::size_t>(nread));
}

void Tunnel::pump(Side from, const char* data, std::size_t len) {
    Side to = from == kClient ? kUpstream : kClient;
    dirs_[from].bytes += len;
    last_activity_ms_ = uv_now(loop_);
    ends_[to].writer->write(std::string_view(data, len));
    update_reading(from);
}

// Reads `from` only while it has not ended and the queue toward the other side is under
// the bound; once over it, reading waits until the queue drains to half.
void Tunnel::update_reading(Side from) {
    if (ended_) return;
    Side to = from == kClient ? kUpstream : kClient;
    std::size_t queued = ends_[to].writer->queued();
    Direction& dir = dirs_[from];
    if (dir.eof) {
        set_reading(from, false);
    } else if (queued >= buffer_) {
        set_reading(from, false);
    } else if (!dir.reading && queued <= buffer_ / 2) {
        set_reading(from, true);
    }
}

void Tunnel::set_reading(Side from, bool on) {
    Direction& dir = dirs_[from];
    if (dir.reading == on) return;
    uv_stream_t* stream = ends_[from].stream;
    if (on) {
        if (uv_read_start(stream, &Tunnel::on_alloc, &Tunnel::on_read) != 0) {
            end("read_error");
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
    if (!dir.shutdown_requested) {
        dir.shutdown_requested = true;
        // Toward the other side: libuv performs the shutdown after the queued writes.
        owner_.tunnel_shutdown(from == kClient ? kUpstream : kClient);
    }
}

void Tunnel::on_shutdown_done(Side side, int status) {
    if (ended_) return;
    if (status != 0) {
        end(side == kClient ? "client_reset" : "upstream_reset");
        return;
    }
    Side from = side == kClient ? kUpstream : kClient;
    dirs_[from].done = true;
    if (dirs_[kClient].done && dirs_[kUpstream].done) end("eof");
}

void Tunnel::on_writer_drained(Side side) {
    if (ended_) return;
    update_reading(side == kClient ? kUpstream : kClient);
}

void Tunnel::on_writer_failed(Side side, int) {
    if (ended_) return;
    end(side == kClient ? "client_reset" : "upstream_reset");
}

void Tunnel::end(const char* how) {
    if (ended_) return;
    ended_ = true;
    set_reading(kClient, false);
    set_reading(kUpstream, false);
    SY_TRACE("tunnel %p ended: %s", static_cast<void*>(this), how);
    owner_.tunnel_ended(how);
}

}  // namespace sy
