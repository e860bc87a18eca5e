#include "proxy/client_conn.hpp"

#include <cstring>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "parser/request_target.hpp"
#include "parser/serialize.hpp"
#include "parser/tokens.hpp"
#include "proxy/ops/access_log.hpp"
#include "proxy/log.hpp"
#include "proxy/net.hpp"
#include "proxy/upstream_pool.hpp"
#include "proxy/uv_util.hpp"
#include "proxy/worker.hpp"
#include "routing/route_match.hpp"
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

std::string peer_ip(const uv_tcp_t* tcp) {
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
      timer_(new uv_timer_t),
      up_timer_(new uv_timer_t),
      out_(reinterpret_cast<uv_stream_t*>(&tcp_), *this),
      http_(std::make_unique<Http>(*this, gen_->config())) {
    uv_tcp_init(worker.loop(), &tcp_);
    uv_timer_init(worker.loop(), timer_);
    uv_timer_init(worker.loop(), up_timer_);
    tcp_.data = this;
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

void ClientConn::accept(uv_stream_t* server) {
    if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&tcp_)) != 0) {
        close();
        return;
    }
    // TCP_NODELAY is inherited from the listening socket (proxy/net.cpp).
    // The client's address costs a getpeername(2): only when something will show it.
    if (config().forwarding.x_forwarded_for || worker_.access_log().enabled()) {
        http_->client_ip = peer_ip(&tcp_);
    }
    start_timer(config().timeouts.request_header);
    update_reading();
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

void ClientConn::set_req_state(ReqState next) {
    SY_TRACE("client %p request %s -> %s", static_cast<void*>(this), name(req_state_), name(next));
    req_state_ = next;
}

void ClientConn::set_res_state(ResState next) {
    SY_TRACE("client %p response %s -> %s", static_cast<void*>(this), name(res_state_), name(next));
    res_state_ = next;
}

// ---------------------------------------------------------------------------------------
// Reading from the client

std::size_t ClientConn::high_water() const { return config().tunnel.buffer; }

void ClientConn::update_reading() {
    if (closing_ || tunnel_ != nullptr) return;
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
               out_.queued() < high_water() &&
               !(up_ != nullptr && up_->writer().queued() >= high_water());
    }
    auto* stream = reinterpret_cast<uv_stream_t*>(&tcp_);
    if (want && !reading_) {
        if (uv_read_start(stream, &ClientConn::on_alloc, &ClientConn::on_read) == 0) reading_ = true;
    } else if (!want && reading_) {
        uv_read_stop(stream);
        reading_ = false;
    }
}

void ClientConn::on_alloc(uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
    auto* self = static_cast<ClientConn*>(handle->data);
    *buf = uv_buf_init(self->worker_.read_buffer(), Worker::kReadBufferSize);
}

void ClientConn::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* self = static_cast<ClientConn*>(stream->data);
    if (self->closing_ || nread == 0) return;
    if (nread < 0) {
        self->on_client_eof(static_cast<int>(nread));
        return;
    }
    g_stats.add(g_stats.bytes_from_clients, nread);
    if (self->lingering_) return;  // discarded
    self->on_client_bytes(buf->base, static_cast<std::size_t>(nread));
}

void ClientConn::on_client_bytes(const char* data, std::size_t len) {
    if (req_state_ == ReqState::idle) {
        take_current_config();
        set_req_state(ReqState::head);
        start_timer(config().timeouts.request_header);
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
    // The read buffer is reused by the next read: keep what the parser left (a partial
    // head, a pipelined request, bytes held behind an upgrade).
    if (http_ != nullptr && !http_->direct.empty()) {
        http_->in.append(http_->direct.data(), http_->direct.size());
        http_->direct = {};
    }
}

std::string_view ClientConn::unparsed() const {
    const Http& h = *http_;
    if (!h.direct.empty()) return h.direct;
    return std::string_view(h.in.data() + h.in_pos, h.in.size() - h.in_pos);
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
    reading_ = false;
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
// Request parser callbacks

HttpParser::AfterHead ClientConn::on_head(MessageHead& head) {
    uv_timer_stop(timer_);
    http_->req = std::move(head);
    exchange_start_ms_ = worker_.now_ms();
    bytes_out_mark_ = out_.bytes_written();
    set_req_state(ReqState::connecting);
    return HttpParser::AfterHead::pause;  // routing and the upstream come first
}

void ClientConn::on_body(std::string_view data) {
    if (req_state_ != ReqState::body || up_ == nullptr || up_write_failed_) return;
    if (http_->req.framing == BodyFraming::chunked) {
        http_->scratch.clear();
        append_chunk_header(http_->scratch, data.size());
        up_->writer().write({http_->scratch, data, kChunkEnd});
    } else {
        up_->writer().write(data);
    }
}

void ClientConn::on_message_end() {
    if (req_state_ == ReqState::body && up_ != nullptr && !up_write_failed_ &&
        http_->req.framing == BodyFraming::chunked) {
        up_->writer().write(kLastChunk);
    }
    set_req_state(ReqState::complete);
}

// ---------------------------------------------------------------------------------------
// Routing and the upstream connection

void ClientConn::start_exchange() {
    const Config& config = this->config();
    // RFC 9112 §3.2: an HTTP/1.1 request without exactly one Host is answered 400.
    std::size_t hosts = count_fields(http_->req.headers, "host");
    if (hosts > 1 || (hosts == 0 && !http_->req.is_http10())) {
        respond_local(400, false, "missing or repeated Host");
        return;
    }
    if (http_->req.method == "CONNECT") {
        // A reverse proxy has no business opening arbitrary tunnels.
        respond_local(405, false, "CONNECT", {{"Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH"}});
        return;
    }
    // Which host the request addresses must be unambiguous (RFC 9112 §3.2, RFC 9110 §7.2):
    // a target of RFC 3986 bytes in a form that fits the method, a valid Host value.
    RequestTarget checked = parse_request_target(http_->req.method, http_->req.target);
    if (!checked.ok) {
        respond_local(400, false, checked.reason);
        return;
    }
    const HeaderField* host_field = find_field(http_->req.headers, "host");
    if (host_field != nullptr && !parse_host_port(host_field->value).ok) {
        respond_local(400, false, "invalid Host");
        return;
    }
    http_->forward_target = std::move(checked.forward_target);
    RouteRequest route_request;
    if (checked.form == TargetForm::absolute) {
        // The target's authority is the host; it also replaces the Host field upstream.
        route_request.host = checked.authority;
        http_->forward_host = std::string(checked.authority);
    } else if (host_field != nullptr) {
        route_request.host = host_field->value;
    }
    // The path comes from the target already checked (an absolute-form one's origin-form,
    // so its authority is parsed once). OPTIONS * asks about the server as a whole: routed
    // as its root.
    const std::string_view origin =
        checked.form == TargetForm::absolute ? std::string_view(http_->forward_target) : http_->req.target;
    route_request.path = checked.form == TargetForm::asterisk ? std::string_view("/") : split_target(origin).path;
    if (is_upgrade_request(http_->req)) {
        route_request.offer = collect_list(http_->req.headers, "upgrade");
    }
    route_ = match_route(config, route_request);
    if (route_ == nullptr) {
        respond_local(404, true, "no route");
        return;
    }
    const auto route_index = static_cast<std::size_t>(route_ - config.routes.data());
    route_stats_ = &gen_->snapshot->stats.routes[route_index];
    http_->decision = decide(http_->req, route_->upgrade);
    if (http_->decision.outcome != UpgradeOutcome::none) count_upgrade(http_->decision.outcome, offered_protocol());
    if (http_->decision.kind == UpgradeDecision::Kind::respond) {
        respond_local(http_->decision.status, !http_->decision.close, http_->decision.reason.c_str(), http_->decision.response_fields,
                      http_->decision.response_body);
        return;
    }
    pool_ = gen_->pools[route_->upstream_index].get();
    http_->tried.assign(pool_->slot_count(), false);
    connect_next();
}

void ClientConn::connect_next() {
    std::size_t server = pool_->pick(http_->tried);
    if (server == UpstreamPool::npos) {
        fail_exchange(502, "no upstream server could be reached");
        return;
    }
    http_->tried[server] = true;
    bool connected = false;
    up_ = pool_->acquire(server, *this, config().timeouts.upstream_connect, &connected);
    up_reusable_ = false;
    up_write_failed_ = false;
    if (connected) on_upstream_ready();
}

void ClientConn::on_upstream_connected(UpstreamConn& conn) {
    pool_->record_connect_result(conn.server(), true);
    on_upstream_ready();
}

void ClientConn::on_upstream_connect_failed(UpstreamConn& conn, int status) {
    log_error("upstream %s server %s: connect failed: %s", pool_->config().name.c_str(),
              pool_->server_name(conn.server()).c_str(), uv_strerror(status));
    pool_->record_connect_result(conn.server(), false);
    up_->close();
    up_ = nullptr;
    // Nothing was sent yet: the next server may take the request.
    connect_next();
}

void ClientConn::on_upstream_ready() {
    const Config& config = this->config();
    ForwardingOptions fwd;
    fwd.x_forwarded_for = config.forwarding.x_forwarded_for;
    fwd.x_forwarded_proto = config.forwarding.x_forwarded_proto;
    fwd.via = config.forwarding.via;
    fwd.client_address = http_->client_ip;
    fwd.target = http_->forward_target;
    fwd.host = http_->forward_host;
    if (fwd.host.empty() && find_field(http_->req.headers, "host") == nullptr) {
        // An HTTP/1.0 request without Host goes on as HTTP/1.1, which must have one: the
        // server's address (RFC 9112 §3.2).
        fwd.host = pool_->server_name(up_->server());
    }
    // Corked until the bytes already read are parsed (end of process_input): a request
    // found malformed there sends the upstream nothing, and head and body leave together.
    up_->writer().cork();
    http_->scratch.clear();
    bool forward_upgrade = http_->decision.kind == UpgradeDecision::Kind::forward;
    static const HeaderList kNoFields;
    append_upstream_request_head(http_->scratch, http_->req, fwd, forward_upgrade ? http_->decision.upstream_fields : kNoFields,
                                 pool_->config().keepalive == 0 && !forward_upgrade);
    up_->writer().write(http_->scratch);

    http_->resp_parser.reset();
    http_->resp_parser.set_response_to_head(http_->req.method == "HEAD");
    set_res_state(ResState::waiting);
    uv_timer_start(up_timer_, &ClientConn::on_upstream_timer,
                   static_cast<std::uint64_t>(config.timeouts.upstream_response.count()), 0);

    if (req_state_ == ReqState::connecting) {
        set_req_state(ReqState::body);
        http_->req_parser.resume();
        process_input();  // no-op when called from inside process_input: its loop goes on
    } else {
        // The retry of a complete request without a body: the head is all of it.
        up_->writer().uncork();
    }
}

void ClientConn::on_upstream_timer(uv_timer_t* timer) {
    auto* self = static_cast<ClientConn*>(timer->data);
    if (self->closing_) return;
    if (self->res_state_ == ResState::waiting) self->fail_exchange(504, "upstream response timeout");
}

// Everything one upstream read produces for the client (a response head and the body bytes
// behind it, a 101 and the first tunnel bytes) leaves in one write: one TCP segment
// instead of several small ones.
void ClientConn::on_upstream_read(UpstreamConn&, const char* data, std::size_t len) {
    out_.cork();
    feed_response(data, len);
    if (!closing_) out_.uncork();
}

void ClientConn::feed_response(const char* data, std::size_t len) {
    std::size_t pos = 0;
    while (!closing_ && up_ != nullptr) {
        HttpParser::Result r = http_->resp_parser.feed(data + pos, len - pos);
        pos += r.consumed;
        switch (r.status) {
            case HttpParser::Status::need_more:
                return;
            case HttpParser::Status::error:
                fail_exchange(502, r.reason);
                return;
            case HttpParser::Status::upgrade: {
                // A 101: never passed on unless it answers the upgrade we forwarded and
                // passes validate_switch (docs/upgrades.md, "Response side").
                http_->verdict = validate_switch(http_->decision, http_->resp);
                if (!http_->verdict.accept) {
                    count_upgrade(UpgradeOutcome::refused_101, offered_protocol());
                    fail_exchange(502, http_->verdict.reason.c_str());
                    return;
                }
                uv_timer_stop(up_timer_);
                http_->up_held.assign(data + pos, len - pos);
                // The switch waits for the whole request body to be forwarded; until then
                // nothing more is read from the upstream.
                switch_pending_ = true;
                if (req_state_ != ReqState::complete) up_->pause_reading();
                if (req_state_ == ReqState::complete) process_input();
                return;
            }
            case HttpParser::Status::paused:
                if (res_state_ == ResState::complete) {
                    if (pos < len) up_reusable_ = false;  // bytes after the response: not reusable
                    // Transition outside of the parser: the exchange may end now.
                    if (req_state_ == ReqState::complete) {
                        process_input();
                    } else {
                        finish_exchange();  // early response; the request body is cut off
                    }
                    return;
                }
                http_->resp_parser.resume();  // after an interim (1xx) response
                break;
        }
    }
}

void ClientConn::on_upstream_closed(UpstreamConn&, int status) {
    if (res_state_ == ResState::body || res_state_ == ResState::waiting) {
        if (status == UV_EOF) {
            HttpParser::Result r = http_->resp_parser.finish();
            if (r.status != HttpParser::Status::error && res_state_ == ResState::complete) {
                up_reusable_ = false;
                if (req_state_ == ReqState::complete) {
                    process_input();
                } else {
                    finish_exchange();
                }
                return;
            }
        }
        if (res_state_ == ResState::waiting && up_ != nullptr && up_->reused() &&
            http_->req.framing == BodyFraming::none && req_state_ == ReqState::complete &&
            http_->req.is_idempotent()) {
            // A pooled connection the server closed as the request arrived: most likely it
            // was never processed, and an idempotent request may go again anyway (RFC 9110
            // §9.2.2), on another connection (each retry consumes one stale pooled
            // connection or opens a fresh one, so this ends).
            SY_TRACE("client %p pooled upstream closed, retrying", static_cast<void*>(this));
            uv_timer_stop(up_timer_);
            up_->close();
            up_ = nullptr;
            set_res_state(ResState::none);
            http_->tried.assign(pool_->slot_count(), false);
            connect_next();
            return;
        }
        fail_exchange(502, status == UV_EOF ? "upstream closed before the response ended"
                                            : "upstream connection broken");
    }
}

void ClientConn::on_upstream_drained(UpstreamConn&) {
    if (tunnel_ != nullptr) {
        tunnel_->on_writer_drained(Tunnel::kUpstream);
        return;
    }
    update_reading();
}

void ClientConn::on_upstream_shutdown(UpstreamConn&, int status) {
    if (tunnel_ != nullptr) tunnel_->on_shutdown_done(Tunnel::kUpstream, status);
}

void ClientConn::on_upstream_write_failed(UpstreamConn&, int status) {
    if (tunnel_ != nullptr) {
        tunnel_->on_writer_failed(Tunnel::kUpstream, status);
        return;
    }
    SY_TRACE("client %p upstream write failed: %s", static_cast<void*>(this), uv_strerror(status));
    up_write_failed_ = true;
    up_reusable_ = false;
    keep_alive_ = false;
    // The read side reports what the server did (a response or a close).
}

// ---------------------------------------------------------------------------------------
// Response parser callbacks

HttpParser::AfterHead ClientConn::on_response_head(MessageHead& head) {
    if (head.status == 101) {
        http_->resp = std::move(head);
        return HttpParser::AfterHead::proceed;  // judged in feed_response, which sees Status::upgrade
    }
    if (head.status < 200) {
        // Interim response (100 Continue, 103 Early Hints): passed on to HTTP/1.1 clients
        // (RFC 9110 §15.2: never to HTTP/1.0 ones); the final status is still to come.
        if (!http_->req.is_http10()) {
            http_->scratch.clear();
            ClientResponseOptions opts;
            opts.framing = BodyFraming::none;
            opts.via = config().forwarding.via;
            append_client_response_head(http_->scratch, head, opts);
            out_.write(http_->scratch);
        }
        return HttpParser::AfterHead::proceed;
    }
    uv_timer_stop(up_timer_);
    http_->resp = std::move(head);

    // How the body goes to the client (RFC 9112 §6.3): kept as received, except that a
    // close-delimited body is re-chunked for HTTP/1.1 clients so the connection survives.
    to_client_ = http_->resp.framing;
    if (to_client_ == BodyFraming::until_close && !http_->req.is_http10()) to_client_ = BodyFraming::chunked;
    keep_alive_ = keep_alive_ && http_->req.keep_alive && to_client_ != BodyFraming::until_close &&
                  !worker_.draining() && !client_eof_;
    up_reusable_ = http_->resp.keep_alive && http_->resp.framing != BodyFraming::until_close &&
                   pool_->config().keepalive > 0 && !up_write_failed_;
    HeaderList extra;
    if (http_->decision.kind == UpgradeDecision::Kind::forward) {
        // A declined upgrade: the client connection stays HTTP, and the upstream
        // connection that carried the offer is not reused.
        up_reusable_ = false;
        count_upgrade(UpgradeOutcome::declined, offered_protocol());
    }
    if (http_->resp.status == 426) {
        // The backend's 426 keeps its Upgrade, filtered to what the route allows.
        std::string upgrade = filter_upgrade_field(http_->resp, route_->upgrade);
        if (!upgrade.empty()) {
            extra.push_back({"Upgrade", std::move(upgrade)});
            extra.push_back({"Connection", "Upgrade"});
        }
    }

    ClientResponseOptions opts;
    opts.framing = to_client_;
    opts.close = !keep_alive_;
    opts.keep_alive_10 = keep_alive_ && http_->req.is_http10();
    opts.via = config().forwarding.via;
    http_->scratch.clear();
    append_client_response_head(http_->scratch, http_->resp, opts, extra);
    note_status_sent(http_->resp.status);
    out_.write(http_->scratch);
    set_res_state(ResState::body);
    return HttpParser::AfterHead::proceed;
}

void ClientConn::on_response_body(std::string_view data) {
    if (res_state_ != ResState::body) return;
    if (to_client_ == BodyFraming::chunked) {
        http_->scratch.clear();
        append_chunk_header(http_->scratch, data.size());
        out_.write({http_->scratch, data, kChunkEnd});
    } else {
        out_.write(data);
    }
    if (out_.queued() >= high_water() && up_ != nullptr) up_->pause_reading();
}

void ClientConn::on_response_end() {
    if (res_state_ != ResState::body) return;  // the end of an interim response
    if (to_client_ == BodyFraming::chunked) out_.write(kLastChunk);
    set_res_state(ResState::complete);
}

// ---------------------------------------------------------------------------------------
// Writing to the client

void ClientConn::on_writer_drained(StreamWriter&) {
    if (closing_) return;
    if (tunnel_ != nullptr) {
        tunnel_->on_writer_drained(Tunnel::kClient);
        return;
    }
    if (closing_after_flush_) {
        if (out_.queued() == 0) start_linger();
        return;
    }
    if (up_ != nullptr && res_state_ == ResState::body) up_->resume_reading();
    update_reading();
}

void ClientConn::on_writer_failed(StreamWriter&, int status) {
    if (closing_) return;
    if (tunnel_ != nullptr) {
        tunnel_->on_writer_failed(Tunnel::kClient, status);
        return;
    }
    SY_TRACE("client %p write failed: %s", static_cast<void*>(this), uv_strerror(status));
    if (res_state_ != ResState::none) log_exchange("client_abort");
    close();
}

// ---------------------------------------------------------------------------------------
// Ends of exchanges

void ClientConn::finish_exchange() {
    bool request_done = req_state_ == ReqState::complete;
    log_exchange(answered_locally_ ? "proxy" : "ok");
    uv_timer_stop(up_timer_);
    if (up_ != nullptr) {
        UpstreamConn* conn = up_;
        up_ = nullptr;
        if (up_reusable_ && request_done) {
            conn->release();
        } else {
            conn->close();
        }
    }
    first_request_ = false;
    if (!keep_alive_ || !request_done || client_eof_ || worker_.draining()) {
        close_after_flush();
        return;
    }
    set_res_state(ResState::none);
    set_req_state(ReqState::idle);
    route_ = nullptr;
    route_stats_ = nullptr;
    http_->forward_target.clear();
    http_->forward_host.clear();
    outcome_ = UpgradeOutcome::none;
    protocol_stats_ = nullptr;
    pool_ = nullptr;
    http_->decision = UpgradeDecision{};
    http_->req.method.clear();
    http_->req.target.clear();
    head_sent_ = false;
    answered_locally_ = false;
    status_sent_ = 0;
    bytes_in_ = 0;
    if (req_was_upgrade_) {
        // The upgrade was not carried out: what follows is HTTP (RFC 9110 §7.8).
        req_was_upgrade_ = false;
        http_->req_parser.resume_after_upgrade();
    } else {
        http_->req_parser.resume();
    }
    start_timer(config().timeouts.keepalive_idle);
    if (!unparsed().empty()) {
        set_req_state(ReqState::head);
        start_timer(config().timeouts.request_header);
    }
    process_input();
}

void ClientConn::fail_exchange(int status, const char* why) {
    log_error("%s %s: %s", http_->req.method.c_str(), http_->req.target.c_str(), why);
    uv_timer_stop(up_timer_);
    if (up_ != nullptr) {
        up_->close();
        up_ = nullptr;
    }
    if (head_sent_) {
        // The client already has part of a response: cutting the connection is the only
        // honest signal left.
        log_exchange("upstream_error");
        close();
        return;
    }
    respond_local(status, false, why);
}

void ClientConn::respond_local(int status, bool keep_open, const char* why, const HeaderList& fields,
                               std::string_view body) {
    SY_TRACE("client %p local %d: %s", static_cast<void*>(this), status, why);
    g_stats.add(g_stats.responses_proxy);
    // The connection can go on only when the request had no body to skip and the parser
    // stands right after its head.
    keep_open = keep_open && req_state_ == ReqState::connecting && http_->req.framing == BodyFraming::none &&
                http_->req.keep_alive && !worker_.draining() && !client_eof_;
    // No body for HEAD (RFC 9110 §9.3.2); before a head was parsed there is no method.
    const bool head_request = http_->req.method == "HEAD";
    note_status_sent(status);
    answered_locally_ = true;
    out_.write(make_proxy_response(status, !keep_open, fields, body, head_request));
    if (!keep_open) {
        log_exchange("proxy");
        close_after_flush();
        return;
    }
    // Let the parser reach the end of this (bodiless) request, then go on as usual.
    keep_alive_ = true;
    up_reusable_ = false;
    set_res_state(ResState::complete);
    set_req_state(ReqState::body);
    http_->req_parser.resume();
    process_input();
}

void ClientConn::close_after_flush() {
    if (closing_ || closing_after_flush_) return;
    out_.uncork();  // the last response goes before the FIN
    closing_after_flush_ = true;
    uv_timer_stop(up_timer_);
    if (up_ != nullptr) {
        up_->close();
        up_ = nullptr;
    }
    update_reading();
    if (out_.queued() == 0) start_linger();
}

// Lingering close: send FIN once the response is out, then read and discard until the
// client closes (or a short time passes), so that bytes the client had in flight do not
// turn our close into a reset that destroys the response (RFC 9112 §9.6).
void ClientConn::start_linger() {
    if (closing_ || lingering_) return;
    lingering_ = true;
    auto* req = new uv_shutdown_t;
    req->data = this;
    if (uv_shutdown(req, reinterpret_cast<uv_stream_t*>(&tcp_), &ClientConn::on_shutdown) != 0) {
        delete req;
        close();
        return;
    }
    start_timer(Millis(2000));
    update_reading();
}

// Runs before the client handle's close callback, even when the connection closed first
// (status UV_ECANCELED), so the connection is still there.
void ClientConn::on_shutdown(uv_shutdown_t* req, int status) {
    auto* self = static_cast<ClientConn*>(req->data);
    delete req;
    if (self->closing_) return;
    if (self->tunnel_ != nullptr) {
        self->tunnel_->on_shutdown_done(Tunnel::kClient, status);
        return;
    }
    if (status != 0) self->close();
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
    if (self->req_state_ == ReqState::head || (self->req_state_ == ReqState::idle && self->first_request_)) {
        // The head did not arrive in time (timeouts.request_header).
        self->respond_local(408, false, "request head timeout");
        return;
    }
    if (self->req_state_ == ReqState::idle) self->close();  // keepalive_idle
}

void ClientConn::begin_drain() {
    if (closing_ || tunnel_ != nullptr) return;  // tunnels run until the drain deadline
    if (req_state_ == ReqState::idle && res_state_ == ResState::none) {
        close();
        return;
    }
    keep_alive_ = false;  // the current response is the last one
}

void ClientConn::close() {
    if (closing_) return;
    closing_ = true;
    if (tunnel_ != nullptr) tunnel_->end(TunnelEnd::shutdown);
    tcp_.data = this;  // a tunnel may have borrowed it for its read callbacks
    if (up_ != nullptr) {
        up_->close();
        up_ = nullptr;
    }
    close_and_free(timer_);
    close_and_free(up_timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &ClientConn::on_handle_closed);
}

void ClientConn::on_handle_closed(uv_handle_t* handle) {
    auto* self = static_cast<ClientConn*>(handle->data);
    delete self;
}

// ---------------------------------------------------------------------------------------
// The switch and the tunnel

void ClientConn::start_tunnel() {
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
    append_client_response_head(http_->scratch, http_->resp, opts, {{"Upgrade", protocols}, {"Connection", "Upgrade"}});
    // Counted before the 101 can reach the client, so a client that sees it also sees it
    // in the metrics.
    count_upgrade(UpgradeOutcome::switched, protocols);
    note_status_sent(101);
    count_tunnel_open();
    out_.write(http_->scratch);

    set_req_state(ReqState::tunnel);
    set_res_state(ResState::tunnel);
    tunnel_ = std::make_unique<Tunnel>(static_cast<TunnelOwner&>(*this),
                                       Tunnel::Endpoint{reinterpret_cast<uv_stream_t*>(&tcp_), &out_},
                                       Tunnel::Endpoint{up_->stream(), &up_->writer()}, worker_.tunnel_buffers(),
                                       config.tunnel.buffer);
    tunnel_->protocol = std::move(protocols);
    tunnel_->client = http_->client_ip;
    tunnel_->method = http_->req.method;
    tunnel_->target = http_->req.target;
    // Every byte already read goes first, in order: the client's held bytes to the
    // backend, the backend's bytes behind its 101 to the client.
    std::string_view held = unparsed();
    // Sockets already being read keep being read, with the tunnel's callbacks: no
    // stop/start (each would cost epoll_ctl calls).
    tunnel_->start(held, http_->up_held, reading_, up_->reading());
    SY_TRACE("client %p tunnel to %s", static_cast<void*>(this), tunnel_->protocol.c_str());

    // What only HTTP needed goes now: an open tunnel keeps its sockets, writers and
    // counters. The caller (process_input) checks http_ after this returns.
    log_exchange("switched");
    close_and_free(timer_);
    close_and_free(up_timer_);
    up_->enter_tunnel();
    http_.reset();
}

void ClientConn::check_tunnel_idle(std::uint64_t now) {
    if (tunnel_ == nullptr || tunnel_->ended()) return;
    auto idle = static_cast<std::uint64_t>(config().timeouts.tunnel_idle.count());
    if (now - tunnel_->idle_since() >= idle) tunnel_->end(TunnelEnd::idle_timeout);
}

void ClientConn::tunnel_shutdown(int side) {
    if (side == Tunnel::kUpstream) {
        up_->shutdown_write();
        return;
    }
    auto* req = new uv_shutdown_t;
    req->data = this;
    int r = uv_shutdown(req, reinterpret_cast<uv_stream_t*>(&tcp_), &ClientConn::on_shutdown);
    if (r != 0) {
        delete req;
        tunnel_->on_shutdown_done(Tunnel::kClient, r);
    }
}

}  // namespace sy
