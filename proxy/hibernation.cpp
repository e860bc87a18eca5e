#include "proxy/hibernation.hpp"

#include <algorithm>

#include <sys/epoll.h>
#include <unistd.h>

#include "proxy/log.hpp"
#include "proxy/worker.hpp"

namespace sy {

SleepingTunnel::~SleepingTunnel() {
    for (int fd : fds) {
        if (fd >= 0) ::close(fd);
    }
}

Hibernation::Hibernation(uv_loop_t* loop, Wake wake) : wake_(std::move(wake)) {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) return;
    if (uv_poll_init(loop, &poll_, epoll_fd_) != 0) {
        ::close(epoll_fd_);
        epoll_fd_ = -1;
        return;
    }
    poll_.data = this;
    polling_ = true;  // the handle exists: close() closes it
    if (uv_poll_start(&poll_, UV_READABLE, &Hibernation::on_events) != 0) {
        broken_ = true;
        return;
    }
    uv_unref(reinterpret_cast<uv_handle_t*>(&poll_));  // it alone keeps no loop running
}

Hibernation::~Hibernation() {
    for (SleepingTunnel* t : sleeping_) delete t;
    if (epoll_fd_ >= 0 && !polling_) ::close(epoll_fd_);
}

void Hibernation::close() {
    wake_all();
    if (!polling_) return;
    polling_ = false;
    uv_poll_stop(&poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(&poll_), [](uv_handle_t* h) {
        auto* self = static_cast<Hibernation*>(h->data);
        ::close(self->epoll_fd_);
        self->epoll_fd_ = -1;
    });
}

bool Hibernation::put(std::unique_ptr<SleepingTunnel>& tunnel) {
    if (!polling_ || broken_) return false;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;  // errors and hang-ups are always reported
    ev.data.ptr = tunnel.get();
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, tunnel->fds[0], &ev) != 0) return false;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, tunnel->fds[1], &ev) != 0) {
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, tunnel->fds[0], nullptr);
        return false;
    }
    tunnel->slot = sleeping_.size();
    sleeping_.push_back(tunnel.release());
    g_stats.add(g_stats.tunnels_sleeping, 1);
    return true;
}

std::unique_ptr<SleepingTunnel> Hibernation::take(SleepingTunnel* tunnel) {
    for (int fd : tunnel->fds) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    SleepingTunnel* last = sleeping_.back();
    sleeping_[tunnel->slot] = last;
    last->slot = tunnel->slot;
    sleeping_.pop_back();
    g_stats.add(g_stats.tunnels_sleeping, -1);
    return std::unique_ptr<SleepingTunnel>(tunnel);
}

void Hibernation::on_events(uv_poll_t* poll, int status, int) {
    auto* self = static_cast<Hibernation*>(poll->data);
    if (status < 0) {
        // libuv stopped watching: nothing could wake a sleeper any more. All wake now and
        // none sleeps from here on.
        log_error("idle tunnels: the watcher failed (%s); tunnels stay awake", uv_strerror(status));
        self->broken_ = true;
        self->wake_all();
        return;
    }
    epoll_event events[128];
    const int n = ::epoll_wait(self->epoll_fd_, events, 128, 0);
    if (n <= 0) return;
    // Both sockets of a tunnel may report in one batch: each tunnel wakes once, and none is
    // freed before the batch has been read.
    std::vector<SleepingTunnel*> ready;
    ready.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) ready.push_back(static_cast<SleepingTunnel*>(events[i].data.ptr));
    std::sort(ready.begin(), ready.end());
    ready.erase(std::unique(ready.begin(), ready.end()), ready.end());
    // An event is a byte, an EOF or an error: activity now (the sweep must not end the tunnel
    // as idle before its first read, nor put it straight back to sleep).
    const std::uint64_t now = uv_now(poll->loop);
    for (SleepingTunnel* t : ready) {
        t->last_activity_ms = now;
        self->wake_(self->take(t));
    }
}

void Hibernation::wake_all() {
    while (!sleeping_.empty()) wake_(take(sleeping_.back()));
}

void Hibernation::wake_if(const std::function<bool(const SleepingTunnel&)>& due) {
    std::vector<SleepingTunnel*> waking;
    for (SleepingTunnel* t : sleeping_) {
        if (due(*t)) waking.push_back(t);
    }
    for (SleepingTunnel* t : waking) wake_(take(t));
}

}  // namespace sy
