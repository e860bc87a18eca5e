#include "proxy/uring/ring.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/log.hpp"

namespace sy {

namespace {

std::atomic<bool> g_refusal_logged{false};

void log_refusal(unsigned worker_id, const char* what, int error) {
    if (g_refusal_logged.exchange(true)) return;
    log_error("worker %u: io_uring refused (%s: %s); tunnels use the epoll path", worker_id, what, std::strerror(error));
}

UringLink* link_of(std::uint64_t user_data) { return reinterpret_cast<UringLink*>(user_data & ~std::uint64_t{7}); }

// How long wait_idle waits for the completions of cancelled ops (on sockets they come at
// once: the cancel finds them armed on the socket's wait queue).
constexpr std::uint64_t kWaitIdleNs = 2'000'000'000;

}  // namespace

std::unique_ptr<UringRing> UringRing::create(uv_loop_t* loop, unsigned worker_id) {
    std::unique_ptr<UringRing> r(new UringRing);
    // Task work (a socket became readable or writable) runs only when the worker enters
    // the ring (DEFER_TASKRUN): never interrupts its epoll_wait. The eventfd tells the loop.
    io_uring_params params{};
    params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int rc = io_uring_queue_init_params(kEntries, &r->ring_, &params);
    if (rc == -EINVAL) {
        params = io_uring_params{};
        rc = io_uring_queue_init_params(kEntries, &r->ring_, &params);
    }
    if (rc < 0) {
        log_refusal(worker_id, "io_uring_queue_init", -rc);
        return nullptr;
    }
    r->ring_ok_ = true;
    if ((params.features & IORING_FEAT_NODROP) == 0 || (params.features & IORING_FEAT_EXT_ARG) == 0) {
        log_refusal(worker_id, "features", EOPNOTSUPP);
        return nullptr;
    }
    // The provided-buffer ring (liburing 2.3 has no io_uring_setup_buf_ring: done by hand).
    r->buf_ring_bytes_ = kBuffers * sizeof(io_uring_buf);
    void* ring_mem = ::mmap(nullptr, r->buf_ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (ring_mem == MAP_FAILED) {
        log_refusal(worker_id, "mmap", errno);
        return nullptr;
    }
    r->buf_ring_ = static_cast<io_uring_buf_ring*>(ring_mem);
    io_uring_buf_ring_init(r->buf_ring_);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uintptr_t>(ring_mem);
    reg.ring_entries = kBuffers;
    reg.bgid = kGroup;
    rc = io_uring_register_buf_ring(&r->ring_, &reg, 0);
    if (rc < 0) {
        log_refusal(worker_id, "io_uring_register_buf_ring", -rc);
        return nullptr;
    }
    r->buffers_bytes_ = kBuffers * kBufferSize;
    void* mem = ::mmap(nullptr, r->buffers_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) {
        r->buffers_ = nullptr;
        log_refusal(worker_id, "mmap", errno);
        return nullptr;
    }
    r->buffers_ = static_cast<char*>(mem);
    const int mask = io_uring_buf_ring_mask(kBuffers);
    for (unsigned i = 0; i < kBuffers; ++i) {
        io_uring_buf_ring_add(r->buf_ring_, r->buffer(i), kBufferSize, static_cast<unsigned short>(i), mask,
                              static_cast<int>(i));
    }
    io_uring_buf_ring_advance(r->buf_ring_, kBuffers);

    if (!r->probe_receive_limit()) {
        log_refusal(worker_id, "multishot receive with a byte limit (Linux 6.17+)", EOPNOTSUPP);
        return nullptr;
    }

    r->event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->event_fd_ < 0) {
        log_refusal(worker_id, "eventfd", errno);
        return nullptr;
    }
    rc = io_uring_register_eventfd(&r->ring_, r->event_fd_);
    if (rc < 0) {
        log_refusal(worker_id, "io_uring_register_eventfd", -rc);
        return nullptr;
    }
    if (uv_poll_init(loop, &r->poll_, r->event_fd_) != 0) {
        log_refusal(worker_id, "uv_poll_init", EINVAL);
        return nullptr;
    }
    r->poll_.data = r.get();
    uv_prepare_init(loop, &r->prepare_);
    r->prepare_.data = r.get();
    uv_idle_init(loop, &r->idle_);
    r->idle_.data = r.get();
    r->handles_ = true;
    uv_poll_start(&r->poll_, UV_READABLE, &UringRing::on_poll);
    uv_prepare_start(&r->prepare_, &UringRing::on_prepare);
    // The tunnels keep the loop alive, not the ring.
    uv_unref(reinterpret_cast<uv_handle_t*>(&r->poll_));
    uv_unref(reinterpret_cast<uv_handle_t*>(&r->prepare_));
    uv_unref(reinterpret_cast<uv_handle_t*>(&r->idle_));
    log_info("worker %u: io_uring tunnels on (%u entries, %u buffers of %zu KiB)", worker_id, kEntries, kBuffers,
             kBufferSize / 1024);
    return r;
}

// Backpressure needs a multishot receive that stops after a number of bytes (sqe->optlen,
// which liburing 2.3 calls file_index; Linux 6.17+): without it, one receive takes as many
// buffers as the socket holds bytes. The limit does not cut a receive short: the receive
// that reaches it ends the multishot (so at most one buffer more than the limit is taken).
// Tried once on a socket pair: 2 bytes waiting, a limit of 1, and the first completion must
// carry bytes and end the receive (no IORING_CQE_F_MORE).
bool UringRing::probe_receive_limit() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return false;
    bool ok = false;
    bool ended = false;
    if (::write(sv[1], "ab", 2) == 2) {
        io_uring_sqe* s = io_uring_get_sqe(&ring_);
        io_uring_prep_recv_multishot(s, sv[0], nullptr, 0, 0);
        s->flags |= IOSQE_BUFFER_SELECT;
        s->buf_group = kGroup;
        s->file_index = 1;  // optlen: the byte limit
        io_uring_sqe_set_data64(s, 0);
        bool first = true;
        for (int round = 0; round < 8 && !ended; ++round) {
            io_uring_cqe* cqe = nullptr;
            __kernel_timespec ts{};
            ts.tv_nsec = 100'000'000;
            if (io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr) < 0 && cqe == nullptr) {
                // No answer: cancel it below.
            }
            unsigned head = 0;
            unsigned n = 0;
            io_uring_for_each_cqe(&ring_, head, cqe) {
                if ((cqe->flags & IORING_CQE_F_BUFFER) != 0) recycle(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
                if (cqe->user_data == 0) {
                    if (first) ok = cqe->res > 0 && (cqe->flags & IORING_CQE_F_MORE) == 0;
                    first = false;
                    if ((cqe->flags & IORING_CQE_F_MORE) == 0) ended = true;
                }
                ++n;
            }
            io_uring_cq_advance(&ring_, n);
            if (!ended) {
                io_uring_sqe* c = io_uring_get_sqe(&ring_);
                io_uring_prep_cancel_fd(c, sv[0], IORING_ASYNC_CANCEL_ALL);
                io_uring_sqe_set_data64(c, 1);
            }
        }
        // Whatever came after is not needed.
        io_uring_cqe* cqe = nullptr;
        while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
            if ((cqe->flags & IORING_CQE_F_BUFFER) != 0) recycle(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
            io_uring_cqe_seen(&ring_, cqe);
        }
    }
    ::close(sv[0]);
    ::close(sv[1]);
    returned_ = false;
    return ok && ended;
}

UringRing::~UringRing() {
    if (ring_ok_) io_uring_queue_exit(&ring_);
    if (event_fd_ >= 0) ::close(event_fd_);
    if (buf_ring_ != nullptr) ::munmap(buf_ring_, buf_ring_bytes_);
    if (buffers_ != nullptr) ::munmap(buffers_, buffers_bytes_);
}

void UringRing::close() {
    if (!handles_) return;
    handles_ = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&poll_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&prepare_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&idle_), nullptr);
}

io_uring_sqe* UringRing::sqe(UringLink* link) {
    io_uring_sqe* s = io_uring_get_sqe(&ring_);
    if (s == nullptr) {
        io_uring_submit(&ring_);
        ++submits_;
        s = io_uring_get_sqe(&ring_);
    }
    if (s != nullptr) ++link->in_flight;
    return s;
}

void UringRing::recycle(unsigned id) {
    io_uring_buf_ring_add(buf_ring_, buffer(id), kBufferSize, static_cast<unsigned short>(id),
                          io_uring_buf_ring_mask(kBuffers), 0);
    io_uring_buf_ring_advance(buf_ring_, 1);
    returned_ = true;
}

void UringRing::want_buffers(UringUser* user) {
    if (std::find(starved_.begin(), starved_.end(), user) == starved_.end()) starved_.push_back(user);
}

void UringRing::forget(UringUser* user) { starved_.erase(std::remove(starved_.begin(), starved_.end(), user), starved_.end()); }

void UringRing::notify_buffers() {
    if (!returned_) return;
    returned_ = false;
    if (starved_.empty()) return;
    std::vector<UringUser*> starved;
    starved.swap(starved_);
    for (UringUser* user : starved) user->on_buffers();
}

void UringRing::on_poll(uv_poll_t* handle, int, int) {
    auto* self = static_cast<UringRing*>(handle->data);
    std::uint64_t count = 0;
    [[maybe_unused]] const ssize_t n = ::read(self->event_fd_, &count, sizeof count);
    self->woken_ = true;
    self->flush();
}

void UringRing::on_prepare(uv_prepare_t* handle) { static_cast<UringRing*>(handle->data)->flush(); }

// Submits what the turn queued and runs the task work waiting in the ring (one
// io_uring_enter), then reaps what that completed, which may queue more. The kernel runs a
// bounded batch of task work per enter and signals the eventfd only when work arrives on an
// empty list, so after a reap the ring is entered again, until an enter completes nothing.
// Still busy after a few rounds: the idle handle keeps the loop from blocking meanwhile.
void UringRing::flush() {
    for (int round = 0; round < 8; ++round) {
        if (io_uring_sq_ready(&ring_) > 0 || woken_) {
            woken_ = false;
            enter();
        }
        if (io_uring_cq_ready(&ring_) == 0 && pending_.empty() && !returned_) {
            if (idle_on_) {
                uv_idle_stop(&idle_);
                idle_on_ = false;
            }
            return;
        }
        const bool completed = io_uring_cq_ready(&ring_) > 0 || !pending_.empty();
        reap();
        if (completed) woken_ = true;  // more task work may wait behind what ran
    }
    if (!idle_on_) {
        uv_idle_start(&idle_, &UringRing::on_idle);
        idle_on_ = true;
    }
}

// io_uring_enter(GETEVENTS) runs at most max(20, min_complete) items of task work: asking
// for up to kEntries completions with a timeout of 0 runs that many and waits for nothing.
void UringRing::enter() {
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec ts{};
    io_uring_submit_and_wait_timeout(&ring_, &cqe, kEntries, &ts, nullptr);
    ++submits_;
}

void UringRing::on_idle(uv_idle_t* handle) { static_cast<UringRing*>(handle->data)->flush(); }

void UringRing::take_cq() {
    // Completions the CQ had no room for wait in the kernel, in order, until asked for.
    if (io_uring_cq_has_overflow(&ring_)) io_uring_get_events(&ring_);
    unsigned head = 0;
    unsigned n = 0;
    io_uring_cqe* cqe = nullptr;
    io_uring_for_each_cqe(&ring_, head, cqe) {
        pending_.push_back(Completion{cqe->user_data, cqe->res, cqe->flags});
        ++n;
    }
    io_uring_cq_advance(&ring_, n);
}

void UringRing::reap() {
    take_cq();
    while (!pending_.empty()) {
        const Completion c = pending_.front();
        pending_.pop_front();
        dispatch(c);
    }
    notify_buffers();
}

void UringRing::dispatch(const Completion& c) {
    if (c.user_data == 0) return;
    UringLink* link = link_of(c.user_data);
    if ((c.flags & IORING_CQE_F_MORE) == 0) --link->in_flight;
    if (link->user != nullptr) {
        link->user->on_completion(static_cast<unsigned>(c.user_data & 7), c.res, c.flags);
        return;
    }
    // Left by its user: what the completion carries goes back, and the link once idle.
    if ((c.flags & IORING_CQE_F_BUFFER) != 0) recycle(c.flags >> IORING_CQE_BUFFER_SHIFT);
    if (link->in_flight == 0) delete link;
}

bool UringRing::wait_idle(UringLink* link) {
    // Its completions already off the CQ first, in order.
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (link_of(it->user_data) == link) {
            const Completion c = *it;
            it = pending_.erase(it);
            dispatch(c);
        } else {
            ++it;
        }
    }
    const std::uint64_t deadline = uv_hrtime() + kWaitIdleNs;
    std::vector<Completion> mine;
    while (link->in_flight > 0) {
        io_uring_cqe* cqe = nullptr;
        __kernel_timespec ts{};
        ts.tv_nsec = 50'000'000;
        const int rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
        ++submits_;
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) return false;
        unsigned head = 0;
        unsigned n = 0;
        mine.clear();
        io_uring_for_each_cqe(&ring_, head, cqe) {
            const Completion c{cqe->user_data, cqe->res, cqe->flags};
            if (link_of(c.user_data) == link) {
                mine.push_back(c);
            } else {
                pending_.push_back(c);  // dispatched by the next reap (the prepare callback)
            }
            ++n;
        }
        io_uring_cq_advance(&ring_, n);
        for (const Completion& c : mine) dispatch(c);
        if (link->in_flight > 0 && uv_hrtime() > deadline) return false;
    }
    return true;
}

void UringRing::leave(UringLink* link) {
    link->user = nullptr;
    if (link->in_flight == 0) delete link;
}

}  // namespace sy
