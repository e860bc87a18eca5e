#include "proxy/worker.hpp"

#include <algorithm>

#include <unistd.h>

#include "proxy/client_conn.hpp"
#include "proxy/free_memory.hpp"
#include "proxy/handoff/handoff_queue.hpp"
#include "proxy/hibernation.hpp"
#include "proxy/health_check.hpp"
#include "proxy/log.hpp"
#include "proxy/ops/stats.hpp"
#include "proxy/splice_pipe.hpp"
#include "proxy/upstream_pool.hpp"
#include "routing/upgrade_policy.hpp"

namespace sy {

Worker::Worker(SnapshotPtr snapshot, unsigned id, std::vector<ListenSocket> listen, AccessLog& access_log)
    : id_(id),
      access_log_(access_log),
      io_buffers_(std::max(kReadBufferSize, std::min<std::size_t>(snapshot->config.tunnel.buffer, 256 * 1024)), 16) {
    uv_loop_init(&loop_);
    loop_.data = this;
    uv_async_init(&loop_, &drain_async_, &Worker::on_drain_async);
    drain_async_.data = this;
    uv_async_init(&loop_, &reload_async_, &Worker::on_reload_async);
    reload_async_.data = this;
    uv_async_init(&loop_, &adopt_async_, &Worker::on_adopt_async);
    adopt_async_.data = this;
    uv_timer_init(&loop_, &handoff_timer_);
    handoff_timer_.data = this;
    hibernation_ = std::make_unique<Hibernation>(
        &loop_, [this](std::unique_ptr<SleepingTunnel> t) { ClientConn::wake(*this, std::move(t)); });
    uv_timer_init(&loop_, &drain_timer_);
    drain_timer_.data = this;
    uv_timer_init(&loop_, &tunnel_sweep_);
    tunnel_sweep_.data = this;
    for (const ListenSocket& l : listen) listeners_.push_back(open_listener(l.index, l.fd));
    auto generation = std::make_shared<Generation>();
    const Config& config = snapshot->config;
    for (std::size_t u = 0; u < config.upstreams.size(); ++u) {
        generation->pools.push_back(std::make_shared<UpstreamPool>(*this, config.upstreams[u], snapshot->stats.upstreams[u],
                                                                   snapshot->server_addresses[u],
                                                                   snapshot->admission.servers[u]));
        generation->pools.back()->set_tls(snapshot->upstream_tls[u]);
    }
    generation->snapshot = std::move(snapshot);
    current_ = std::move(generation);
}

Worker::~Worker() {
    // Every handle was closed when run() returned.
    for (const PendingReload& reload : pending_) {
        for (int fd : reload.new_fds) ::close(fd);
    }
    uv_loop_close(&loop_);
}

std::unique_ptr<Worker::Listener> Worker::open_listener(std::size_t index, int fd) {
    auto listener = std::make_unique<Listener>();
    listener->worker = this;
    listener->index = index;
    uv_tcp_init(&loop_, &listener->tcp);
    listener->tcp.data = listener.get();
    if (uv_tcp_open(&listener->tcp, fd) != 0) ::close(fd);
    if (running_) {
        int r = uv_listen(reinterpret_cast<uv_stream_t*>(&listener->tcp), 511, &Worker::on_connection);
        if (r != 0) log_error("worker %u: listen failed: %s", id_, uv_strerror(r));
    }
    return listener;
}

void Worker::close_listener(std::unique_ptr<Listener> listener) {
    Listener* raw = listener.release();
    uv_close(reinterpret_cast<uv_handle_t*>(&raw->tcp), [](uv_handle_t* h) { delete static_cast<Listener*>(h->data); });
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

void Worker::post_reload(SnapshotPtr snapshot, std::vector<int> kept, std::vector<int> new_fds) {
    {
        std::lock_guard<std::mutex> lock(pending_mutex_);
        pending_.push_back(PendingReload{std::move(snapshot), std::move(kept), std::move(new_fds)});
        ++posted_;
    }
    uv_async_send(&reload_async_);
}

bool Worker::wait_reloads_applied(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(pending_mutex_);
    return applied_cv_.wait_for(lock, timeout, [this] { return applied_ == posted_; });
}

void Worker::run() {
    set_metrics_writer(id_);
    running_ = true;
    for (auto& listener : listeners_) {
        int r = uv_listen(reinterpret_cast<uv_stream_t*>(&listener->tcp), 511, &Worker::on_connection);
        if (r != 0) log_error("worker %u: listen failed: %s", id_, uv_strerror(r));
    }
    start_health_checks();
    start_tunnel_sweep();
    // The splice pipe is made now rather than at the first tunnel, so the process's
    // descriptors do not change with traffic (an empty pipe holds no pages).
    if (config().tunnel.splice) splice_pipe();
    // Likewise the thread's SHA-1 for Sec-WebSocket-Accept, rather than at the first handshake.
    prepare_websocket_accept();
    uv_run(&loop_, UV_RUN_DEFAULT);
    loop_done_.store(true);
}

// Idle tunnels are found within a quarter of tunnel_idle (at most a second late). Tunnels
// keep the tunnel_idle they started with; the period follows the newest configuration.
void Worker::start_tunnel_sweep() {
    auto idle = static_cast<std::uint64_t>(config().timeouts.tunnel_idle.count());
    std::uint64_t period = std::clamp<std::uint64_t>(idle / 4, 10, 1000);
    uv_timer_start(&tunnel_sweep_, &Worker::on_tunnel_sweep, period, period);
    uv_unref(reinterpret_cast<uv_handle_t*>(&tunnel_sweep_));
}

void Worker::start_health_checks() {
    const Config& config = this->config();
    for (std::size_t u = 0; u < config.upstreams.size(); ++u) {
        if (!config.upstreams[u].health.check) continue;
        checkers_.push_back(std::make_unique<HealthChecker>(&loop_, *current_->pools[u], *config.upstreams[u].health.check,
                                                            config.timeouts.upstream_connect));
        checkers_.back()->start();
    }
}

void Worker::stop_health_checks() {
    for (auto& checker : checkers_) checker->stop();
    checkers_.clear();
}

void Worker::on_reload_async(uv_async_t* async) {
    auto* self = static_cast<Worker*>(async->data);
    std::vector<PendingReload> pending;
    {
        std::lock_guard<std::mutex> lock(self->pending_mutex_);
        pending.swap(self->pending_);
    }
    for (PendingReload& reload : pending) self->apply(std::move(reload));
    {
        std::lock_guard<std::mutex> lock(self->pending_mutex_);
        self->applied_ += pending.size();
    }
    self->applied_cv_.notify_all();
}

// Switches to a new snapshot in one step (docs/operations.md, "Reload"): listeners by
// address, pools by name (and their servers by address), health checks restarted on the
// new settings. Exchanges in flight keep the Generation they hold.
void Worker::apply(PendingReload reload) {
    if (draining_) {
        for (int fd : reload.new_fds) ::close(fd);
        return;
    }
    // Listeners: continue (every socket of the listener continued), open, close.
    std::vector<std::unique_ptr<Listener>> listeners;
    std::size_t next_fd = 0;
    for (std::size_t i = 0; i < reload.kept.size(); ++i) {
        const int old_index = reload.kept[i];
        if (old_index < 0) {
            if (next_fd < reload.new_fds.size()) listeners.push_back(open_listener(i, reload.new_fds[next_fd++]));
            continue;
        }
        for (auto& listener : listeners_) {
            if (!listener || listener->index != static_cast<std::size_t>(old_index)) continue;
            listener->index = i;
            listeners.push_back(std::move(listener));
        }
    }
    for (auto& listener : listeners_) {
        if (listener) close_listener(std::move(listener));
    }
    listeners_ = std::move(listeners);

    // Pools: the same name keeps its pool, diffed; a removed one retires.
    stop_health_checks();
    const Snapshot& snap = *reload.snapshot;
    auto generation = std::make_shared<Generation>();
    std::vector<bool> carried(current_->pools.size(), false);
    for (std::size_t u = 0; u < snap.config.upstreams.size(); ++u) {
        const UpstreamConfig& upstream = snap.config.upstreams[u];
        std::shared_ptr<UpstreamPool> pool;
        for (std::size_t old = 0; old < current_->pools.size(); ++old) {
            if (!carried[old] && current_->pools[old]->config().name == upstream.name) {
                carried[old] = true;
                pool = current_->pools[old];
                pool->reconfigure(upstream, snap.stats.upstreams[u], snap.server_addresses[u], snap.admission.servers[u]);
                break;
            }
        }
        if (!pool) {
            pool = std::make_shared<UpstreamPool>(*this, upstream, snap.stats.upstreams[u], snap.server_addresses[u],
                                                  snap.admission.servers[u]);
        }
        pool->set_tls(snap.upstream_tls[u]);
        generation->pools.push_back(std::move(pool));
    }
    for (std::size_t old = 0; old < current_->pools.size(); ++old) {
        if (!carried[old]) current_->pools[old]->retire();
    }
    generation->snapshot = std::move(reload.snapshot);
    current_ = std::move(generation);
    start_health_checks();
    start_tunnel_sweep();
}

void Worker::on_connection(uv_stream_t* server, int status) {
    auto* listener = static_cast<Listener*>(server->data);
    Worker& self = *listener->worker;
    if (status < 0 || self.draining_) return;
    auto* conn = new ClientConn(self);  // owns itself; deleted after its handles close
    // The listener's index finds its TLS, if any.
    const ServerTls* tls = nullptr;
    bool proxy_protocol = false;
    const Snapshot& snapshot = *self.current()->snapshot;
    if (listener->index < snapshot.listener_tls.size()) {
        tls = snapshot.listener_tls[listener->index].get();
        proxy_protocol = snapshot.config.listen[listener->index].proxy_protocol;
    }
    conn->accept(server, tls, proxy_protocol);
    if (self.clients_.size() + self.hibernation_->size() > self.config().limits.max_connections) {
        // Over limits.max_connections: accepted (so the kernel queue does not fill) and
        // closed at once.
        g_stats.add(g_stats.connections_refused);
        conn->close();
    }
}

SplicePipe* Worker::splice_pipe() {
    if (!splice_pipe_ && !splice_failed_) {
        auto pipe = std::make_unique<SplicePipe>(io_buffers_);
        if (pipe->ok()) {
            splice_pipe_ = std::move(pipe);
        } else {
            splice_failed_ = true;
            log_error("worker %u: no pipe for splice(2); tunnels copy", id_);
        }
    }
    return splice_pipe_.get();
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
    // Memory freed by tunnels falling asleep goes back to the system when their number grew
    // by 64 or more since the last time (counted from the lowest number since): tunnels
    // that heartbeat, waking and sleeping again, leave the number flat and cause none.
    self->sleeping_at_give_back_ = std::min(self->sleeping_at_give_back_, self->hibernation_->size());
    if (self->give_back_pending_) {
        self->give_back_pending_ = false;
        self->sleeping_at_give_back_ = self->hibernation_->size();
        give_back_free_memory();
    }
    // Sleeping tunnels past their tunnel_idle wake, to be ended below like the others.
    self->hibernation_->wake_if([now](const SleepingTunnel& t) {
        return now - t.last_activity_ms >= static_cast<std::uint64_t>(t.gen->config().timeouts.tunnel_idle.count());
    });
    // Ending a tunnel only starts closing its connection; clients_ changes in the close
    // callback, after this loop, so no copy of the list is needed.
    for (ClientConn* conn : self->clients_) conn->check_tunnel_idle(now);
    if (!self->draining_) self->put_idle_tunnels_to_sleep(now);
}

void Worker::put_idle_tunnels_to_sleep(std::uint64_t now) {
    if (!hibernation_->ok()) return;
    std::size_t slept = 0;
    // A connection whose tunnel falls asleep leaves clients_ at once: iterate over a copy.
    const std::vector<ClientConn*> clients = clients_;
    for (ClientConn* conn : clients) {
        std::unique_ptr<SleepingTunnel> asleep = conn->fall_asleep(now);
        if (!asleep) continue;
        SleepingTunnel* raw = asleep.get();
        // No event on its sockets can be handled before this callback returns.
        if (hibernation_->put(asleep)) {
            conn->sleep_closed(*raw);
            ++slept;
        }
    }
    // Many connection objects are freed (in their close callbacks, after this): at the next
    // sweep, what the allocator keeps of them goes back to the system.
    if (slept > 0 && hibernation_->size() >= sleeping_at_give_back_ + 64) give_back_pending_ = true;
}

void Worker::on_drain_async(uv_async_t* async) {
    auto* self = static_cast<Worker*>(async->data);
    self->begin_drain();
    if (self->outbox_.load() != nullptr) self->hand_off_tunnels();
    if (self->drain_now_.load()) self->close_all();
}

void Worker::request_handoff(HandoffOutbox* outbox) {
    outbox_.store(outbox);
    uv_async_send(&drain_async_);
}

void Worker::schedule_handoff() { uv_timer_start(&handoff_timer_, &Worker::on_handoff_timer, 0, 0); }

void Worker::on_handoff_timer(uv_timer_t* timer) { static_cast<Worker*>(timer->data)->hand_off_tunnels(); }

void Worker::hand_off_tunnels() {
    HandoffOutbox* outbox = outbox_.load();
    if (outbox == nullptr || finished_) return;
    // A handed connection closes, which edits clients_ (in its close callback, but a copy
    // keeps this loop independent of that).
    std::vector<ClientConn*> clients = clients_;
    std::size_t handed = 0;
    for (ClientConn* conn : clients) handed += conn->hand_off(*outbox) ? 1 : 0;
    if (handed > 0) log_info("worker %u: handed %zu tunnels over", id_, handed);
}

bool Worker::post_adopt(MovingTunnel&& moving) {
    {
        std::lock_guard<std::mutex> lock(adopt_mutex_);
        if (!adopt_open_) return false;
        adopting_.push_back(std::move(moving));
    }
    uv_async_send(&adopt_async_);
    return true;
}

void Worker::set_adoptions_pending(bool pending) {
    std::lock_guard<std::mutex> lock(adopt_mutex_);  // the async handle is closed under it
    adoptions_pending_.store(pending);
    if (!pending && adopt_open_) uv_async_send(&adopt_async_);  // a draining worker may finish now
}

void Worker::on_adopt_async(uv_async_t* async) {
    auto* self = static_cast<Worker*>(async->data);
    std::vector<MovingTunnel> adopting;
    {
        std::lock_guard<std::mutex> lock(self->adopt_mutex_);
        adopting.swap(self->adopting_);
    }
    for (MovingTunnel& moving : adopting) ClientConn::adopt(*self, std::move(moving));
    // Adopted while this process hands over in turn: they move on too.
    if (self->handing_off()) self->schedule_handoff();
    self->maybe_finish();
}

void Worker::begin_drain() {
    if (draining_) return;
    draining_ = true;
    hibernation_->wake_all();  // a drain and a hand-off deal with connections
    for (auto& listener : listeners_) close_listener(std::move(listener));
    listeners_.clear();
    for (auto& pool : current_->pools) pool->close_idle();
    stop_health_checks();
    // begin_drain may close connections, which edits clients_: iterate over a copy.
    std::vector<ClientConn*> clients = clients_;
    for (ClientConn* conn : clients) conn->begin_drain();
    uv_timer_start(&drain_timer_, &Worker::on_drain_deadline,
                   static_cast<std::uint64_t>(config().timeouts.shutdown_drain.count()), 0);
    maybe_finish();
}

void Worker::on_drain_deadline(uv_timer_t* timer) {
    auto* self = static_cast<Worker*>(timer->data);
    log_info("worker %u: shutdown_drain passed, closing %zu connections", self->id_, self->clients_.size());
    self->close_all();
}

void Worker::close_all() {
    if (finished_) return;
    hibernation_->wake_all();
    std::vector<ClientConn*> clients = clients_;
    for (ClientConn* conn : clients) conn->close();
}

void Worker::maybe_finish() {
    if (!draining_ || finished_ || !clients_.empty() || adoptions_pending_.load() || hibernation_->size() > 0) return;
    {
        // Tunnels posted and not adopted yet (their async may come after the drain's).
        std::lock_guard<std::mutex> lock(adopt_mutex_);
        if (!adopting_.empty()) return;
    }
    finished_ = true;
    // Upstream connections released while draining were closed, not pooled. Closing our
    // own handles lets uv_run return once the last close callback ran.
    for (auto& pool : current_->pools) pool->close_idle();
    uv_close(reinterpret_cast<uv_handle_t*>(&drain_async_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&reload_async_), nullptr);
    {
        std::lock_guard<std::mutex> lock(adopt_mutex_);
        adopt_open_ = false;
        adopting_.clear();  // closes their sockets
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&adopt_async_), nullptr);
    hibernation_->close();
    uv_close(reinterpret_cast<uv_handle_t*>(&handoff_timer_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&tunnel_sweep_), nullptr);
}

}  // namespace sy
