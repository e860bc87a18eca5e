// A worker: one event-loop thread with its listeners (sharing the port with the other
// workers through SO_REUSEPORT), its client connections and its upstream pools.
//
// The worker runs the newest configuration it was given (`current()`); a reload posts a
// new snapshot with post_reload() and the worker switches to it in one step on its own
// thread. Every exchange holds the Generation it started with until it ends.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <uv.h>

#include "proxy/buffer_pool.hpp"
#include "proxy/snapshot.hpp"
#include "routing/config.hpp"

namespace sy {

class AccessLog;
class ClientConn;
class HandoffOutbox;
class Hibernation;
class SplicePipe;
struct MovingTunnel;
class HealthChecker;
class UpstreamPool;

// One worker's view of a snapshot: the snapshot and the worker's pools for its upstreams.
struct Generation {
    SnapshotPtr snapshot;
    std::vector<std::shared_ptr<UpstreamPool>> pools;  // per Config::upstreams index
    const Config& config() const { return snapshot->config; }
};
using GenerationPtr = std::shared_ptr<const Generation>;

// A listening socket of the worker and the configured listener (Config::listen index) it
// serves. A worker has one per listener, or after a binary upgrade that changed `workers`,
// none or several (the sockets the old process had).
struct ListenSocket {
    std::size_t index = 0;
    int fd = -1;
};

class Worker {
public:
    // `listen`: bound, listening sockets (owned from now on).
    Worker(SnapshotPtr snapshot, unsigned id, std::vector<ListenSocket> listen, AccessLog& access_log);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    void start();  // runs the loop on a new thread
    void join();
    // Thread-safe: stop accepting, let in-flight exchanges finish, close everything by
    // timeouts.shutdown_drain. With `now`, close everything at once (a second signal).
    void request_drain(bool now = false);
    // Thread-safe: switch to `snapshot`. `kept[i]` is the index in the running
    // configuration of the listener that new listener i continues, or -1 for a new one,
    // whose socket is the next of `new_fds` (owned from now on). Running listeners that
    // no new one continues are closed.
    void post_reload(SnapshotPtr snapshot, std::vector<int> kept, std::vector<int> new_fds);
    // Thread-safe: waits (at most `timeout`) until every reload posted so far is applied;
    // true when it is. A reload is reported done only once every worker runs it.
    bool wait_reloads_applied(std::chrono::milliseconds timeout);
    // Thread-safe: a binary upgrade committed (docs/operations.md, "Binary upgrade"). Like
    // request_drain, and every raw tunnel over plain TCP goes to `outbox`, now or when it
    // forms; the other tunnels stay until they end or timeouts.shutdown_drain.
    void request_handoff(HandoffOutbox* outbox);
    // Thread-safe: continue a tunnel the old process handed over. False when the worker
    // has stopped (the tunnel is then dropped with `moving`).
    bool post_adopt(MovingTunnel&& moving);
    // Thread-safe: the hand-off's channel broke; tunnels stay here from now on.
    void stop_handoff() { outbox_.store(nullptr); }
    // Thread-safe: while tunnels may still come from an old process, a draining worker
    // does not finish (set before start(); cleared when the old process is gone).
    void set_adoptions_pending(bool pending);
    bool handing_off() const { return outbox_.load(std::memory_order_relaxed) != nullptr && draining_; }
    // A tunnel formed while handing off: it goes too, from the loop's next turn.
    void schedule_handoff();

    uv_loop_t* loop() { return &loop_; }
    // The configuration new exchanges use. Worker thread only.
    const GenerationPtr& current() const { return current_; }
    const Config& config() const { return current_->config(); }
    unsigned id() const { return id_; }
    AccessLog& access_log() { return access_log_; }
    bool draining() const { return draining_; }
    // Thread-safe: the worker's loop has nothing left to run (after a drain).
    bool finished() const { return loop_done_.load(); }

    // What an HTTP read takes at most.
    static constexpr std::size_t kReadBufferSize = 64 * 1024;
    // Every read lands in one of these (proxy/buffer_pool.hpp), max(64 KiB, min(tunnel.buffer,
    // 256 KiB)) each, given back as soon as its bytes are parsed or written: an idle
    // connection holds none.
    BufferPool& io_buffers() { return io_buffers_; }
    // The pipe splice(2) tunnels share (proxy/splice_pipe.hpp), made at the first use; null
    // when it cannot be made (the tunnels then copy).
    SplicePipe* splice_pipe();

    // Connection registry (for drain and the connection limit).
    void add_client(ClientConn* conn);
    void remove_client(ClientConn* conn);

    // Milliseconds from the loop's clock.
    std::uint64_t now_ms() { return uv_now(&loop_); }

private:
    struct Listener {
        uv_tcp_t tcp{};
        Worker* worker = nullptr;
        std::size_t index = 0;  // the Config::listen entry it serves
    };
    struct PendingReload {
        SnapshotPtr snapshot;
        std::vector<int> kept;
        std::vector<int> new_fds;
    };
    static void on_connection(uv_stream_t* server, int status);
    static void on_drain_async(uv_async_t* async);
    static void on_reload_async(uv_async_t* async);
    static void on_drain_deadline(uv_timer_t* timer);
    static void on_tunnel_sweep(uv_timer_t* timer);
    static void on_adopt_async(uv_async_t* async);
    static void on_handoff_timer(uv_timer_t* timer);
    void hand_off_tunnels();
    void close_all();
    void put_idle_tunnels_to_sleep(std::uint64_t now);
    void run();
    void begin_drain();
    void maybe_finish();
    void apply(PendingReload reload);
    std::unique_ptr<Listener> open_listener(std::size_t index, int fd);
    static void close_listener(std::unique_ptr<Listener> listener);
    void start_health_checks();
    void stop_health_checks();
    void start_tunnel_sweep();

    unsigned id_;
    AccessLog& access_log_;
    GenerationPtr current_;
    uv_loop_t loop_{};
    uv_async_t drain_async_{};
    uv_async_t reload_async_{};
    uv_async_t adopt_async_{};
    uv_timer_t handoff_timer_{};
    uv_timer_t drain_timer_{};
    // One timer for every tunnel's idle timeout: a tunnel only stamps its last activity.
    uv_timer_t tunnel_sweep_{};
    std::vector<std::unique_ptr<Listener>> listeners_;
    std::vector<std::unique_ptr<HealthChecker>> checkers_;
    std::vector<ClientConn*> clients_;
    BufferPool io_buffers_;
    std::unique_ptr<SplicePipe> splice_pipe_;
    std::unique_ptr<Hibernation> hibernation_;  // idle tunnels asleep
    bool give_back_pending_ = false;  // many fell asleep: return freed memory at the next sweep
    std::size_t sleeping_at_give_back_ = 0;
    bool splice_failed_ = false;
    std::thread thread_;
    std::mutex pending_mutex_;
    std::vector<PendingReload> pending_;  // posted by the main thread, applied in order
    std::condition_variable applied_cv_;
    std::uint64_t posted_ = 0;   // reloads posted (under pending_mutex_)
    std::uint64_t applied_ = 0;  // reloads applied (under pending_mutex_)
    std::atomic<bool> drain_now_{false};
    std::atomic<HandoffOutbox*> outbox_{nullptr};
    std::mutex adopt_mutex_;
    std::vector<MovingTunnel> adopting_;  // posted by the main thread (under adopt_mutex_)
    bool adopt_open_ = true;              // the loop still takes tunnels (under adopt_mutex_)
    std::atomic<bool> adoptions_pending_{false};
    std::atomic<bool> loop_done_{false};
    bool running_ = false;
    bool draining_ = false;
    bool finished_ = false;
};

}  // namespace sy
