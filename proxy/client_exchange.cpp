// The exchange half of a client connection (proxy/client_conn.hpp): the request parser's
// callbacks, routing and the upgrade decision, the upstream connection (connect, retry,
// forward), the response parser's callbacks, and the three ways an exchange ends
// (finished, failed upstream, answered by the proxy itself). The connection's life, its
// reads and writes, closing and the switch are in client_conn.cpp.
#include "proxy/client_conn.hpp"

#include "parser/request_target.hpp"
#include "parser/serialize.hpp"
#include "parser/tokens.hpp"
#include "proxy/log.hpp"
#include "proxy/upstream_pool.hpp"
#include "routing/route_match.hpp"
#include "routing/upgrade_policy.hpp"

namespace sy {

// ---------------------------------------------------------------------------------------
// Request parser callbacks

HttpParser::AfterHead ClientConn::on_head(MessageHead& head) {
    uv_timer_stop(timer_);
    http_->req = std::move(head);
    exchange_start_ms_ = worker_.now_ms();
    bytes_out_mark_ = transport_->bytes_written();
    set_req_state(ReqState::connecting);
    return HttpParser::AfterHead::pause;  // routing and the upstream come first
}

void ClientConn::on_body(std::string_view data) {
    if (req_state_ != ReqState::body || up_ == nullptr || up_write_failed_ || http_->terminate.terminate) return;
    if (http_->req.framing == BodyFraming::chunked) {
        http_->scratch.clear();
        append_chunk_header(http_->scratch, data.size());
        up_->writer().write({http_->scratch, data, kChunkEnd});
    } else {
        up_->writer().write(data);
    }
}

void ClientConn::on_message_end() {
    if (req_state_ == ReqState::body && up_ != nullptr && !up_write_failed_ && !http_->terminate.terminate &&
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
    std::size_t hosts = count_fields(http_->req.headers, FieldId::host);
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
    const HeaderField* host_field = find_field(http_->req.headers, FieldId::host);
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
    const bool upgrade_request = is_upgrade_request(http_->req);
    if (upgrade_request) route_request.offer = collect_list(http_->req.headers, FieldId::upgrade);
    route_ = match_route(config, route_request);
    if (route_ == nullptr) {
        respond_local(404, true, "no route");
        return;
    }
    const auto route_index = static_cast<std::size_t>(route_ - config.routes.data());
    route_stats_ = &gen_->snapshot->stats.routes[route_index];
    http_->decision = decide(http_->req, route_->upgrade, upgrade_request, route_request.offer);
    http_->terminate = plan_termination(http_->decision, http_->req, route_->upgrade);
    if (http_->decision.kind == UpgradeDecision::Kind::respond) {
        count_upgrade(http_->decision.outcome, offered_protocol());
        respond_local(http_->decision.status, !http_->decision.close, http_->decision.reason.c_str(), http_->decision.response_fields,
                      http_->decision.response_body);
        return;
    }
    // An upgrade passes the route's admission (max_tunnels, max_rate) before anything else.
    if (http_->decision.kind == UpgradeDecision::Kind::forward && !admit_upgrade(route_index)) return;
    pool_ = gen_->pools[route_->upstream_index].get();
    http_->tried.assign(pool_->slot_count(), false);
    take_balance_inputs();
    connect_next(true);
}

void ClientConn::connect_next(bool first) {
    const std::size_t server = pick_server(first);
    if (server == UpstreamPool::npos) return;  // answered (502, or 503 when every server is full)
    http_->tried[server] = true;
    bool connected = false;
    // A terminated WebSocket needs its own connection: a pooled one speaks HTTP.
    up_ = pool_->acquire(server, *this, config().timeouts.upstream_connect, &connected, !http_->terminate.terminate,
                         upstream_proxy_header());
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
    release_server_reservation();
    // Nothing was sent yet: the next server may take the request.
    connect_next();
}

void ClientConn::on_upstream_ready() {
    const Config& config = this->config();
    if (http_->terminate.terminate) {
        // Nothing goes upstream as HTTP, and nothing the service sends is read before the
        // switch: a service that speaks first is heard through the tunnel. The 101 waits
        // for the end of the request (a body is read and dropped).
        up_->pause_reading();
        switch_pending_ = true;
        set_req_state(ReqState::body);
        http_->req_parser.resume();
        process_input();  // no-op when called from inside process_input: its loop goes on
        return;
    }
    ForwardingOptions fwd;
    fwd.x_forwarded_for = config.forwarding.x_forwarded_for;
    fwd.x_forwarded_proto = config.forwarding.x_forwarded_proto;
    fwd.proto = tls_ != nullptr ? "https" : "http";
    fwd.via = config.forwarding.via;
    fwd.client_address = http_->client_ip;
    fwd.target = http_->forward_target;
    fwd.host = http_->forward_host;
    if (fwd.host.empty() && find_field(http_->req.headers, FieldId::host) == nullptr) {
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
                                 (pool_->config().keepalive == 0 || pool_->config().proxy_protocol != ProxyProtocolOut::off) && !forward_upgrade);
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
    transport_->cork();
    feed_response(data, len);
    if (!closing_) transport_->uncork();
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
            release_server_reservation();
            connect_next();
            return;
        }
        const std::string tls_error = up_ != nullptr ? up_->tls_error() : std::string();
        if (!tls_error.empty()) {
            // A certificate that does not verify or names another host (docs/tls.md).
            log_error("upstream %s server %s: %s", pool_->config().name.c_str(),
                      pool_->server_name(up_->server()).c_str(), tls_error.c_str());
            fail_exchange(502, "upstream TLS failed");
            return;
        }
        fail_exchange(502, status == UV_EOF ? "upstream closed before the response ended"
                                            : "upstream connection broken");
    }
}

void ClientConn::on_upstream_drained(UpstreamConn&) { update_reading(); }

void ClientConn::on_upstream_write_failed(UpstreamConn&, int status) {
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
            transport_->write(http_->scratch);
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
    if (!http_->set_cookie.empty()) extra.push_back({"Set-Cookie", http_->set_cookie});
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
    transport_->write(http_->scratch);
    set_res_state(ResState::body);
    return HttpParser::AfterHead::proceed;
}

void ClientConn::on_response_body(std::string_view data) {
    if (res_state_ != ResState::body) return;
    if (to_client_ == BodyFraming::chunked) {
        http_->scratch.clear();
        append_chunk_header(http_->scratch, data.size());
        transport_->write({http_->scratch, data, kChunkEnd});
    } else {
        transport_->write(data);
    }
    if (transport_->queued() >= high_water() && up_ != nullptr) up_->pause_reading();
}

void ClientConn::on_response_end() {
    if (res_state_ != ResState::body) return;  // the end of an interim response
    if (to_client_ == BodyFraming::chunked) transport_->write(kLastChunk);
    set_res_state(ResState::complete);
}

// ---------------------------------------------------------------------------------------
// Ends of exchanges

void ClientConn::finish_exchange() {
    release_reservations();  // no tunnel came of it
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
    http_->set_cookie.clear();
    http_->balance_key.reset();
    http_->affinity = {};
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
    release_reservations();
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
    release_reservations();
    // The connection can go on only when the request had no body to skip and the parser
    // stands right after its head.
    keep_open = keep_open && req_state_ == ReqState::connecting && http_->req.framing == BodyFraming::none &&
                http_->req.keep_alive && !worker_.draining() && !client_eof_;
    // No body for HEAD (RFC 9110 §9.3.2); before a head was parsed there is no method.
    const bool head_request = http_->req.method == "HEAD";
    note_status_sent(status);
    answered_locally_ = true;
    transport_->write(make_proxy_response(status, !keep_open, fields, body, head_request));
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

}  // namespace sy
