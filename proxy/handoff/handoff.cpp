#include "proxy/handoff/handoff.hpp"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <utility>

#include <unistd.h>

#include "proxy/handoff/handoff_channel.hpp"
#include "proxy/handoff/handoff_wire.hpp"
#include "proxy/log.hpp"

extern char** environ;

namespace sy {

namespace {

ProcessImage g_image;

}  // namespace

void record_process_image(int argc, char** argv) {
    char path[4096];
    ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    g_image.executable = n > 0 ? std::string(path, static_cast<std::size_t>(n)) : std::string(argv[0]);
    g_image.argv.assign(argv, argv + argc);
}

const ProcessImage& process_image() { return g_image; }

// ---------------------------------------------------------------------------------------
// The old process

HandoffSender::HandoffSender(uv_loop_t* loop, Hooks hooks) : loop_(loop), hooks_(std::move(hooks)) {
    uv_timer_init(loop_, &timer_);
    timer_.data = this;
    uv_async_init(loop_, &outbox_async_, &HandoffSender::on_outbox);
    outbox_async_.data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(&outbox_async_));
}

HandoffSender::~HandoffSender() {
    // finish() closed the handles; what a worker queued after it is dropped (closed).
    if (channel_ >= 0) ::close(channel_);
}

bool HandoffSender::start() {
    if (state_ != State::idle) {
        log_info("SIGUSR2: a binary upgrade is already under way");
        return false;
    }
    const ProcessImage& image = process_image();
    int fds[2];
    std::string error;
    if (!handoff_socketpair(fds, &error)) {
        log_error("hand-off failed: %s; still serving", error.c_str());
        return false;
    }
    // The successor: the same path and arguments, the channel as descriptor 3, stdin,
    // stdout and stderr shared, the environment passed on with the channel's number.
    std::vector<char*> args;
    for (const std::string& a : image.argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const std::string variable = std::string(kHandoffFdVariable) + "=3";
    std::vector<char*> env;
    const std::size_t prefix = std::strlen(kHandoffFdVariable) + 1;
    for (char** e = environ; *e != nullptr; ++e) {
        if (std::strncmp(*e, variable.c_str(), prefix) != 0) env.push_back(*e);
    }
    env.push_back(const_cast<char*>(variable.c_str()));
    env.push_back(nullptr);
    uv_stdio_container_t stdio[4];
    for (int i = 0; i < 3; ++i) {
        stdio[i].flags = UV_INHERIT_FD;
        stdio[i].data.fd = i;
    }
    stdio[3].flags = UV_INHERIT_FD;
    stdio[3].data.fd = fds[1];
    uv_process_options_t options{};
    options.exit_cb = &HandoffSender::on_exit;
    options.file = image.executable.c_str();
    options.args = args.data();
    options.env = env.data();
    options.stdio_count = 4;
    options.stdio = stdio;
    process_.data = this;
    const int r = uv_spawn(loop_, &process_, &options);
    ::close(fds[1]);
    if (r != 0) {
        ::close(fds[0]);
        // uv_spawn leaves a handle to close even when it fails; idle again once it is.
        state_ = State::failed;
        uv_close(reinterpret_cast<uv_handle_t*>(&process_), [](uv_handle_t* h) {
            static_cast<HandoffSender*>(h->data)->state_ = State::idle;
        });
        log_error("hand-off failed: cannot start %s: %s; still serving", image.executable.c_str(), uv_strerror(r));
        return false;
    }
    process_open_ = true;
    process_exited_ = false;
    channel_ = fds[0];
    uv_poll_init(loop_, &poll_, channel_);
    poll_.data = this;
    poll_open_ = true;
    uv_poll_start(&poll_, UV_READABLE | UV_DISCONNECT, &HandoffSender::on_readable);
    uv_timer_start(&timer_, &HandoffSender::on_timeout, static_cast<std::uint64_t>(kReadyTimeout.count()), 0);
    state_ = State::spawned;
    log_info("SIGUSR2: started %s as pid %d; handing over once it has loaded the configuration",
             image.executable.c_str(), process_.pid);
    return true;
}

void HandoffSender::on_exit(uv_process_t* process, std::int64_t status, int signal) {
    auto* self = static_cast<HandoffSender*>(process->data);
    self->process_exited_ = true;
    if (self->state_ == State::spawned || self->state_ == State::listeners_sent) {
        self->fail(signal != 0 ? "the new process was killed by signal " + std::to_string(signal)
                               : "the new process exited with status " + std::to_string(status));
    }
    self->process_open_ = false;
    uv_close(reinterpret_cast<uv_handle_t*>(process), [](uv_handle_t* h) {
        auto* sender = static_cast<HandoffSender*>(h->data);
        if (sender->state_ == State::failed) sender->state_ = State::idle;
    });
}

void HandoffSender::on_timeout(uv_timer_t* timer) {
    static_cast<HandoffSender*>(timer->data)->fail("the new process was not listening within 10 s");
}

void HandoffSender::on_readable(uv_poll_t* poll, int status, int) {
    auto* self = static_cast<HandoffSender*>(poll->data);
    if (status < 0) {
        self->fail(std::string("hand-off channel: ") + uv_strerror(status));
        return;
    }
    self->read_message();
}

void HandoffSender::read_message() {
    std::string bytes;
    std::vector<int> fds;
    std::string error;
    const Received r = recv_handoff_message(channel_, &bytes, &fds, &error, 0);
    for (int fd : fds) ::close(fd);  // the successor sends none
    if (r == Received::nothing) return;
    if (r == Received::closed && state_ != State::committed && process_open_) {
        close_channel();  // the child is exiting: its exit status (or the timer) says why
        return;
    }
    if (r != Received::message) {
        if (state_ == State::committed) {
            channel_broken("the new process closed the channel");
        } else {
            fail(r == Received::closed ? "the new process closed the hand-off channel" : error);
        }
        return;
    }
    std::uint32_t pid = 0;
    if (state_ == State::spawned && decode_pid_message(bytes, HandoffMessage::ready, &pid)) {
        log_info("hand-off: pid %u loaded the configuration; handing over the listening sockets", pid);
        send_listeners();
    } else if (state_ == State::listeners_sent && decode_pid_message(bytes, HandoffMessage::listening, &pid)) {
        uv_timer_stop(&timer_);
        state_ = State::committed;
        // From here the successor runs on its own: no exit status is awaited (closing the
        // handle lets this process end while it lives on).
        if (process_open_) {
            process_open_ = false;
            uv_close(reinterpret_cast<uv_handle_t*>(&process_), nullptr);
        }
        uv_ref(reinterpret_cast<uv_handle_t*>(&outbox_async_));
        log_info("hand-off: pid %u accepts connections now; handing over the tunnels and draining", pid);
        hooks_.committed(static_cast<int>(pid));
    } else {
        fail("unexpected message on the hand-off channel");
    }
}

void HandoffSender::send_listeners() {
    std::string error;
    for (const auto& [key, fds] : hooks_.listeners()) {
        // A group larger than one message carries goes in several under the same key.
        for (std::size_t at = 0; at < fds.size(); at += kMaxHandoffFds) {
            const std::vector<int> part(fds.begin() + static_cast<long>(at),
                                        fds.begin() + static_cast<long>(std::min(fds.size(), at + kMaxHandoffFds)));
            if (!send_handoff_message(channel_, encode_listener(key), part, &error)) {
                fail(error);
                return;
            }
        }
    }
    if (!send_handoff_message(channel_, encode_listeners_done(), {}, &error)) {
        fail(error);
        return;
    }
    state_ = State::listeners_sent;
}

void HandoffSender::fail(const std::string& why, const char* outcome) {
    if (state_ != State::spawned && state_ != State::listeners_sent) return;
    log_error("hand-off failed: %s; %s", why.c_str(), outcome);
    const bool had_listeners = state_ == State::listeners_sent;
    uv_timer_stop(&timer_);
    close_channel();
    // Idle again once the child is reaped (on_exit closes its handle).
    state_ = process_open_ ? State::failed : State::idle;
    if (process_open_ && !process_exited_) uv_process_kill(&process_, SIGKILL);
    if (had_listeners && hooks_.reclaim) hooks_.reclaim();
}

void HandoffSender::cancel(const std::string& why) { fail(why, "not handing over"); }

// After the commit: the tunnels still to go stay here, and the workers keep the rest.
void HandoffSender::channel_broken(const std::string& why) {
    log_error("hand-off: %s; the tunnels not handed over yet stay in this process", why.c_str());
    close_channel();
    if (hooks_.stop_handing_off) hooks_.stop_handing_off();
    send_queued();
}

void HandoffSender::close_channel() { close_polled_socket(&poll_, &poll_open_, &channel_); }

void HandoffSender::push(MovingTunnel tunnel) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        queue_.push_back(std::move(tunnel));
    }
    uv_async_send(&outbox_async_);
}

void HandoffSender::on_outbox(uv_async_t* async) { static_cast<HandoffSender*>(async->data)->send_queued(); }

void HandoffSender::send_queued() {
    std::vector<MovingTunnel> queue;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        queue.swap(queue_);
    }
    for (MovingTunnel& tunnel : queue) {
        if (channel_ >= 0 && send_tunnel(tunnel)) {
            ++tunnels_sent_;
        } else if (tunnel.client_fd >= 0) {
            hooks_.keep(std::move(tunnel));
        }
    }
}

// The record with both sockets, then the queued bytes toward the client, then those toward
// the upstream, in chunks.
// False with the tunnel untouched when it could not go (the caller keeps it here); once its
// record is sent it belongs to the successor (its descriptors are closed here after).
bool HandoffSender::send_tunnel(MovingTunnel& tunnel) {
    std::string error;
    const std::string record = encode_tunnel(tunnel.record);
    if (record.size() > kMaxHandoffMessage) {
        log_error("hand-off: a tunnel's labels are too long to send; it stays here");
        return false;
    }
    if (!send_handoff_message(channel_, record, {tunnel.client_fd, tunnel.upstream_fd}, &error)) {
        channel_broken(error);
        return false;
    }
    bool ok = true;
    for (const HandedSide& side : tunnel.record.sides) {
        const std::string& bytes = side.unwritten;
        for (std::size_t at = 0; ok && at < bytes.size(); at += kHandoffChunk) {
            ok = send_handoff_message(channel_, encode_tunnel_data(std::string_view(bytes).substr(at, kHandoffChunk)), {},
                                      &error);
        }
    }
    if (!ok) {
        // The successor has the sockets but not all of the bytes: the tunnel cannot go on
        // anywhere without them.
        log_error("hand-off: %s; a tunnel's queued bytes did not all go (it is closed)", error.c_str());
        tunnel.close_fds();
        channel_broken(error);
    }
    return true;
}

void HandoffSender::finish() {
    send_queued();
    if (tunnels_sent_ > 0) log_info("hand-off: %zu tunnels went to the new process", tunnels_sent_);
    close_channel();
    if (process_open_ && !process_exited_) uv_process_kill(&process_, SIGKILL);  // an attempt under way at exit
    if (handles_open_) {
        handles_open_ = false;
        uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&outbox_async_), nullptr);
    }
}

// ---------------------------------------------------------------------------------------
// The new process

HandoffReceiver::~HandoffReceiver() {
    if (channel_ >= 0 && !polling_) ::close(channel_);
}

bool HandoffReceiver::take_listeners(ListenerGroups* groups, std::string* error) {
    if (!send_handoff_message(channel_, encode_pid_message(HandoffMessage::ready, static_cast<std::uint32_t>(::getpid())),
                              {}, error)) {
        return false;
    }
    for (;;) {
        std::string bytes;
        std::vector<int> fds;
        const Received r = recv_handoff_message(channel_, &bytes, &fds, error, static_cast<int>(kReadyTimeout.count()));
        if (r != Received::message) {
            for (int fd : fds) ::close(fd);
            if (r == Received::closed) *error = "the old process closed the hand-off channel";
            return false;
        }
        std::string key;
        if (decode_listener(bytes, &key)) {
            auto& group = (*groups)[key];
            group.insert(group.end(), fds.begin(), fds.end());
            continue;
        }
        for (int fd : fds) ::close(fd);
        if (message_type(bytes) == HandoffMessage::listeners_done) return true;
        *error = "unexpected message on the hand-off channel";
        return false;
    }
}

bool HandoffReceiver::announce_listening(std::string* error) {
    return send_handoff_message(channel_,
                                encode_pid_message(HandoffMessage::listening, static_cast<std::uint32_t>(::getpid())), {},
                                error);
}

void HandoffReceiver::receive_tunnels(uv_loop_t* loop, std::function<void(MovingTunnel)> adopt,
                                      std::function<void()> done) {
    adopt_ = std::move(adopt);
    done_ = std::move(done);
    uv_poll_init(loop, &poll_, channel_);
    poll_.data = this;
    polling_ = true;
    uv_poll_start(&poll_, UV_READABLE | UV_DISCONNECT, &HandoffReceiver::on_readable);
}

void HandoffReceiver::on_readable(uv_poll_t* poll, int status, int) {
    auto* self = static_cast<HandoffReceiver*>(poll->data);
    if (status < 0) {
        log_error("hand-off channel: %s", uv_strerror(status));
        self->close();
        return;
    }
    // What is waiting, in one turn of the loop (a bound keeps the loop's other work going).
    for (int i = 0; i < 1024 && self->polling_; ++i) {
        if (!self->read_message()) break;
    }
}

// False when nothing more is waiting (or the channel closed).
bool HandoffReceiver::read_message() {
    std::string bytes;
    std::vector<int> fds;
    std::string error;
    const Received r = recv_handoff_message(channel_, &bytes, &fds, &error, 0);
    if (r == Received::nothing) return false;
    if (r != Received::message) {
        for (int fd : fds) ::close(fd);
        if (r == Received::error) log_error("%s", error.c_str());
        if (has_partial_) log_error("hand-off: the old process left before a tunnel's bytes were all here; it is lost");
        log_info("hand-off: the old process is done; %zu tunnels came over", received_);
        close();
        return false;
    }
    bool ok = false;
    if (message_type(bytes) == HandoffMessage::tunnel && !has_partial_ && fds.size() == 2) {
        partial_ = MovingTunnel();
        partial_.client_fd = fds[0];
        partial_.upstream_fd = fds[1];
        fds.clear();
        ok = decode_tunnel(bytes, &partial_.record, &partial_to_client_, &partial_to_upstream_);
        has_partial_ = ok;
    } else if (message_type(bytes) == HandoffMessage::tunnel_data && has_partial_ && fds.empty()) {
        std::string_view chunk;
        std::string& to_client = partial_.record.sides[0].unwritten;
        std::string& to_upstream = partial_.record.sides[1].unwritten;
        ok = decode_tunnel_data(bytes, &chunk) &&
             chunk.size() <= (partial_to_client_ - to_client.size()) + (partial_to_upstream_ - to_upstream.size());
        while (ok && !chunk.empty()) {
            std::string& into = to_client.size() < partial_to_client_ ? to_client : to_upstream;
            const std::uint64_t want = &into == &to_client ? partial_to_client_ : partial_to_upstream_;
            const std::size_t take = std::min<std::size_t>(chunk.size(), want - into.size());
            into.append(chunk.substr(0, take));
            chunk.remove_prefix(take);
        }
    }
    for (int fd : fds) ::close(fd);
    if (!ok) {
        log_error("hand-off: a malformed message; no more tunnels are taken");
        close();
        return false;
    }
    if (partial_.record.sides[0].unwritten.size() == partial_to_client_ &&
        partial_.record.sides[1].unwritten.size() == partial_to_upstream_) {
        has_partial_ = false;
        ++received_;
        adopt_(std::move(partial_));
    }
    return true;
}

void HandoffReceiver::stop() { close(); }

void HandoffReceiver::close() {
    close_polled_socket(&poll_, &polling_, &channel_);
    has_partial_ = false;
    partial_ = MovingTunnel();
    if (done_) std::exchange(done_, nullptr)();
}

}  // namespace sy
