// Prometheus metrics without locks on the hot path.
//
// Every writing thread (each worker, the main thread, the access-log writer) has its own
// block of 64-bit cells; a series is an index into those blocks. A thread only ever writes
// its own block (a relaxed load and store, no atomic read-modify-write, no cache line
// shared with another writer); a scrape adds the blocks up. Series are registered by the
// main thread before the configuration that uses them is published, and live as long as
// the process: a counter never goes back, reloads included.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sy {

using MetricCell = std::uint32_t;
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

enum class MetricType { counter, gauge, histogram };

// Which block the calling thread writes: set once when a thread starts.
void set_metrics_writer(unsigned writer);

class MetricsRegistry {
public:
    // Virtual address space per writer; only the pages holding registered cells are ever
    // touched (so resident).
    static constexpr std::size_t kMaxCells = 1 << 20;

    // `writers` blocks. Call once, before any thread writes.
    void init(unsigned writers);
    ~MetricsRegistry();

    // Declares a family; rendered in declaration order.
    void family(std::string name, MetricType type, std::string help);

    // The series of `family` with these labels (registered on first use, the same cell
    // afterwards). Main thread only. A histogram series takes bounds.size() + 3 cells: one
    // per bucket (+Inf last), the count, the sum in milliseconds.
    MetricCell series(std::string_view family, MetricLabels labels);
    // Renders a series only while one of `cells` is non-zero (rendering every route x
    // protocol x outcome up front would drown the page in zeros). Call after series().
    void show_when_any(MetricCell cell, std::vector<MetricCell> cells);

    // Hot path, from the thread's own block.
    void add(MetricCell cell, std::int64_t n) {
        std::atomic_ref<std::int64_t> c(mine()[cell]);
        c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    // A histogram observation of `ms` milliseconds.
    void observe(MetricCell histogram, std::uint64_t ms);

    // The sum over every writer.
    std::int64_t value(MetricCell cell) const;

    // Prometheus text exposition format 0.0.4.
    std::string render() const;

    // The histogram bounds in seconds (tunnel durations: 0.1 s to a day).
    static const std::vector<double>& duration_bounds();

private:
    struct Family {
        std::string name;
        MetricType type;
        std::string help;
        std::vector<std::size_t> series;  // indexes into series_
    };
    struct Series {
        std::size_t family;
        std::string labels;  // rendered: `a="b",c="d"`, empty for none
        MetricCell cell;
        std::vector<MetricCell> shown_when;  // empty: always shown
    };

    std::int64_t* mine() const;
    static std::string render_labels(const MetricLabels& labels);
    void render_series(std::string& out, const Family& family, const Series& s) const;

    unsigned writers_ = 0;
    std::vector<std::int64_t*> blocks_;
    mutable std::mutex mutex_;  // registration and scrapes; never taken by the hot path
    std::vector<Family> families_;
    std::vector<Series> series_;
    std::unordered_map<std::string, std::size_t> index_;  // family + '\0' + labels -> series_
    std::unordered_map<MetricCell, std::size_t> by_cell_;  // first cell -> series_
    MetricCell next_ = 1;  // cell 0 stays unused: a default MetricCell points nowhere harmful
};

}  // namespace sy
