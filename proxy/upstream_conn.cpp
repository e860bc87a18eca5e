#include "proxy/upstream_conn.hpp"

#include "proxy/log.hpp"
#include "proxy/ops/stats.hpp"
#include "proxy/upstream_pool.hpp"
#include "proxy/uv_util.hpp"
#include "proxy/worker.hpp"

namespace sy {

UpstreamConn::UpstreamConn(std::shared_ptr<UpstreamPool> pool, std::size_t server)
    : pool_(std::move(pool)),
      server_(server),
      transport_(new TcpTransport(pool_->worker().loop(), pool_->worker().io_buffers())),
      tcp_(static_cast<TcpTransport*>(transport_)),
      timer_(new uv_timer_t) {
    uv_timer_init(pool_->worker().loop(), timer_);
    transport_->set_user(this);
    transport_->set_read_limit(Worker::kReadBufferSize);
    timer_->data = this;
    g_stats.add(g_stats.upstream_connections_active, 1);
}

void UpstreamConn::connect(UpstreamEvents& events, Millis timeout, std::string proxy_header) {
    events_ = &events;
    connecting_ = true;
    proxy_header_ = std::move(proxy_header);
    auto* req = new uv_connect_t;
    req->data = this;
    int r = uv_tcp_connect(req, tcp_->tcp(), pool_->address(server_), &UpstreamConn::on_connect);
    if (r != 0) {
        delete req;
        // Report asynchronously-equivalent: the caller expects a callback, not a re-entrant one.
        connecting_ = false;
        uv_timer_start(timer_, [](uv_timer_t* t) {
            auto* self = static_cast<UpstreamConn*>(t->data);
            if (self->events_ != nullptr) self->events_->on_upstream_connect_failed(*self, UV_ECONNREFUSED);
        }, 0, 0);
        return;
    }
    uv_timer_start(timer_, &UpstreamConn::on_timer, static_cast<std::uint64_t>(timeout.count()), 0);
    // Reading starts with the connect, so the socket enters epoll once for both (libuv
    // handles the connect first); started after it, libuv would ADD again, fail with
    // EEXIST and MOD: two more epoll_ctl per connection.
    start_reading();
}

// Runs before the handle's close callback, even after close() (status UV_ECANCELED).
void UpstreamConn::on_connect(uv_connect_t* req, int status) {
    auto* self = static_cast<UpstreamConn*>(req->data);
    delete req;
    self->connecting_ = false;
    if (self->closing_) return;
    uv_timer_stop(self->timer_);
    if (status != 0) {
        if (self->events_ != nullptr) self->events_->on_upstream_connect_failed(*self, status);
        return;
    }
    uv_tcp_nodelay(self->tcp_->tcp(), 1);
    if (!self->proxy_header_.empty()) {
        self->tcp_->write(self->proxy_header_);  // before anything else, TLS included
        std::string().swap(self->proxy_header_);
    }
    if (const ClientTls* tls = self->pool_->tls()) {
        // TLS toward the server: the handshake starts now; what the exchange writes waits
        // for it inside the transport, and a failed verification ends the read side.
        SSL* ssl = tls->new_ssl(self->pool_->tls_name(self->server_));
        if (ssl == nullptr) {
            if (self->events_ != nullptr) self->events_->on_upstream_connect_failed(*self, UV_EPROTO);
            return;
        }
        self->tls_ = new TlsTransport(self->pool_->worker().loop(), self->tcp_, ssl, self->pool_->worker().io_buffers());
        self->transport_ = self->tls_;
        self->transport_->set_user(self);
        self->transport_->set_read_limit(Worker::kReadBufferSize);
    }
    self->start_reading();
    if (self->events_ != nullptr) self->events_->on_upstream_connected(*self);
}

void UpstreamConn::on_timer(uv_timer_t* timer) {
    auto* self = static_cast<UpstreamConn*>(timer->data);
    if (self->closing_) return;
    if (self->connecting_) {
        if (self->events_ != nullptr) self->events_->on_upstream_connect_failed(*self, UV_ETIMEDOUT);
        return;
    }
    if (self->idle()) self->close();  // idle keep-alive timeout in the pool
}

void UpstreamConn::attach(UpstreamEvents& events) {
    events_ = &events;
    reused_ = true;
    uv_timer_stop(timer_);
    pool_->on_conn_busy(this);
}

void UpstreamConn::release() {
    events_ = nullptr;
    if (closing_) return;
    resume_reading();  // an idle connection must notice the server closing it
    pool_->on_conn_released(this);
    if (!closing_) {
        auto idle_ms = static_cast<std::uint64_t>(pool_->worker().config().timeouts.keepalive_idle.count());
        uv_timer_start(timer_, &UpstreamConn::on_timer, idle_ms, 0);
    }
}

void UpstreamConn::start_reading() {
    if (!closing_) transport_->start_reading();
}

void UpstreamConn::pause_reading() {
    if (!closing_) transport_->stop_reading();
}

void UpstreamConn::resume_reading() { start_reading(); }

void UpstreamConn::on_transport_read(Transport&, BufferPool::Buffer* buf, std::size_t len) {
    if (idle()) {
        // Bytes on an idle connection: the server broke framing.
        buf->pool->give(buf);
        close();
        return;
    }
    events_->on_upstream_read(*this, buf->data(), len);
    buf->pool->give(buf);
}

void UpstreamConn::on_transport_read_end(Transport&, int status) {
    if (idle()) {
        close();  // the server closed an idle pooled connection
        return;
    }
    events_->on_upstream_closed(*this, status);
}

void UpstreamConn::on_transport_drained(Transport&) {
    if (events_ != nullptr && !closing_) events_->on_upstream_drained(*this);
}

void UpstreamConn::on_transport_write_failed(Transport&, int status) {
    if (events_ != nullptr && !closing_) events_->on_upstream_write_failed(*this, status);
}

void UpstreamConn::on_transport_shutdown(Transport&, int) {}  // only a tunnel shuts down

bool UpstreamConn::adopt(UpstreamEvents& events, int fd) {
    events_ = &events;  // busy from here, so that a failure below closes it as busy
    return tcp_->open(fd);
}

void UpstreamConn::enter_tunnel() {
    close_and_free(timer_);
    transport_->drop_cork_buffer();
}

void UpstreamConn::close() {
    if (closing_) return;
    closing_ = true;
    bool was_idle = idle();
    events_ = nullptr;
    pool_->on_conn_closed(this, was_idle, !was_idle);
    close_and_free(timer_);
    transport_->close(&UpstreamConn::on_transport_closed, this);
}

void UpstreamConn::on_transport_closed(void* self) {
    g_stats.add(g_stats.upstream_connections_active, -1);
    delete static_cast<UpstreamConn*>(self);
}

}  // namespace sy
