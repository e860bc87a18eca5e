// The io_uring experiment (SWITCHYARD_IO_URING=1; docs/performance.md, "io_uring"): one
// ring per worker, driven from the worker's libuv loop.
//
//   - The ring is set up with DEFER_TASKRUN: the kernel's task work (a socket became
//     readable or writable) runs only when the worker enters the ring, never interrupting
//     its epoll_wait. An eventfd registered with the ring, watched by a uv_poll_t, says
//     when work arrived. SQEs queued during a loop turn are submitted together by a
//     uv_prepare_t just before the loop blocks (and right after a reap), with the same
//     io_uring_enter that runs the task work; what completed is reaped there too.
//   - One provided-buffer ring (group 0) of kBuffers buffers of kBufferSize bytes: a
//     multishot receive picks its buffer there, and the buffer goes back (recycle) when
//     the send that forwards its bytes completes. The memory every tunnel of the worker can
//     hold in flight is therefore bounded by kBuffers * kBufferSize.
//
// Every SQE's user_data is a UringLink (aligned to 8) with the op in its low 3 bits. A link
// counts its ops in flight; its user (a UringTunnel) can leave it, and the ring frees it
// once the last completion came (the buffers those carry go back to the buffer ring).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include <liburing.h>
#include <uv.h>

namespace sy {

class UringUser {
public:
    virtual ~UringUser() = default;
    // One completion of an op this user queued (`op` < 8, as given to UringRing::user_data).
    virtual void on_completion(unsigned op, int res, unsigned flags) = 0;
    // Buffers came back to a buffer ring that had run dry (after want_buffers).
    virtual void on_buffers() = 0;
};

struct UringLink {
    UringUser* user = nullptr;  // null once left: completions only release what they carry
    unsigned in_flight = 0;     // ops queued whose last completion has not come yet
};

class UringRing {
public:
    static constexpr unsigned kEntries = 512;
    static constexpr unsigned kBuffers = 64;
    static constexpr std::size_t kBufferSize = 64 * 1024;
    static constexpr unsigned kGroup = 0;

    // A ring for `loop`, or null when the kernel refuses io_uring (EPERM, ENOSYS, ...) or a
    // feature it needs (provided-buffer rings, multishot receive): the caller uses the
    // epoll path. The first refusal in the process is logged.
    static std::unique_ptr<UringRing> create(uv_loop_t* loop, unsigned worker_id);
    ~UringRing();
    UringRing(const UringRing&) = delete;
    UringRing& operator=(const UringRing&) = delete;

    // Closes the loop handles (the worker is finishing). The ring itself goes with the
    // object, after the loop ended.
    void close();

    // A free SQE (submitting what is queued when the submission queue is full), null if
    // none can be had. `link` counts it in flight.
    io_uring_sqe* sqe(UringLink* link);
    static std::uint64_t user_data(UringLink* link, unsigned op) {
        return reinterpret_cast<std::uintptr_t>(link) | op;
    }

    char* buffer(unsigned id) { return buffers_ + static_cast<std::size_t>(id) * kBufferSize; }
    // The buffer goes back to the buffer ring.
    void recycle(unsigned id);
    // `user` hears on_buffers once buffers came back (its multishot receive ended ENOBUFS).
    void want_buffers(UringUser* user);
    void forget(UringUser* user);

    // Waits (bounded) until `link` has nothing in flight: completions of other users met
    // meanwhile are kept, in order, for the next reap. False when the wait ran out.
    bool wait_idle(UringLink* link);
    // The user leaves `link`: if ops are still in flight, the ring frees the link after
    // their last completion; otherwise it is freed now.
    void leave(UringLink* link);

    // For the tests and the report: io_uring_enter calls made to submit.
    std::uint64_t submits() const { return submits_; }

private:
    struct Completion {
        std::uint64_t user_data;
        int res;
        unsigned flags;
    };

    UringRing() = default;
    static void on_poll(uv_poll_t* handle, int status, int events);
    static void on_prepare(uv_prepare_t* handle);
    static void on_idle(uv_idle_t* handle);
    bool probe_receive_limit();
    void flush();
    void enter();
    void take_cq();
    void reap();
    void dispatch(const Completion& c);
    void notify_buffers();

    io_uring ring_{};
    bool ring_ok_ = false;
    io_uring_buf_ring* buf_ring_ = nullptr;
    std::size_t buf_ring_bytes_ = 0;
    char* buffers_ = nullptr;
    std::size_t buffers_bytes_ = 0;
    uv_poll_t poll_{};
    uv_prepare_t prepare_{};
    uv_idle_t idle_{};  // started while the ring still has work after a flush
    bool idle_on_ = false;
    bool handles_ = false;
    int event_fd_ = -1;    // registered: told of completions and of task work waiting
    bool woken_ = false;   // the eventfd fired: enter the ring at the next flush
    bool reaping_ = false;
    std::deque<Completion> pending_;  // taken off the CQ, not dispatched yet
    std::vector<UringUser*> starved_;
    bool returned_ = false;  // a buffer came back since the last notify
    std::uint64_t submits_ = 0;
};

}  // namespace sy
