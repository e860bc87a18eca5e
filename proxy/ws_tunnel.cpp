#include "proxy/ws_tunnel.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "proxy/log.hpp"
#include "proxy/uv_util.hpp"

namespace sy {
namespace {

// RFC 6455 §7.1.1 leaves the wait for the peer's close to the server; websockify and
// browsers use a few seconds.
constexpr std::uint64_t kCloseWaitMs = 5000;

}  // namespace

WsTunnel::WsTunnel(TunnelOwner& owner, uv_loop_t* loop, Transport& client_end, Transport& upstream_end,
                   BufferPool& pool, Options options)
    : TunnelBase(owner, loop, client_end, upstream_end),
      pool_(pool),
      options_(options),
      reader_(options.max_message) {}

WsTunnel::~WsTunnel() { close_and_free(close_timer_); }

void WsTunnel::start(std::string_view from_client) {
    Transport& client_end = *ends_[kClient];
    Transport& upstream = *ends_[kUpstream];
    client_end.set_user(this);
    upstream.set_user(this);
    client_end.set_read_limit(options_.buffer);
    // An upstream read leaves room for the frame header before it; with base64, its
    // encoding and the header must fit one buffer.
    upstream.set_read_headroom(kMaxServerFrameHeader);
    std::size_t upstream_limit = options_.buffer;
    if (options_.base64) upstream_limit = std::min(upstream_limit, (pool_.size() - kMaxServerFrameHeader) / 4 * 3);
    upstream.set_read_limit(upstream_limit);
    // The client's first frames may have come with its request.
    while (!from_client.empty() && !ended_) {
        const std::size_t n = std::min(from_client.size(), pool_.size());
        BufferPool::Buffer* b = pool_.take();
        std::memcpy(b->data(), from_client.data(), n);
        from_client.remove_prefix(n);
        on_client_bytes(b, n);
    }
    update_reading();
}

void WsTunnel::on_transport_read(Transport& t, BufferPool::Buffer* buf, std::size_t len) {
    if (ended_) {
        buf->pool->give(buf);
        return;
    }
    touch();
    if (side_of(t) == kClient) {
        g_stats.add(g_stats.bytes_from_clients, static_cast<std::int64_t>(len));
        on_client_bytes(buf, len);
    } else {
        on_upstream_bytes(buf, len);
    }
    update_reading();
}

// Client frames: payloads unmasked and packed at the start of `buf`, which goes to the
// upstream whole; controls answered; the first broken rule closes.
void WsTunnel::on_client_bytes(BufferPool::Buffer* buf, std::size_t len) {
    if (discarding_client() || closing_ == Closing::by_client) {
        buf->pool->give(buf);
        return;
    }
    char* data = buf->data();
    std::size_t pos = 0;
    std::size_t out = 0;  // payload bytes packed at data[0, out)
    BufferPool::Buffer* decoded = nullptr;  // base64: what goes to the upstream
    std::size_t decoded_len = 0;
    bool close_seen = false;
    std::uint16_t close_code = 0;
    // A broken rule: the payloads read before it still go, in order; then the close.
    const auto fail = [&](std::uint16_t code, const char* why) {
        if (options_.base64) {
            buf->pool->give(buf);
            if (decoded != nullptr) to_upstream(decoded, 0, decoded_len);
        } else {
            to_upstream(buf, 0, out);
        }
        fail_protocol(code, why);
    };
    while (pos < len && !close_seen) {
        const WsFrameReader::Step s = reader_.next(data + pos, len - pos, data + out);
        pos += s.consumed;
        switch (s.kind) {
            case WsFrameReader::Step::Kind::need_more: break;
            case WsFrameReader::Step::Kind::error: fail(s.error, s.reason); return;
            case WsFrameReader::Step::Kind::control:
                if (s.opcode == WsOpcode::ping && closing_ == Closing::open) {
                    control_to_client(server_control_frame(WsOpcode::pong, reader_.control_payload()));
                } else if (s.opcode == WsOpcode::close) {
                    close_seen = true;  // what follows a close is not read (§5.5.1)
                    close_code = s.close_code;
                }
                break;  // pongs are ignored
            case WsFrameReader::Step::Kind::data:
                if (!options_.base64) {
                    out += s.length;
                    break;
                }
                if (decoded == nullptr) decoded = pool_.take();
                if (s.text) {
                    const std::ptrdiff_t n = base64_.decode(data + out, s.length, decoded->data() + decoded_len);
                    if (n < 0 || (s.message_end && !base64_.finish())) {
                        fail(ws_close::invalid_data, "text message not base64");
                        return;
                    }
                    decoded_len += static_cast<std::size_t>(n);
                } else {
                    std::memcpy(decoded->data() + decoded_len, data + out, s.length);
                    decoded_len += s.length;
                }
                break;
        }
    }
    if (options_.base64) {
        buf->pool->give(buf);
        if (decoded != nullptr) to_upstream(decoded, 0, decoded_len);
    } else {
        to_upstream(buf, 0, out);
    }
    if (close_seen) on_client_close(close_code);
}

// Each upstream read becomes one frame: binary, or text of its base64.
void WsTunnel::on_upstream_bytes(BufferPool::Buffer* buf, std::size_t len) {
    if (closing_ != Closing::open) {
        buf->pool->give(buf);  // no data frame may follow our close (§5.5.1)
        return;
    }
    if (!options_.base64) {
        const std::size_t header = server_frame_header_size(len);
        const std::size_t start = kMaxServerFrameHeader - header;
        write_server_frame_header(buf->data() + start, WsOpcode::binary, len);
        frame_to_client(buf, start, header + len);
        return;
    }
    const std::size_t encoded = base64_encoded_size(len);
    const std::size_t header = server_frame_header_size(encoded);
    BufferPool::Buffer* frame = pool_.take();
    write_server_frame_header(frame->data(), WsOpcode::text, encoded);
    base64_encode(buf->data() + kMaxServerFrameHeader, len, frame->data() + header);
    buf->pool->give(buf);
    frame_to_client(frame, 0, header + encoded);
}

void WsTunnel::to_upstream(BufferPool::Buffer* buf, std::size_t offset, std::size_t len) {
    if (len == 0 || upstream_gone_ || upstream_shutdown_requested_) {
        buf->pool->give(buf);
        return;
    }
    bytes_[kClient] += len;
    // A failed write is reported through on_transport_write_failed.
    if (ends_[kUpstream]->write_buffer(buf, offset, len) == Transport::Written::queued) ends_[kClient]->stop_reading();
}

void WsTunnel::frame_to_client(BufferPool::Buffer* buf, std::size_t offset, std::size_t len) {
    bytes_[kUpstream] += len;
    g_stats.add(g_stats.bytes_to_clients, static_cast<std::int64_t>(len));
    if (ends_[kClient]->write_buffer(buf, offset, len) == Transport::Written::queued) ends_[kUpstream]->stop_reading();
}

void WsTunnel::control_to_client(const std::string& frame) {
    bytes_[kUpstream] += frame.size();
    g_stats.add(g_stats.bytes_to_clients, static_cast<std::int64_t>(frame.size()));
    ends_[kClient]->write(frame);
}

// §5.5.1: the close is answered with a close (the same code; 1000 when it carried none),
// after which nothing more goes to the client; the upstream gets what was queued, then EOF.
void WsTunnel::on_client_close(std::uint16_t code) {
    if (closing_ == Closing::open) control_to_client(server_close_frame(code != 0 ? code : ws_close::normal));
    if (closing_ != Closing::by_error) end_reason_ = TunnelEnd::eof;  // an upstream reset stays one
    closing_ = Closing::by_client;
    shutdown_upstream();
    start_close_timer();
    maybe_finish();
}

void WsTunnel::send_close(std::uint16_t code, Closing why) {
    control_to_client(server_close_frame(code));
    closing_ = why;
    start_close_timer();
}

void WsTunnel::start_close_timer() {
    if (close_timer_ != nullptr) return;
    close_timer_ = new uv_timer_t;
    uv_timer_init(loop_, close_timer_);
    close_timer_->data = this;
    uv_timer_start(close_timer_, &WsTunnel::on_close_timer, kCloseWaitMs, 0);
}

void WsTunnel::fail_protocol(std::uint16_t code, const char* why) {
    SY_TRACE("ws tunnel %p: close %u: %s", static_cast<void*>(this), code, why);
    (void)why;
    if (closing_ == Closing::open) {
        send_close(code, Closing::by_protocol);
    } else {
        closing_ = Closing::by_protocol;  // our close already went
    }
    end_reason_ = TunnelEnd::protocol_error;
    shutdown_upstream();
    shutdown_client();
    maybe_finish();
}

void WsTunnel::on_upstream_end(int status) {
    if (status == UV_EOF) {
        upstream_eof_ = true;
        if (closing_ == Closing::open) {
            end_reason_ = TunnelEnd::eof;
            send_close(ws_close::normal, Closing::by_upstream);
        }
    } else {
        upstream_gone_ = true;
        if (closing_ == Closing::open) {
            end_reason_ = TunnelEnd::upstream_reset;
            send_close(ws_close::internal_error, Closing::by_error);
        } else if (closing_ == Closing::by_upstream) {
            end_reason_ = TunnelEnd::upstream_reset;
            closing_ = Closing::by_error;
        }
    }
    maybe_finish();
}

void WsTunnel::on_client_end(int status) {
    if (status != UV_EOF) {
        end(closing_ == Closing::by_protocol ? TunnelEnd::protocol_error : TunnelEnd::client_reset);
        return;
    }
    client_eof_ = true;
    // Without a close frame the client only ended its direction: the upstream hears EOF and
    // its bytes still reach the client.
    if (closing_ == Closing::open) shutdown_upstream();
    maybe_finish();
}

void WsTunnel::shutdown_upstream() {
    if (upstream_gone_ || upstream_shutdown_requested_) return;
    upstream_shutdown_requested_ = true;
    switch (ends_[kUpstream]->shutdown_write()) {
        case Transport::Shutdown::done: upstream_shutdown_done_ = true; break;
        case Transport::Shutdown::pending: break;
        case Transport::Shutdown::failed: upstream_gone_ = true; break;
    }
}

// After a broken rule: FIN once our close is out; the client's EOF (or 5 s) ends it.
void WsTunnel::shutdown_client() {
    if (client_shutdown_requested_) return;
    client_shutdown_requested_ = true;
    if (ends_[kClient]->shutdown_write() == Transport::Shutdown::failed) end(end_reason_);
}

void WsTunnel::maybe_finish() {
    if (ended_) return;
    const bool client_flushed = ends_[kClient]->queued() == 0;
    switch (closing_) {
        case Closing::open: return;
        case Closing::by_client:
            // The close handshake is complete: the end once our close and the upstream's EOF
            // are out.
            if (client_flushed && (upstream_shutdown_done_ || upstream_gone_)) end(end_reason_);
            return;
        case Closing::by_upstream:
        case Closing::by_error:
        case Closing::by_protocol:
            // The client's close would come before its EOF; after its EOF none can come.
            if (client_eof_ && client_flushed) end(end_reason_);
            return;
    }
}

void WsTunnel::update_reading() {
    if (ended_) return;
    Transport& client_end = *ends_[kClient];
    Transport& upstream = *ends_[kUpstream];
    const bool upstream_takes = upstream_gone_ || upstream_shutdown_requested_ || upstream.queued() == 0;
    const bool read_client = !client_eof_ && closing_ != Closing::by_client &&
                             (discarding_client() || (upstream_takes && client_end.queued() < options_.buffer));
    const bool read_upstream =
        !upstream_eof_ && !upstream_gone_ && closing_ == Closing::open && client_end.queued() == 0;
    if (read_client) {
        if (!client_end.start_reading()) {
            end(TunnelEnd::client_reset);
            return;
        }
    } else {
        client_end.stop_reading();
    }
    if (read_upstream) {
        if (!upstream.start_reading()) on_upstream_end(UV_ECONNRESET);
    } else {
        upstream.stop_reading();
    }
}

void WsTunnel::on_transport_read_end(Transport& t, int status) {
    if (ended_) return;
    if (side_of(t) == kClient) {
        on_client_end(status);
    } else {
        on_upstream_end(status);
    }
    update_reading();
}

void WsTunnel::on_transport_drained(Transport& t) {
    if (ended_) return;
    if (side_of(t) == kClient) maybe_finish();
    update_reading();
}

void WsTunnel::on_transport_write_failed(Transport& t, int status) {
    if (ended_) return;
    if (side_of(t) == kClient) {
        end(closing_ == Closing::by_protocol ? TunnelEnd::protocol_error : TunnelEnd::client_reset);
        return;
    }
    on_upstream_end(status < 0 ? status : UV_EPIPE);
    update_reading();
}

void WsTunnel::on_transport_shutdown(Transport& t, int status) {
    if (ended_) return;
    if (side_of(t) == kClient) {
        if (status != 0) end(end_reason_);
        return;
    }
    if (status != 0) {
        upstream_gone_ = true;
    } else {
        upstream_shutdown_done_ = true;
    }
    maybe_finish();
}

// Cut by the proxy (tunnel_idle, the drain deadline): a best-effort close 1001 ("going
// away", §7.4.1) so that the client sees why; the owner closes the connection right after.
void WsTunnel::on_end(TunnelEnd how) {
    close_and_free(close_timer_);
    if ((how == TunnelEnd::idle_timeout || how == TunnelEnd::shutdown) && closing_ == Closing::open) {
        control_to_client(server_close_frame(ws_close::going_away));
    }
}

void WsTunnel::on_close_timer(uv_timer_t* timer) {
    auto* self = static_cast<WsTunnel*>(timer->data);
    if (self != nullptr) self->end(self->end_reason_);
}

}  // namespace sy
