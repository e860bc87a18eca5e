// One client connection: reads requests, routes them, forwards each to an upstream
// connection and relays the response. An explicit state machine per direction:
//
//   request:  idle -> head -> connecting -> body -> complete -> (idle | closed | tunnel)
//   response: none -> waiting -> body -> complete -> none
//                             -> (accepted 101) -> tunnel
//
// An exchange ends when both directions are complete, or becomes a tunnel on an accepted
// 101 (proxy/tunnel.hpp). Requests are served one at a time;
// pipelined bytes wait unparsed in `in_` until the previous response is complete, so
// responses always go out in request order.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <uv.h>

#include "parser/http_parser.hpp"
#include "parser/message.hpp"
#include "parser/proxy_protocol.hpp"
#include "proxy/log.hpp"
#include "proxy/ops/stats.hpp"
#include "proxy/transport/tcp_transport.hpp"
#include "proxy/transport/tls_context.hpp"
#include "proxy/transport/tls_transport.hpp"
#include "proxy/tunnel.hpp"
#include "proxy/ws_tunnel.hpp"
#include "proxy/upstream_conn.hpp"
#include "proxy/worker.hpp"
#include "routing/config.hpp"
#include "routing/terminate_policy.hpp"
#include "routing/upgrade_policy.hpp"

namespace sy {

class HandoffOutbox;
struct MovingTunnel;
struct SleepingTunnel;
class UpstreamPool;

class ClientConn final : private HttpParser::Handler,
                         private TransportUser,
                         private UpstreamEvents,
                         private TunnelOwner {
public:
    explicit ClientConn(Worker& worker);
    ClientConn(const ClientConn&) = delete;
    ClientConn& operator=(const ClientConn&) = delete;

    // Accepts the pending connection on `server` and starts reading. On failure the
    // object closes itself.
    // `tls`: the listener's TLS (null: plain TCP). `proxy_protocol`: the connection starts
    // with a PROXY header (before TLS), which names the client.
    void accept(uv_stream_t* server, const ServerTls* tls, bool proxy_protocol);
    // Shutdown: closes the connection if it is between exchanges; otherwise it closes
    // after the current response.
    void begin_drain();
    // The worker's periodic sweep: ends a tunnel idle for timeouts.tunnel_idle.
    void check_tunnel_idle(std::uint64_t now);
    // A binary upgrade (client_handoff.cpp). hand_off: an established raw tunnel over plain
    // TCP goes to `outbox` (its sockets, state and unwritten bytes) and this connection
    // closes; false for anything else, which stays. adopt: a new connection continuing a
    // tunnel handed over by the old process.
    bool hand_off(HandoffOutbox& outbox);
    static void adopt(Worker& worker, MovingTunnel moving);
    // Idle tunnels (client_sleep.cpp, proxy/hibernation.hpp). fall_asleep: a raw tunnel
    // over plain TCP idle for Hibernation::kSleepAfter, with nothing queued and neither
    // direction ended, as a SleepingTunnel holding duplicates of its sockets (null
    // otherwise; nothing changes here). sleep_closed: once it sleeps, this connection
    // gives it its places in the shared counts and closes without a trace. wake: a new
    // connection around a sleeping tunnel's sockets.
    std::unique_ptr<SleepingTunnel> fall_asleep(std::uint64_t now);
    void sleep_closed(SleepingTunnel& asleep);
    static void wake(Worker& worker, std::unique_ptr<SleepingTunnel> tunnel);
    // Closes both sides now. Safe to call twice; the object deletes itself once every
    // handle is closed.
    void close();

    enum class ReqState { idle, head, connecting, body, complete, tunnel };
    enum class ResState { none, waiting, body, complete, tunnel };

private:
    ~ClientConn() override;

    // The response parser's handler: forwards to the ClientConn's on_response_* members.
    struct ResponseHandler final : HttpParser::Handler {
        explicit ResponseHandler(ClientConn& c) : conn(c) {}
        HttpParser::AfterHead on_head(MessageHead& head) override { return conn.on_response_head(head); }
        void on_body(std::string_view data) override { conn.on_response_body(data); }
        void on_message_end() override { conn.on_response_end(); }
        ClientConn& conn;
    };

    // libuv callbacks, and the client transport's close.
    static void on_timer(uv_timer_t* timer);
    static void on_upstream_timer(uv_timer_t* timer);
    static void on_transport_closed(void* self);

    // Request parser (HttpParser::Handler).
    HttpParser::AfterHead on_head(MessageHead& head) override;
    void on_body(std::string_view data) override;
    void on_message_end() override;

    // Response parser.
    HttpParser::AfterHead on_response_head(MessageHead& head);
    void on_response_body(std::string_view data);
    void on_response_end();

    // TransportUser: the client's transport, until a tunnel takes it over.
    void on_transport_read(Transport& t, BufferPool::Buffer* buf, std::size_t len) override;
    void on_transport_read_end(Transport& t, int status) override;
    void on_transport_drained(Transport& t) override;
    void on_transport_write_failed(Transport& t, int status) override;
    void on_transport_shutdown(Transport& t, int status) override;

    // UpstreamEvents.
    void on_upstream_connected(UpstreamConn& conn) override;
    void on_upstream_connect_failed(UpstreamConn& conn, int status) override;
    void on_upstream_read(UpstreamConn& conn, const char* data, std::size_t len) override;
    void on_upstream_closed(UpstreamConn& conn, int status) override;
    void on_upstream_drained(UpstreamConn& conn) override;
    void on_upstream_write_failed(UpstreamConn& conn, int status) override;

    // TunnelOwner.
    void tunnel_ended(TunnelEnd how) override;

    // Transitions (the only places that change the states; each traces). Inline: the
    // exchange code in another file calls them several times per request.
    void set_req_state(ReqState next) {
        if (g_trace_enabled) trace_req_state(next);
        req_state_ = next;
    }
    void set_res_state(ResState next) {
        if (g_trace_enabled) trace_res_state(next);
        res_state_ = next;
    }
    void trace_req_state(ReqState next) const;
    void trace_res_state(ResState next) const;

    void on_client_bytes(const char* data, std::size_t len);
    // PROXY protocol (client_proxy_header.cpp): the header's bytes until it is whole; then
    // TLS starts, if the listener has it, and what follows is the client's.
    void on_proxy_header_bytes(BufferPool::Buffer* buf, std::size_t len);
    void start_tls(const ServerTls* tls);
    // The PROXY header for a server of the current pool (empty: it expects none).
    std::string upstream_proxy_header();
    // The client bytes not parsed yet (the current read's rest, or the saved ones).
    inline std::string_view unparsed() const;
    void consume(std::size_t n);
    void on_client_eof(int status);
    void process_input();
    void start_exchange();
    // Balancing and admission (client_balance.cpp). `first`: the request's first server.
    void connect_next(bool first = false);
    bool admit_upgrade(std::size_t route_index);
    void throttle(const char* why, std::uint64_t retry_after_s);
    void take_balance_inputs();
    std::size_t pick_server(bool first);
    void release_server_reservation();
    // Gives back the places taken in the shared tunnel counts (no tunnel came of the
    // exchange, or the tunnel ended).
    void release_reservations();
    void on_upstream_ready();
    void feed_response(const char* data, std::size_t len);
    void finish_exchange();
    // The single path for an upstream failure: `status` (502/504) to the client when no
    // response head was sent yet, otherwise the client connection is cut.
    void fail_exchange(int status, const char* why);
    // A response from the proxy itself. `keep_open` only when the request had no body
    // and the connection can go on.
    void respond_local(int status, bool keep_open, const char* why, const HeaderList& fields = {},
                       std::string_view body = {});
    // The backend accepted the upgrade and the request is fully forwarded: send the 101,
    // hand both sockets and every byte already read to a Tunnel.
    void start_tunnel();
    // Terminate mode: the upstream is connected and the request read; the proxy's own 101,
    // then a WsTunnel between the client's frames and the upstream's bytes.
    void start_terminated();
    void adopt_tunnel(MovingTunnel moving);
    void wake_tunnel(std::unique_ptr<SleepingTunnel> tunnel);
    Tunnel* continue_tunnel();
    // The worker's splice(2) pipe for a tunnel over plain TCP both ways with
    // tunnel.splice: auto; null otherwise.
    SplicePipe* splice_pipe();
    void close_after_flush();
    void start_linger();
    void update_reading();
    void start_timer(Millis timeout);
    // Accounting (client_conn_log.cpp): the exchange's access-log line and metrics; the
    // upgrade outcome as it becomes known; a tunnel's open and end.
    void log_exchange(const char* end);
    std::uint64_t log_bytes_to_clients();
    // A final (or 101) response head goes to the client now: counted in requests_total
    // before its bytes can arrive, so the metrics never lag what a client saw.
    void note_status_sent(int status);
    void count_upgrade(UpgradeOutcome outcome, std::string_view protocol);
    // The protocol the metrics and the log name for this exchange's upgrade: the first
    // forwarded one, else the first offered one, else none.
    std::string_view offered_protocol() const;
    // The current exchange's route series ("no route" before or without a match).
    const RouteStats& route_stats() const;
    void count_tunnel_open();
    void count_tunnel_end(TunnelEnd how);
    // The configuration this connection's current exchange runs under; a new exchange
    // takes the worker's newest one.
    const Config& config() const { return gen_->config(); }
    void take_current_config();
    std::size_t high_water() const { return config().tunnel.buffer; }

    // Everything an HTTP exchange needs and a tunnel does not: allocated with the
    // connection, freed at the switch, so an open tunnel keeps only its sockets, writers
    // and counters (docs/architecture.md, "Who owns which buffer").
    struct Http {
        Http(ClientConn& conn, const Config& config);
        HttpParser req_parser;
        ResponseHandler resp_handler;
        HttpParser resp_parser;
        std::string in;          // bytes read from the client and not parsed yet, from in_pos
        std::size_t in_pos = 0;
        // During on_client_bytes only: the unparsed rest of the current read, parsed in
        // place when `in` holds nothing; what the parser leaves is copied into `in` after.
        std::string_view direct;
        std::string scratch;     // chunk headers and serialised heads
        MessageHead req;
        MessageHead resp;
        UpgradeDecision decision;
        SwitchVerdict verdict;   // the accepted 101's, while switching
        TerminatePlan terminate; // terminate mode: the proxy answers the upgrade itself
        std::string up_held;     // upstream bytes that came after the 101 head
        std::vector<bool> tried;  // servers tried for this request
        std::string forward_target;  // absolute-form: the origin-form to send; empty: as received
        std::string forward_host;    // absolute-form: its authority, the Host to send
        std::optional<std::uint64_t> balance_key;  // balance: hash, the request's key hashed
        std::string_view affinity;   // the sticky cookie's value (in req's headers)
        std::string set_cookie;      // a Set-Cookie for the response (sticky), or empty
        std::string client_ip;
        // The connection's two ends as a PROXY header named them (family none otherwise):
        // what an upstream PROXY header passes on.
        ProxyAddress pp_source;
        ProxyAddress pp_destination;
    };

    // A listener with proxy_protocol: the header's bytes so far, and the listener's TLS,
    // which starts once the header is read.
    struct PendingProxyHeader {
        std::string bytes;
        const ServerTls* tls = nullptr;
    };

    Worker& worker_;
    GenerationPtr gen_;  // held from the start of an exchange (or a tunnel) to its end
    // The client's byte stream (TCP, or TLS over it); it frees itself after close() and
    // then frees us.
    Transport* transport_;
    TlsTransport* tls_ = nullptr;  // transport_ when the listener has TLS
    // Timers and the shutdown request live on the heap so that a tunnel can give them back
    // (close_and_free); null once given back.
    uv_timer_t* timer_ = nullptr;     // request_header / keepalive_idle / lingering close
    uv_timer_t* up_timer_ = nullptr;  // upstream_response
    std::unique_ptr<Http> http_;
    std::unique_ptr<PendingProxyHeader> proxy_header_;  // until the PROXY header is read
    std::unique_ptr<TunnelBase> tunnel_;  // a raw Tunnel or a WsTunnel

    ReqState req_state_ = ReqState::idle;
    ResState res_state_ = ResState::none;

    // The current exchange.
    const RouteConfig* route_ = nullptr;
    const RouteStats* route_stats_ = nullptr;  // the route's series, or "no route"
    UpgradeOutcome outcome_ = UpgradeOutcome::none;
    const ProtocolStats* protocol_stats_ = nullptr;  // with outcome_; a tunnel's labels
    UpstreamPool* pool_ = nullptr;
    UpstreamConn* up_ = nullptr;
    // Places taken in the shared tunnel counts (proxy/admission.hpp), held until the tunnel
    // ends or no tunnel comes of the exchange.
    SharedCount* server_reservation_ = nullptr;
    SharedCount* route_reservation_ = nullptr;
    BodyFraming to_client_ = BodyFraming::none;
    int status_sent_ = 0;
    // Loop times (ms), like nginx's cached clock: no clock read per request.
    std::uint64_t exchange_start_ms_ = 0;  // the request head
    std::uint64_t switch_ms_ = 0;          // the switch: a tunnel's duration starts here
    std::uint32_t request_ms_ = 0;         // a tunnel's request, head to switch (for its log line)
    std::uint64_t bytes_in_ = 0;
    std::uint64_t bytes_out_mark_ = 0;
    // A tunnel handed over by the old process: the bytes it counted already (per side read
    // from), which the metrics here leave out.
    std::array<std::uint64_t, 2> handed_bytes_{};

    bool head_sent_ = false;         // a final response head went to the client
    bool answered_locally_ = false;  // that head came from the proxy (respond_local)
    bool keep_alive_ = true;         // the client connection goes on after this exchange
    bool up_reusable_ = false;
    bool up_write_failed_ = false;
    bool req_was_upgrade_ = false;   // the request parser stopped with Status::upgrade
    bool switch_pending_ = false;    // an accepted 101 waits for the request body to end
    bool first_request_ = true;
    bool client_eof_ = false;
    bool in_process_input_ = false;
    bool closing_after_flush_ = false;
    bool lingering_ = false;
    bool closing_ = false;
    bool asleep_ = false;  // its tunnel went to sleep: the close counts and logs nothing
};

std::string_view ClientConn::unparsed() const {
    const Http& h = *http_;
    if (!h.direct.empty()) return h.direct;
    return std::string_view(h.in.data() + h.in_pos, h.in.size() - h.in_pos);
}

}  // namespace sy
