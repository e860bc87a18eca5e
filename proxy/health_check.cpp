#include "proxy/health_check.hpp"

#include "parser/proxy_protocol.hpp"

#include <algorithm>
#include <string>

#include "parser/http_parser.hpp"
#include "proxy/log.hpp"
#include "proxy/net.hpp"
#include "proxy/upstream_pool.hpp"

namespace sy {

// One check of one server: connect, send the request, read the status line, close.
class HealthChecker::Probe final : HttpParser::Handler {
public:
    Probe(HealthChecker& owner, std::size_t server)
        : owner_(owner),
          server_(server),
          parser_(HttpParser::Kind::response, *this, HttpParser::Limits{64 * 1024, 200}) {
        uv_tcp_init(owner.loop_, &tcp_);
        uv_timer_init(owner.loop_, &timer_);
        tcp_.data = this;
        timer_.data = this;
    }

    void start() {
        connect_.data = this;
        if (uv_tcp_connect(&connect_, &tcp_, owner_.pool_.address(server_), &Probe::on_connect) != 0) {
            finish(false);
            return;
        }
        // The whole probe must end within the check interval, the connection within the
        // connect timeout.
        Millis limit = std::min(owner_.check_.interval, owner_.connect_timeout_);
        uv_timer_start(&timer_, [](uv_timer_t* t) { static_cast<Probe*>(t->data)->finish(false); },
                       static_cast<std::uint64_t>(limit.count()), 0);
    }

    // Ends the probe; reports the result unless it was aborted. Idempotent.
    void finish(bool up, bool report = true) {
        if (done_) return;
        done_ = true;
        if (report) owner_.probe_done(this, server_, up);
        pending_ = 2;
        uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &Probe::on_closed);
        uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &Probe::on_closed);
    }

private:
    static void on_connect(uv_connect_t* req, int status) {
        auto* self = static_cast<Probe*>(req->data);
        if (self->done_) return;
        if (status != 0) {
            self->finish(false);
            return;
        }
        // A server that expects a PROXY header gets one saying "the proxy itself" (v2 LOCAL,
        // v1 UNKNOWN), as HAProxy's checks do.
        const ProxyProtocolOut pp = self->owner_.pool_.config().proxy_protocol;
        self->request_ = pp == ProxyProtocolOut::v1 ? proxy_header_v1({}, {})
                         : pp == ProxyProtocolOut::v2 ? proxy_header_v2({}, {})
                                                      : std::string();
        self->request_ += "GET " + self->owner_.check_.path +
                         " HTTP/1.1\r\nHost: " + address_text(self->owner_.pool_.address(self->server_), true) +
                         "\r\nUser-Agent: switchyard-health-check\r\nConnection: close\r\n\r\n";
        self->write_.data = self;
        uv_buf_t buf = uv_buf_init(self->request_.data(), static_cast<unsigned>(self->request_.size()));
        auto* stream = reinterpret_cast<uv_stream_t*>(&self->tcp_);
        if (uv_write(&self->write_, stream, &buf, 1, [](uv_write_t* w, int s) {
                auto* p = static_cast<Probe*>(w->data);
                if (s != 0) p->finish(false);
            }) != 0 ||
            uv_read_start(stream, &Probe::on_alloc, &Probe::on_read) != 0) {
            self->finish(false);
        }
    }

    static void on_alloc(uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
        auto* self = static_cast<Probe*>(handle->data);
        *buf = uv_buf_init(self->buffer_, sizeof self->buffer_);
    }

    static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
        auto* self = static_cast<Probe*>(stream->data);
        if (self->done_ || nread == 0) return;
        if (nread < 0) {
            self->finish(false);
            return;
        }
        HttpParser::Result r = self->parser_.feed(buf->base, static_cast<std::size_t>(nread));
        if (r.status == HttpParser::Status::error) self->finish(false);
    }

    HttpParser::AfterHead on_head(MessageHead& head) override {
        if (head.status >= 200) finish(head.status < 300);
        return HttpParser::AfterHead::proceed;
    }
    void on_body(std::string_view) override {}
    void on_message_end() override {}

    static void on_closed(uv_handle_t* handle) {
        auto* self = static_cast<Probe*>(handle->data);
        if (--self->pending_ == 0) delete self;
    }

    HealthChecker& owner_;
    std::size_t server_;
    HttpParser parser_;
    uv_tcp_t tcp_{};
    uv_timer_t timer_{};
    uv_connect_t connect_{};
    uv_write_t write_{};
    std::string request_;
    char buffer_[4096];
    int pending_ = 0;
    bool done_ = false;
};

HealthChecker::HealthChecker(uv_loop_t* loop, UpstreamPool& pool, const HealthCheck& check, Millis connect_timeout)
    : loop_(loop), pool_(pool), check_(check), connect_timeout_(connect_timeout), timer_(new uv_timer_t) {
    uv_timer_init(loop_, timer_);
    timer_->data = this;
}

HealthChecker::~HealthChecker() { stop(); }

void HealthChecker::start() {
    probe_all();  // at once, so a dead server is known before the first interval ends
    auto interval = static_cast<std::uint64_t>(check_.interval.count());
    uv_timer_start(timer_, &HealthChecker::on_tick, interval, interval);
}

void HealthChecker::stop() {
    if (stopped_) return;
    stopped_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    std::vector<Probe*> probes;
    probes.swap(probes_);
    for (Probe* probe : probes) probe->finish(false, false);
}

void HealthChecker::on_tick(uv_timer_t* timer) { static_cast<HealthChecker*>(timer->data)->probe_all(); }

// A probe's time limit is at most the interval, so a server has at most one probe in
// flight.
void HealthChecker::probe_all() {
    for (std::size_t server = 0; server < pool_.slot_count(); ++server) {
        if (!pool_.in_service(server)) continue;
        auto* probe = new Probe(*this, server);
        probes_.push_back(probe);
        probe->start();
    }
}

void HealthChecker::probe_done(Probe* probe, std::size_t server, bool up) {
    auto it = std::find(probes_.begin(), probes_.end(), probe);
    if (it != probes_.end()) probes_.erase(it);
    if (pool_.set_check_result(server, up)) {
        log_info("upstream %s server %s: health check %s", pool_.config().name.c_str(),
                 pool_.server_name(server).c_str(), up ? "up" : "down");
    }
}

}  // namespace sy
