// A binary upgrade (docs/operations.md, "Binary upgrade"): on SIGUSR2 the process starts
// the binary now at its own path, hands it the listening sockets and then every raw tunnel
// over plain TCP, and drains the rest. Both ends live on the main thread's loop; the
// workers only put tunnels into the sender's outbox and take them from the receiver.
//
// Old process (HandoffSender):
//   idle -> spawned (waits for `ready`) -> listeners sent (waits for `listening`)
//        -> committed (tunnels flow until the old process holds nothing)
//   A child that exits, closes the channel, says something else or is not listening
//   within kReadyTimeout fails the attempt: it is killed and everything goes on as before.
// New process (HandoffReceiver): says `ready` once its configuration is loaded, takes the
// listening sockets, says `listening` once its workers accept, then adopts tunnels until
// the old process exits.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <uv.h>

#include "proxy/handoff/handoff_queue.hpp"

namespace sy {

// How this process was started, for starting its successor the same way.
struct ProcessImage {
    std::string executable;  // /proc/self/exe at start-up: the path, not the file
    std::vector<std::string> argv;
};
// Recorded once by main().
void record_process_image(int argc, char** argv);
const ProcessImage& process_image();

// The environment variable naming the inherited channel in a successor.
inline constexpr const char* kHandoffFdVariable = "SWITCHYARD_HANDOFF_FD";
inline constexpr std::chrono::milliseconds kReadyTimeout{10'000};

// Listening sockets by key: "listen ADDRESS" (as configured) for a listener, one socket per
// worker; "admin ADDRESS" for the admin listener.
using ListenerGroups = std::map<std::string, std::vector<int>>;

class HandoffSender final : public HandoffOutbox {
public:
    struct Hooks {
        // The listening sockets to hand over (they stay open here).
        std::function<ListenerGroups()> listeners;
        // The successor listens: stop accepting, hand the tunnels to this outbox, drain.
        std::function<void(int pid)> committed;
        // The attempt failed after the successor had the listening sockets (it may have
        // written the pid file and told systemd MAINPID=): claim them back.
        std::function<void()> reclaim;
        // A tunnel that cannot go (the channel broke after the commit, or its record is too
        // large): it continues here, in one of this process's workers.
        std::function<void(MovingTunnel)> keep;
        // The channel broke after the commit: no more tunnels are to be handed over.
        std::function<void()> stop_handing_off;
    };
    HandoffSender(uv_loop_t* loop, Hooks hooks);
    ~HandoffSender() override;

    // Starts the successor. False (logged) when an attempt is under way or it could not
    // be started.
    bool start();
    // SIGTERM/SIGINT during an attempt that has not committed: it is given up.
    void cancel(const std::string& why);
    bool busy() const { return state_ != State::idle; }
    bool committed() const { return state_ == State::committed; }

    // Thread-safe (workers): a tunnel for the successor.
    void push(MovingTunnel tunnel) override;
    // The old process is done: sends what is still queued and closes the channel.
    void finish();

private:
    enum class State { idle, spawned, listeners_sent, committed, failed };
    static void on_exit(uv_process_t* process, std::int64_t status, int signal);
    static void on_readable(uv_poll_t* poll, int status, int events);
    static void on_timeout(uv_timer_t* timer);
    static void on_outbox(uv_async_t* async);
    void read_message();
    void fail(const std::string& why, const char* outcome = "still serving");
    void channel_broken(const std::string& why);
    void send_listeners();
    void send_queued();
    bool send_tunnel(MovingTunnel& tunnel);
    void close_channel();

    uv_loop_t* loop_;
    Hooks hooks_;
    State state_ = State::idle;
    int channel_ = -1;
    uv_process_t process_{};
    bool process_open_ = false;    // the handle (closed in its exit callback, or at commit)
    bool process_exited_ = false;  // reaped: never signalled again
    uv_poll_t poll_{};
    bool poll_open_ = false;
    uv_timer_t timer_{};
    uv_async_t outbox_async_{};
    bool handles_open_ = true;
    std::mutex mutex_;
    std::vector<MovingTunnel> queue_;  // under mutex_
    std::size_t tunnels_sent_ = 0;
};

class HandoffReceiver {
public:
    // `channel`: the inherited socket (owned from now on).
    explicit HandoffReceiver(int channel) : channel_(channel) {}
    ~HandoffReceiver();

    // Says `ready`, then takes the listening sockets. False with `error` when the old
    // process does not answer as expected within kReadyTimeout.
    bool take_listeners(ListenerGroups* groups, std::string* error);
    // Says `listening` (this process accepts now). The old process's PID is known from here.
    bool announce_listening(std::string* error);
    // From now on tunnels arrive on `loop`; each goes to `adopt`. The channel closes when
    // the old process exits (or on `stop`); then `done` is called, once.
    void receive_tunnels(uv_loop_t* loop, std::function<void(MovingTunnel)> adopt, std::function<void()> done);
    void stop();

private:
    static void on_readable(uv_poll_t* poll, int status, int events);
    bool read_message();
    void close();

    int channel_;
    uv_poll_t poll_{};
    bool polling_ = false;
    std::function<void(MovingTunnel)> adopt_;
    std::function<void()> done_;
    // The tunnel whose queued bytes are still arriving.
    MovingTunnel partial_;
    std::uint64_t partial_to_client_ = 0;
    std::uint64_t partial_to_upstream_ = 0;
    bool has_partial_ = false;
    std::size_t received_ = 0;
};

}  // namespace sy
