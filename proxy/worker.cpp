#include "proxy/worker.hpp"

#include <algorithm>

#include <unistd.h>

#include "proxy/client_conn.hpp"
#include "proxy/health_check.hpp"
#include "proxy/log.hpp"
#include "proxy/metrics.hpp"
#include "proxy/net.hpp"
#include "proxy/upstream_pool.hpp"

namespace sy {

// resolve_servers: proxy/net.hpp

Worker::Worker(const Config& config, unsigned id, std::vector<int> listen_fds, AccessLog& access_log)
    : config_(config),
      id_(id),
      access_log_(access_log),
      read_buffer_(new char[kReadBufferSize]),
      tunnel_buffers_(std::min<std::size_t>(config.tunnel.buffer, 256 * 1024), 16) {
    uv_loop_init(&loop_);
    loop_.data = this;
    uv_async_init(&loop_, &drain_async_, &Worker::on_drain_async);
    drain_async_.data = this;
    uv_timer_init(&loop_, &drain_timer_);
    drain_timer_.data = this;
    uv_timer_init(&loop_, &tunnel_sweep_);
    tunnel_sweep_.data = this;
    for (int fd : listen_fds) {
        auto listener = std::make_unique<Listener>();
        listener->worker = this;
        uv_tcp_init(&loop_, &listener->tcp);
        listener->tcp.data = listener.get();
        if (uv_tcp_open(&listener->tcp, fd) != 0) ::close(fd);
        listeners_.push_back(std::move(listener));
    }
    for (const UpstreamConfig& upstream : config.upstreams) {
        pools_.push_back(std::make_unique<UpstreamPool>(*this, upstream, resolve_servers(upstream)));
        if (upstream.health.check) {
            checkers_.push_back(std::make_unique<HealthChecker>(&loop_, *pools_.back(), *upstream.health.check,
                                                                config.timeouts.upstream_connect));
        }
    }
}

Worker::~Worker() {
    // Every handle was closed when run() returned.
    uv_loop_close(&loop_);
}

void Worker::start() {
    thread_ = std::thread([this] { run(); });
}

void Worker::join() {
    if (thread_.joinable()) thread_.join();
}

void Worker::request_drain(bool now) {
    if (now) drain_now_.store(true);
    uv_async_send(&drain_async_);
}

void Worker::run() {
    for (auto& listener : listeners_) {
        int r = uv_listen(reinterpret_cast<uv_stream_t*>(&listener->tcp), 511, &Worker::on_connection);
        if (r != 0) log_error("worker %u: listen failed: %s", id_, uv_strerror(r));
    }
    for (auto& checker : checkers_) checker->start();
    // Idle tunnels are found within a quarter of tunnel_idle (at most a second late).
    auto idle = static_cast<std::uint64_t>(config_.timeouts.tunnel_idle.count());
    std::uint64_t period = std::clamp<std::uint64_t>(idle / 4, 10, 1000);
    uv_timer_start(&tunnel_sweep_, &Worker::on_tunnel_sweep, period, period);
    uv_unref(reinterpret_cast<uv_handle_t*>(&tunnel_sweep_));
    uv_run(&loop_, UV_RUN_DEFAULT);
    loop_done_.store(true);
}

void Worker::on_connection(uv_stream_t* server, int status) {
    auto* listener = static_cast<Listener*>(server->data);
    Worker& self = *listener->worker;
    if (status < 0 || self.draining_) return;
    auto* conn = new ClientConn(self);  // owns itself; deleted after its handles close
    conn->accept(server);
    if (self.clients_.size() > self.config_.limits.max_connections) {
        // Over limits.max_connections: accepted (so the kernel queue does not fill) and
        // closed at once.
        g_metrics.connections_refused_total.fetch_add(1, std::memory_order_relaxed);
        conn->close();
    }
}

void Worker::add_client(ClientConn* conn) { clients_.push_back(conn); }

void Worker::remove_client(ClientConn* conn) {
    auto it = std::find(clients_.begin(), clients_.end(), conn);
    if (it != clients_.end()) {
        *it = clients_.back();
        clients_.pop_back();
    }
    maybe_finish();
}

void Worker::on_tunnel_sweep(uv_timer_t* timer) {
    auto* self = static_cast<Worker*>(timer->data);
    std::uint64_t now = self->now_ms();
    // Ending a tunnel only starts closing its connection; clients_ changes in the close
    // callback, after this loop, so no copy of the list is needed.
    for (ClientConn* conn : self->clients_) conn->check_tunnel_idle(now);
}

void Worker::on_drain_async(uv_async_t* async) {
    auto* self = static_cast<Worker*>(async->data);
    self->begin_drain();
    if (self->drain_now_.load()) self->close_all();
}

void Worker::begin_drain() {
    if (draining_) return;
    draining_ = true;
    for (auto& listener : listeners_) uv_close(reinterpret_cast<uv_handle_t*>(&listener->tcp), nullptr);
    for (auto& pool : pools_) pool->close_idle();
    for (auto& checker : checkers_) checker->stop();
    // begin_drain may close connections, which edits clients_: iterate over a copy.
    std::vector<ClientConn*> clients = clients_;
    for (ClientConn* conn : clients) conn->begin_drain();
    uv_timer_start(&drain_timer_, &Worker::on_drain_deadline,
                   static_cast<std::uint64_t>(config_.timeouts.shutdown_drain.count()), 0);
    maybe_finish();
}

void Worker::on_drain_deadline(uv_timer_t* timer) {
    auto* self = static_cast<Worker*>(timer->data);
    log_info("worker %u: shutdown_drain passed, closing %zu connections", self->id_, self->clients_.size());
    self->close_all();
}

void Worker::close_all() {
    if (finished_) return;
    std::vector<ClientConn*> clients = clients_;
    for (ClientConn* conn : clients) conn->close();
}

void Worker::maybe_finish() {
    if (!draining_ || finished_ || !clients_.empty()) return;
    finished_ = true;
    // Upstream connections released while draining were closed, not pooled. Closing our
    // own handles lets uv_run return once the last close callback ran.
    for (auto& pool : pools_) pool->close_idle();
    uv_close(reinterpret_cast<uv_handle_t*>(&drain_async_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&tunnel_sweep_), nullptr);
}

}  // namespace sy
