// A client connection's life (proxy/client_conn.hpp): accepting, the state transitions,
// reading and parsing client bytes, writing to the client, timers, closing (lingering
// close included) and the switch into a tunnel. The exchange itself (routing, the
// upstream, responses) is in client_exchange.cpp; accounting in client_conn_log.cpp.
#include "proxy/client_conn.hpp"

#include <cstring>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "parser/serialize.hpp"
#include "proxy/ops/access_log.hpp"
#include "proxy/log.hpp"
#include "proxy/net.hpp"
#include "proxy/uv_util.hpp"
#include "proxy/worker.hpp"
#include "routing/upgrade_policy.hpp"

namespace sy {

namespace {

const char* name(ClientConn::ReqState s) {
    switch (s) {
        case ClientConn::ReqState::idle: return "idle";
        case ClientConn::ReqState::head: return "head";
        case ClientConn::ReqState::connecting: return "connecting";
        case ClientConn::ReqState::body: return "body";
        case ClientConn::ReqState::complete: return "complete";
        case ClientConn::ReqState::tunnel: return "tunnel";
    }
    return "?";
}

const char* name(ClientConn::ResState s) {
    switch (s) {
        case ClientConn::ResState::none: return "none";
        case ClientConn::ResState::waiting: return "waiting";
        case ClientConn::ResState::body: return "body";
        case ClientConn::ResState::complete: return "complete";
        case ClientConn::ResState::tunnel: return "tunnel";
    }
    return "?";
}

HttpParser::Limits parser_limits(const Config& config) {
    return HttpParser::Limits{config.limits.max_header_bytes, config.limits.max_headers};
}

// Response heads have the same limits as request heads, but no fewer than 64 KiB /
// 200 fields: backends legitimately send large cookie sets.
HttpParser::Limits response_limits(const Config& config) {
    HttpParser::Limits l = parser_limits(config);
    if (l.max_header_bytes < 64 * 1024) l.max_header_bytes = 64 * 1024;
    if (l.max_headers < 200) l.max_headers = 200;
    return l;
}

std::string peer_ip(uv_tcp_t* tcp) {
    sockaddr_storage ss{};
    int len = sizeof ss;
    if (uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "-";
    return address_text(reinterpret_cast<const sockaddr*>(&ss), false);
}

}  // namespace

ClientConn::Http::Http(ClientConn& conn, const Config& config)
    : req_parser(HttpParser::Kind::request, conn, parser_limits(config)),
      resp_handler(conn),
      resp_parser(HttpParser::Kind::response, resp_handler, response_limits(config)) {}

ClientConn::ClientConn(Worker& worker)
    : worker_(worker),
      gen_(worker.current()),
      transport_(new TcpTransport(worker.loop(), worker.io_buffers())),
      timer_(new uv_timer_t),
      up_timer_(new uv_timer_t),
      http_(std::make_unique<Http>(*this, gen_->config())) {
    uv_timer_init(worker.loop(), timer_);
    uv_timer_init(worker.loop(), up_timer_);
    transport_->set_user(this);
    transport_->set_read_limit(Worker::kReadBufferSize);
    timer_->data = this;
    up_timer_->data = this;
    worker.add_client(this);
    g_stats.add(g_stats.connections_active, 1);
    g_stats.add(g_stats.connections_total, 1);
}

ClientConn::~ClientConn() {
    worker_.remove_client(this);
    g_stats.add(g_stats.connections_active, -1);
}

void ClientConn::accept(uv_stream_t* server, const ServerTls* tls, bool proxy_protocol) {
    auto* tcp = static_cast<TcpTransport*>(transport_);
    if (uv_accept(server, tcp->stream()) != 0) {
        close();
        return;
    }
    // TCP_NODELAY is inherited from the listening socket (proxy/net.cpp).
    // The client's address costs a getpeername(2): only when something will show it.
    if (config().forwarding.x_forwarded_for || worker_.access_log().enabled() || gen_->snapshot->needs_client_ip) {
        http_->client_ip = peer_ip(tcp->tcp());
    }
    start_timer(config().timeouts.request_header);
    if (proxy_protocol) {
        // The header comes first, before TLS: read on TCP until it is whole.
        proxy_header_ = std::make_unique<PendingProxyHeader>();
        proxy_header_->tls = tls;
        transport_->start_reading();
        return;
    }
    start_tls(tls);
    if (!closing_) update_reading();
}

void ClientConn::start_tls(const ServerTls* tls) {
    if (tls == nullptr) return;
    SSL* ssl = tls->new_ssl();
    if (ssl == nullptr) {
        close();
        return;
    }
    tls_ = new TlsTransport(worker_.loop(), static_cast<TcpTransport*>(transport_), ssl, worker_.io_buffers());
    transport_ = tls_;
    transport_->set_user(this);
    transport_->set_read_limit(Worker::kReadBufferSize);
}

void ClientConn::take_current_config() {
    const GenerationPtr& current = worker_.current();
    if (gen_ == current) return;
    gen_ = current;
    // Limits for the heads to come; nothing else of the connection depends on the config.
    http_->req_parser.set_limits(parser_limits(gen_->config()));
    http_->resp_parser.set_limits(response_limits(gen_->config()));
}

// ---------------------------------------------------------------------------------------
// Transitions

void ClientConn::trace_req_state(ReqState next) const {
    log_trace("client %p request %s -> %s", static_cast<const void*>(this), name(req_state_), name(next));
}

void ClientConn::trace_res_state(ResState next) const {
    log_trace("client %p response %s -> %s", static_cast<const void*>(this), name(res_state_), name(next));
}

// ---------------------------------------------------------------------------------------
// Reading from the client


void ClientConn::update_reading() {
    if (closing_ || tunnel_ != nullptr || proxy_header_ != nullptr) return;
    bool want;
    if (lingering_) {
        want = true;  // read and discard until the client closes
    } else if (closing_after_flush_) {
        want = false;
    } else {
        // Unparsed bytes are bounded: a partial head by the header limit (plus one read),
        // bytes held behind a forwarded upgrade request by tunnel.buffer.
        std::size_t held = unparsed().size();
        std::size_t bound = http_->decision.kind == UpgradeDecision::Kind::forward && req_state_ == ReqState::complete
                                ? config().tunnel.buffer
                                : config().limits.max_header_bytes + Worker::kReadBufferSize;
        want = held < bound &&
               transport_->queued() < high_water() &&
               !(up_ != nullptr && up_->writer().queued() >= high_water());
    }
    if (want) {
        transport_->start_reading();
    } else {
        transport_->stop_reading();
    }
}

void ClientConn::on_transport_read(Transport&, BufferPool::Buffer* buf, std::size_t len) {
    if (proxy_header_ != nullptr && !closing_) {
        on_proxy_header_bytes(buf, len);
        return;
    }
    if (!closing_) {
        g_stats.add(g_stats.bytes_from_clients, static_cast<std::int64_t>(len));
        if (!lingering_) on_client_bytes(buf->data(), len);  // lingering: discarded
    }
    buf->pool->give(buf);
}

void ClientConn::on_transport_read_end(Transport&, int status) {
    if (!closing_) on_client_eof(status);
}

void ClientConn::on_client_bytes(const char* data, std::size_t len) {
    if (req_state_ == ReqState::idle) {
        take_current_config();
        set_req_state(ReqState::head);
        start_timer(config().timeouts.request_header);
        // A request refused before its head is whole is timed from its first byte.
        exchange_start_ms_ = worker_.now_ms();
    }
    Http& h = *http_;
    if (h.in_pos == h.in.size()) {
        h.in.clear();
        h.in_pos = 0;
    }
    if (h.in.empty()) {
        h.direct = std::string_view(data, len);  // parsed where it was read: no copy
    } else {
        h.in.append(data, len);
    }
    process_input();
    // The read buffer goes back to the pool after this: keep what the parser left (a partial
    // head, a pipelined request, bytes held behind an upgrade).
    if (http_ != nullptr && !http_->direct.empty()) {
        http_->in.append(http_->direct.data(), http_->direct.size());
        http_->direct = {};
    }
}

void ClientConn::consume(std::size_t n) {
    Http& h = *http_;
    if (!h.direct.empty()) {
        h.direct.remove_prefix(n);
    } else {
        h.in_pos += n;
    }
}

void ClientConn::on_client_eof(int status) {
    if (lingering_) {
        close();
        return;
    }
    if (status != UV_EOF) {
        // Reset or error: nothing more can be delivered to this client.
        if (res_state_ != ResState::none) log_exchange("client_abort");
        close();
        return;
    }
    client_eof_ = true;
    if (req_state_ == ReqState::complete && res_state_ != ResState::none) {
        // The client half-closed after a whole request: the response can still be sent.
        return;
    }
    if (res_state_ != ResState::none || req_state_ == ReqState::connecting || req_state_ == ReqState::body) {
        log_exchange("client_abort");
    }
    close();
}

// Parses what the client sent, as far as the states allow. Re-entrant calls (from
// transitions made inside this loop) return at once; the loop re-checks the states.
void ClientConn::process_input() {
    if (in_process_input_) return;
    in_process_input_ = true;
    while (!closing_ && !closing_after_flush_ && tunnel_ == nullptr) {
        if (req_state_ == ReqState::connecting) break;
        if (req_state_ == ReqState::complete) {
            if (switch_pending_) {
                start_tunnel();
                break;
            }
            if (res_state_ == ResState::complete) {
                finish_exchange();
                continue;
            }
            break;
        }
        // idle, head or body: the parser may run. A 0-byte feed still completes a
        // message that ends at its head.
        const std::string_view input = unparsed();
        if (input.empty() && req_state_ != ReqState::body) break;
        HttpParser::Result r = http_->req_parser.feed(input.data(), input.size());
        consume(r.consumed);
        bytes_in_ += r.consumed;
        if (r.status == HttpParser::Status::error) {
            SY_TRACE("client %p parse error: %s", static_cast<void*>(this), r.reason);
            if (req_state_ == ReqState::idle || req_state_ == ReqState::head) {
                respond_local(error_status(r.error), false, r.reason);
            } else {
                fail_exchange(400, r.reason);
            }
            break;
        }
        if (r.status == HttpParser::Status::need_more) break;
        if (r.status == HttpParser::Status::upgrade) req_was_upgrade_ = true;
        if (req_state_ == ReqState::connecting) start_exchange();
        // paused at message end: the loop sees req_state_ == complete.
    }
    in_process_input_ = false;
    if (up_ != nullptr) up_->writer().uncork();
    if (http_ == nullptr) return;  // became a tunnel
    if (http_->in_pos > 0 && http_->in_pos == http_->in.size()) {
        http_->in.clear();
        http_->in_pos = 0;
    } else if (http_->in_pos > Worker::kReadBufferSize) {
        http_->in.erase(0, http_->in_pos);
        http_->in_pos = 0;
    }
    update_reading();
}

// ---------------------------------------------------------------------------------------
// Writing to the client

void ClientConn::on_transport_drained(Transport&) {
    if (closing_) return;
    if (closing_after_flush_) {
        if (transport_->queued() == 0) start_linger();
        return;
    }
    if (up_ != nullptr && res_state_ == ResState::body) up_->resume_reading();
    update_reading();
}

void ClientConn::on_transport_write_failed(Transport&, int status) {
    if (closing_) return;
    SY_TRACE("client %p write failed: %s", static_cast<void*>(this), uv_strerror(status));
    if (res_state_ != ResState::none) log_exchange("client_abort");
    close();
}

// ---------------------------------------------------------------------------------------
// Closing

void ClientConn::close_after_flush() {
    if (closing_ || closing_after_flush_) return;
    transport_->uncork();  // the last response goes before the FIN
    // Writing what was corked may fail at once (the client is gone: a reset), and that
    // closes this connection, timers included.
    if (closing_) return;
    closing_after_flush_ = true;
    uv_timer_stop(up_timer_);
    if (up_ != nullptr) {
        up_->close();
        up_ = nullptr;
    }
    update_reading();
    if (transport_->queued() == 0) start_linger();
}

// Lingering close: send FIN once the response is out, then read and discard until the
// client closes (or a short time passes), so that bytes the client had in flight do not
// turn our close into a reset that destroys the response (RFC 9112 §9.6).
void ClientConn::start_linger() {
    if (closing_ || lingering_) return;
    lingering_ = true;
    if (transport_->shutdown_write() == Transport::Shutdown::failed) {
        close();
        return;
    }
    start_timer(Millis(2000));
    update_reading();
}

void ClientConn::on_transport_shutdown(Transport&, int status) {
    if (closing_) return;
    if (status != 0) close();
}

void ClientConn::start_timer(Millis timeout) {
    uv_timer_start(timer_, &ClientConn::on_timer, static_cast<std::uint64_t>(timeout.count()), 0);
}

void ClientConn::on_timer(uv_timer_t* timer) {
    auto* self = static_cast<ClientConn*>(timer->data);
    if (self->closing_) return;
    if (self->lingering_) {
        self->close();
        return;
    }
    if (self->proxy_header_ != nullptr) {
        // A PROXY header slower than timeouts.request_header: closed, counted, logged.
        g_stats.add(g_stats.proxy_protocol_errors);
        log_error("PROXY protocol: no whole header within timeouts.request_header");
        self->close();
        return;
    }
    if (self->tls_ != nullptr && !self->tls_->handshake_done()) {
        self->close();  // a TLS handshake slower than timeouts.request_header is cut
        return;
    }
    if (self->req_state_ == ReqState::head || (self->req_state_ == ReqState::idle && self->first_request_)) {
        // The head did not arrive in time (timeouts.request_header).
        self->respond_local(408, false, "request head timeout");
        return;
    }
    if (self->req_state_ == ReqState::idle) self->close();  // keepalive_idle
}

void ClientConn::begin_drain() {
    if (closing_ || tunnel_ != nullptr) return;  // tunnels run until the drain deadline
    // Between exchanges, a keep-alive connection closes now, unless its next request is
    // already here. A connection accepted moments before (its first request may be on
    // the way: a binary upgrade's old process accepts until the new one holds the
    // listeners) is served too. Either gets that one answer, then closes.
    if (req_state_ == ReqState::idle && res_state_ == ResState::none && !first_request_ &&
        !transport_->input_waiting()) {
        close();
        return;
    }
    keep_alive_ = false;  // the current response is the last one
}

void ClientConn::close() {
    if (closing_) return;
    closing_ = true;
    if (tunnel_ != nullptr) tunnel_->end(TunnelEnd::shutdown);
    release_reservations();
    if (up_ != nullptr) {
        up_->close();
        up_ = nullptr;
    }
    close_and_free(timer_);
    close_and_free(up_timer_);
    transport_->close(&ClientConn::on_transport_closed, this);
}

void ClientConn::on_transport_closed(void* self) { delete static_cast<ClientConn*>(self); }

// ---------------------------------------------------------------------------------------
// The switch and the tunnel

void ClientConn::start_tunnel() {
    if (http_->terminate.terminate) {
        start_terminated();
        return;
    }
    switch_pending_ = false;
    const Config& config = this->config();
    uv_timer_stop(timer_);
    uv_timer_stop(up_timer_);

    // The 101 goes to the client with Upgrade and Connection regenerated and the other
    // fields passed (docs/upgrades.md, "Response side").
    std::string protocols;
    for (const std::string& p : http_->verdict.protocols) {
        if (!protocols.empty()) protocols += ", ";
        protocols += p;
    }
    ClientResponseOptions opts;
    opts.framing = BodyFraming::none;
    opts.via = config.forwarding.via;
    http_->scratch.clear();
    HeaderList fields = {{"Upgrade", protocols}, {"Connection", "Upgrade"}};
    if (!http_->set_cookie.empty()) fields.push_back({"Set-Cookie", http_->set_cookie});  // sticky
    append_client_response_head(http_->scratch, http_->resp, opts, fields);
    // Counted before the 101 can reach the client, so a client that sees it also sees it
    // in the metrics.
    count_upgrade(UpgradeOutcome::switched, protocols);
    note_status_sent(101);
    count_tunnel_open();
    transport_->write(http_->scratch);

    set_req_state(ReqState::tunnel);
    set_res_state(ResState::tunnel);
    auto tunnel = std::make_unique<Tunnel>(static_cast<TunnelOwner&>(*this), worker_.loop(), *transport_,
                                           up_->transport(), config.tunnel.buffer, splice_pipe());
    tunnel->set_labels(protocols, http_->req.method, http_->req.target, http_->client_ip);
    // Every byte already read goes first, in order: the client's held bytes to the
    // backend, the backend's bytes behind its 101 to the client.
    std::string_view held = unparsed();
    // Transports already reading keep reading, for the tunnel now: no stop/start (each
    // would cost epoll_ctl calls).
    tunnel->start(held, http_->up_held);
    tunnel_ = std::move(tunnel);
    SY_TRACE("client %p tunnel to %s", static_cast<void*>(this), protocols.c_str());

    // What only HTTP needed goes now: an open tunnel keeps its sockets, writers and
    // counters. The caller (process_input) checks http_ after this returns.
    log_exchange("switched");
    close_and_free(timer_);
    close_and_free(up_timer_);
    up_->enter_tunnel();
    http_.reset();
    // A binary upgrade is under way: this tunnel follows the others to the new process.
    if (worker_.handing_off()) worker_.schedule_handoff();
}

void ClientConn::start_terminated() {
    switch_pending_ = false;
    const Config& config = this->config();
    uv_timer_stop(timer_);
    uv_timer_stop(up_timer_);
    // Counted before the 101 can reach the client, like a forwarded switch.
    count_upgrade(UpgradeOutcome::terminated, "websocket");
    note_status_sent(101);
    count_tunnel_open();
    if (!http_->set_cookie.empty()) http_->terminate.response_fields.push_back({"Set-Cookie", http_->set_cookie});
    transport_->write(make_proxy_response(101, false, http_->terminate.response_fields));

    set_req_state(ReqState::tunnel);
    set_res_state(ResState::tunnel);
    WsTunnel::Options options;
    options.buffer = config.tunnel.buffer;
    options.max_message = route_->upgrade.max_message;
    options.base64 = http_->terminate.subprotocol == "base64";
    auto tunnel = std::make_unique<WsTunnel>(static_cast<TunnelOwner&>(*this), worker_.loop(), *transport_,
                                             up_->transport(), worker_.io_buffers(), options);
    tunnel->set_labels("websocket", http_->req.method, http_->req.target, http_->client_ip);
    WsTunnel* pump = tunnel.get();
    tunnel_ = std::move(tunnel);
    SY_TRACE("client %p terminated websocket", static_cast<void*>(this));

    log_exchange("switched");
    close_and_free(timer_);
    close_and_free(up_timer_);
    up_->enter_tunnel();
    // The HTTP state goes with this call, after the pump has read the client's first frames
    // (they may have come behind its request) from where they lie. Last, because a close
    // frame among them ends the tunnel at once, which closes this connection.
    const std::string_view held = unparsed();
    const std::unique_ptr<Http> http = std::move(http_);  // keeps `held` alive through start()
    pump->start(held);
}

SplicePipe* ClientConn::splice_pipe() {
    const bool plain = tls_ == nullptr && up_ != nullptr && up_->plain();
    return plain && config().tunnel.splice ? worker_.splice_pipe() : nullptr;
}

void ClientConn::check_tunnel_idle(std::uint64_t now) {
    if (tunnel_ == nullptr || tunnel_->ended()) return;
    auto idle = static_cast<std::uint64_t>(config().timeouts.tunnel_idle.count());
    if (now - tunnel_->idle_since() >= idle) tunnel_->end(TunnelEnd::idle_timeout);
}

}  // namespace sy
