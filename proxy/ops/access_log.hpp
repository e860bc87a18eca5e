// The access log's sink: writing a line never blocks a worker (docs/operations.md).
//
// Each worker formats its lines straight into its own lane (a buffer under a mutex that
// only the worker and, for an instant, the writer thread take). The writer thread empties the
// lanes every 200 ms (sooner when one passes 64 KiB) and writes to the file without ever
// waiting on it for long: a file opened by path is non-blocking, and stdout is written in
// pieces no larger than PIPE_BUF after poll(2) says it can take them. A lane holds at
// most kLaneLimit bytes; a line that does not fit is dropped and counted in
// switchyard_access_log_dropped_total. So a stuck sink (a full pipe, a FIFO nobody reads)
// costs lines, never latency.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "proxy/ops/log_format.hpp"
#include "routing/config.hpp"

namespace sy {

class AccessLog {
public:
    static constexpr std::size_t kLaneLimit = 1024 * 1024;

    AccessLog() = default;
    ~AccessLog();
    AccessLog(const AccessLog&) = delete;
    AccessLog& operator=(const AccessLog&) = delete;

    // Opens the sink of `config` and starts the writer thread; `lanes` = the number of
    // workers. False (with `error`) when the file cannot be opened.
    bool start(const AccessLogConfig& config, unsigned lanes, std::string* error);
    // A reload: a changed path opens the new sink (false with `error`, keeping the old one,
    // when it cannot be opened). Main thread.
    bool reconfigure(const AccessLogConfig& config, std::string* error);
    // SIGUSR1: the writer thread closes and reopens the file (logrotate moved it).
    void reopen();
    // Writes what is buffered (giving up on a stuck sink after a second) and stops the
    // writer thread. Idempotent.
    void stop();

    // Is there a sink? (A worker skips building a record when not.)
    bool enabled() const { return enabled_.load(std::memory_order_relaxed); }
    // Worker `lane` appends one line in `format`, stamped with the wall-clock time that
    // its loop time `loop_ms` stands for.
    void write(unsigned lane, std::uint64_t loop_ms, const AccessRecord& record, AccessLogFormat format);

private:
    // A worker's lines not written yet: a buffer of kLaneLimit bytes the worker formats
    // into directly, swapped for the writer thread's empty one at each flush.
    struct alignas(64) Lane {
        std::mutex mutex;
        std::unique_ptr<char[]> buffer{new char[kLaneLimit]};
        std::size_t size = 0;
        std::unique_ptr<char[]> spare{new char[kLaneLimit]};  // the writer thread's
        // The worker's clock (only it touches these): wall time = loop time + offset, the
        // offset read again once a loop second, so the log follows clock adjustments.
        std::uint64_t synced_at = 0;
        std::int64_t wall_offset_ms = 0;
        std::int64_t stamped_ms = -1;
        std::string stamp;  // rfc3339_ms(stamped_ms)
    };
    static std::string_view stamp(Lane& lane, std::uint64_t loop_ms);

    static int open_path(const std::string& path, std::string* error);
    void run();
    // Writes `data` to the sink; false when it had to give up (stopping and past the
    // deadline), leaving `*written` at what went out.
    bool write_out(std::string_view data, std::size_t* written);
    void close_fd();
    void take_sink(int* fd, bool* pieces);

    std::vector<std::unique_ptr<Lane>> lanes_;
    std::thread thread_;
    std::mutex mutex_;  // the fields below
    std::condition_variable wake_;
    std::string path_;  // "-", a file, or "off"
    int fd_ = -1;
    bool owns_fd_ = false;
    std::vector<int> retired_;  // replaced descriptors, closed by the writer thread
    bool pipe_sized_writes_ = false;  // stdout: blocking descriptor, poll before each piece
    bool reopen_ = false;
    bool flush_soon_ = false;
    std::atomic<bool> enabled_{false};
    std::atomic<bool> stopping_{false};  // stop(): flush what is buffered and end (read lock-free by write_out)
};

}  // namespace sy
