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
      timer_(new uv_timer_t),
      writer_(reinterpret_cast<uv_stream_t*>(&tcp_), *this) {
    uv_loop_t* loop = pool_->worker().loop();
    uv_tcp_init(loop, &tcp_);
    uv_timer_init(loop, timer_);
    tcp_.data = this;
    timer_->data = this;
    g_stats.add(g_stats.upstream_connections_active, 1);
}

void UpstreamConn::connect(UpstreamEvents& events, Millis timeout) {
    events_ = &events;
    connecting_ = true;
    auto* req = new uv_connect_t;
    req->data = this;
    int r = uv_tcp_connect(req, &tcp_, pool_->address(server_), &UpstreamConn::on_connect);
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
    uv_tcp_nodelay(&self->tcp_, 1);
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
    if (reading_ || closing_) return;
    if (uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &UpstreamConn::on_alloc, &UpstreamConn::on_read) == 0) {
        reading_ = true;
    }
}

void UpstreamConn::pause_reading() {
    if (!reading_ || closing_) return;
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
    reading_ = false;
}

void UpstreamConn::resume_reading() { start_reading(); }

void UpstreamConn::on_alloc(uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
    auto* self = static_cast<UpstreamConn*>(handle->data);
    *buf = uv_buf_init(self->pool_->worker().read_buffer(), Worker::kReadBufferSize);
}

void UpstreamConn::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* self = static_cast<UpstreamConn*>(stream->data);
    if (self->closing_ || nread == 0) return;
    if (self->idle()) {
        // Bytes or EOF on an idle connection: the server closed it or broke framing.
        self->close();
        return;
    }
    if (nread < 0) {
        self->pause_reading();
        self->events_->on_upstream_closed(*self, static_cast<int>(nread));
        return;
    }
    self->events_->on_upstream_read(*self, buf->base, static_cast<std::size_t>(nread));
}

void UpstreamConn::on_writer_drained(StreamWriter&) {
    if (events_ != nullptr && !closing_) events_->on_upstream_drained(*this);
}

void UpstreamConn::on_writer_failed(StreamWriter&, int status) {
    if (events_ != nullptr && !closing_) events_->on_upstream_write_failed(*this, status);
}

void UpstreamConn::enter_tunnel() {
    close_and_free(timer_);
    writer_.drop_cork_buffer();
}

void UpstreamConn::shutdown_write() {
    auto* req = new uv_shutdown_t;
    req->data = this;
    int r = uv_shutdown(req, reinterpret_cast<uv_stream_t*>(&tcp_), &UpstreamConn::on_shutdown);
    if (r != 0) {
        delete req;
        if (events_ != nullptr) events_->on_upstream_shutdown(*this, r);
    }
}

// Runs before the handle's close callback, even after close() (status UV_ECANCELED).
void UpstreamConn::on_shutdown(uv_shutdown_t* req, int status) {
    auto* self = static_cast<UpstreamConn*>(req->data);
    delete req;
    if (!self->closing_ && self->events_ != nullptr) self->events_->on_upstream_shutdown(*self, status);
}

void UpstreamConn::close() {
    if (closing_) return;
    closing_ = true;
    tcp_.data = this;  // a tunnel may have borrowed it for its read callbacks
    bool was_idle = idle();
    events_ = nullptr;
    pool_->on_conn_closed(this, was_idle, !was_idle);
    close_and_free(timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &UpstreamConn::on_handle_closed);
}

void UpstreamConn::on_handle_closed(uv_handle_t* handle) {
    auto* self = static_cast<UpstreamConn*>(handle->data);
    g_stats.add(g_stats.upstream_connections_active, -1);
    delete self;
}

}  // namespace sy
