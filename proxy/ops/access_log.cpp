#include "proxy/ops/access_log.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include "proxy/log.hpp"
#include "proxy/ops/stats.hpp"

namespace sy {

namespace {

constexpr std::size_t kFlushSoon = 64 * 1024;   // a lane this full wakes the writer
constexpr auto kFlushPeriod = std::chrono::milliseconds(200);
constexpr int kPollSlice = 100;                  // ms: how often a stuck write looks up
constexpr auto kStopGrace = std::chrono::seconds(1);

std::int64_t unix_ms_now() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

std::size_t count_lines(std::string_view data) {
    return static_cast<std::size_t>(std::count(data.begin(), data.end(), '\n'));
}

}  // namespace

AccessLog::~AccessLog() { stop(); }

// O_NONBLOCK: a write to a FIFO or a pipe nobody drains returns EAGAIN instead of
// blocking the writer thread; it makes no difference to a regular file. Opening a FIFO
// that has no reader fails at once (ENXIO) rather than hanging the start or the reload.
int AccessLog::open_path(const std::string& path, std::string* error) {
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd < 0) {
        *error = "cannot open access log '" + path + "': " + std::strerror(errno);
        if (errno == ENXIO) *error += " (a FIFO needs a reader)";
    }
    return fd;
}

bool AccessLog::start(const AccessLogConfig& config, unsigned lanes, std::string* error) {
    for (unsigned i = 0; i < lanes; ++i) lanes_.push_back(std::make_unique<Lane>());
    if (!reconfigure(config, error)) return false;
    thread_ = std::thread([this] { run(); });
    return true;
}

bool AccessLog::reconfigure(const AccessLogConfig& config, std::string* error) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (config.path == path_) return true;
    int fd = -1;
    bool owns = false;
    if (config.path == "-") {
        fd = STDOUT_FILENO;
    } else if (config.enabled()) {
        fd = open_path(config.path, error);
        if (fd < 0) return false;
        owns = true;
    }
    // Lines still in the lanes go to the new sink.
    close_fd();
    fd_ = fd;
    owns_fd_ = owns;
    pipe_sized_writes_ = config.path == "-";
    path_ = config.path;
    enabled_.store(fd_ >= 0, std::memory_order_relaxed);
    return true;
}

void AccessLog::reopen() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        reopen_ = true;
    }
    wake_.notify_one();
}

void AccessLog::close_fd() {
    if (owns_fd_ && fd_ >= 0) retired_.push_back(fd_);
    fd_ = -1;
    owns_fd_ = false;
}

void AccessLog::stop() {
    if (!thread_.joinable()) return;
    {
        // Set under the mutex so that the writer cannot miss the wake-up between its check
        // and its wait.
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_.store(true);
    }
    wake_.notify_one();
    thread_.join();
    std::lock_guard<std::mutex> lock(mutex_);
    close_fd();
    for (int old : retired_) ::close(old);
    retired_.clear();
    enabled_.store(false);
}

// One clock read per loop second instead of one per line (the loop time is already there).
std::string_view AccessLog::stamp(Lane& lane, std::uint64_t loop_ms) {
    if (lane.stamped_ms < 0 || loop_ms - lane.synced_at >= 1000) {
        lane.synced_at = loop_ms;
        lane.wall_offset_ms = unix_ms_now() - static_cast<std::int64_t>(loop_ms);
    }
    const std::int64_t wall = static_cast<std::int64_t>(loop_ms) + lane.wall_offset_ms;
    if (wall != lane.stamped_ms) {
        lane.stamped_ms = wall;
        lane.stamp = rfc3339_ms(wall);
    }
    return lane.stamp;
}

void AccessLog::write(unsigned lane_index, std::uint64_t loop_ms, const AccessRecord& record, AccessLogFormat format) {
    Lane& lane = *lanes_[lane_index];
    const std::string_view time = stamp(lane, loop_ms);
    const std::size_t most = max_line_size(record, time);
    bool wake = false;
    {
        std::lock_guard<std::mutex> lock(lane.mutex);
        if (lane.size + most > kLaneLimit) {
            g_stats.add(g_stats.access_log_dropped);
            return;
        }
        const std::size_t before = lane.size;
        lane.size = static_cast<std::size_t>(write_line(lane.buffer.get() + before, record, time, format) -
                                             lane.buffer.get());
        wake = before < kFlushSoon && lane.size >= kFlushSoon;
    }
    if (wake) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            flush_soon_ = true;
        }
        wake_.notify_one();
    }
}

// The writer thread.
void AccessLog::run() {
    set_metrics_writer(g_stats.log_writer());
    for (;;) {
        bool stopping = false;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait_for(lock, kFlushPeriod, [this] { return stopping_.load() || reopen_ || flush_soon_; });
            flush_soon_ = false;
            stopping = stopping_.load();
        }
        int fd;
        bool pieces;
        take_sink(&fd, &pieces);  // a reopen asked for while idle happens now
        for (auto& lane : lanes_) {
            std::size_t size;
            {
                std::lock_guard<std::mutex> lock(lane->mutex);
                lane->buffer.swap(lane->spare);
                size = lane->size;
                lane->size = 0;
            }
            if (size == 0) continue;
            const std::string_view lines(lane->spare.get(), size);
            std::size_t written = 0;
            if (!write_out(lines, &written)) {
                g_stats.add(g_stats.access_log_dropped, static_cast<std::int64_t>(count_lines(lines.substr(written))));
            }
        }
        if (stopping) return;
    }
}

// Read before each write: a reload or SIGUSR1 may have switched the sink meanwhile, and
// the rest then goes to the new one. Old descriptors are closed only here, by the writer
// thread, between two writes.
void AccessLog::take_sink(int* fd, bool* pieces) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (reopen_) {
        reopen_ = false;
        if (owns_fd_) {
            std::string error;
            int reopened = open_path(path_, &error);
            if (reopened >= 0) {
                retired_.push_back(fd_);
                fd_ = reopened;
            } else {
                log_error("SIGUSR1: %s; still writing to the old file", error.c_str());
            }
        }
    }
    for (int old : retired_) ::close(old);
    retired_.clear();
    *fd = fd_;
    *pieces = pipe_sized_writes_;
}

bool AccessLog::write_out(std::string_view data, std::size_t* written) {
    const auto give_up_at = std::chrono::steady_clock::now() + kStopGrace;
    while (*written < data.size()) {
        int fd;
        bool pieces;
        take_sink(&fd, &pieces);
        if (fd < 0) return false;
        if (stopping_.load() && std::chrono::steady_clock::now() > give_up_at) return false;
        if (pieces) {
            pollfd p{fd, POLLOUT, 0};
            int ready = ::poll(&p, 1, kPollSlice);
            if (ready < 0 && errno == EINTR) continue;
            if (ready == 0) continue;
            if (ready < 0 || (p.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) return false;  // the reader is gone
        }
        std::size_t len = data.size() - *written;
        if (pieces) len = std::min<std::size_t>(len, PIPE_BUF);
        ssize_t n = ::write(fd, data.data() + *written, len);
        if (n > 0) {
            *written += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
            pollfd p{fd, POLLOUT, 0};
            ::poll(&p, 1, kPollSlice);
            continue;
        }
        return false;  // EPIPE, ENOSPC, ...: these lines are lost
    }
    return true;
}

}  // namespace sy
