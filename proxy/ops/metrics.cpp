#include "proxy/ops/metrics.hpp"

#include <cstdio>
#include <cstdlib>

#include <sys/mman.h>

#include "parser/serialize.hpp"
#include "proxy/log.hpp"

namespace sy {

namespace {

thread_local unsigned t_writer = 0;

void append_signed(std::string& out, std::int64_t v) {
    if (v < 0) out += '-';
    append_number(out, v < 0 ? 0ULL - static_cast<unsigned long long>(v) : static_cast<unsigned long long>(v));
}

void append_double(std::string& out, double v) {
    char text[32];
    int n = std::snprintf(text, sizeof text, "%.10g", v);
    out.append(text, static_cast<std::size_t>(n));
}

// Label values escape backslash, double quote and line feed (exposition format 0.0.4).
void append_label_value(std::string& out, std::string_view value) {
    for (char c : value) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
}

}  // namespace

void set_metrics_writer(unsigned writer) { t_writer = writer; }

void MetricsRegistry::init(unsigned writers) {
    writers_ = writers;
    blocks_.resize(writers);
    for (unsigned w = 0; w < writers; ++w) {
        // Anonymous pages are zero and cost nothing until written: each writer's block is
        // its own mapping, so two writers never share a cache line.
        void* p = mmap(nullptr, kMaxCells * sizeof(std::int64_t), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) {
            log_error("metrics: cannot map %zu bytes", kMaxCells * sizeof(std::int64_t));
            std::abort();
        }
        blocks_[w] = static_cast<std::int64_t*>(p);
    }
}

MetricsRegistry::~MetricsRegistry() {
    for (std::int64_t* block : blocks_) munmap(block, kMaxCells * sizeof(std::int64_t));
}

std::int64_t* MetricsRegistry::mine() const { return blocks_[t_writer]; }

void MetricsRegistry::family(std::string name, MetricType type, std::string help) {
    std::lock_guard<std::mutex> lock(mutex_);
    families_.push_back(Family{std::move(name), type, std::move(help), {}});
}

std::string MetricsRegistry::render_labels(const MetricLabels& labels) {
    std::string out;
    for (const auto& [name, value] : labels) {
        if (!out.empty()) out += ',';
        out += name;
        out += "=\"";
        append_label_value(out, value);
        out += '"';
    }
    return out;
}

MetricCell MetricsRegistry::series(std::string_view family_name, MetricLabels labels) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::size_t family = 0;
    while (family < families_.size() && families_[family].name != family_name) ++family;
    if (family == families_.size()) {
        log_error("metrics: unknown family %.*s", static_cast<int>(family_name.size()), family_name.data());
        std::abort();
    }
    std::string rendered = render_labels(labels);
    std::string key = std::string(family_name) + '\0' + rendered;
    if (auto it = index_.find(key); it != index_.end()) return series_[it->second].cell;
    std::size_t cells = families_[family].type == MetricType::histogram ? duration_bounds().size() + 3 : 1;
    if (next_ + cells > kMaxCells) {
        log_error("metrics: more than %zu cells; %s{%s} is not counted", kMaxCells, key.c_str(), rendered.c_str());
        return 0;
    }
    MetricCell cell = next_;
    next_ += static_cast<MetricCell>(cells);
    index_.emplace(std::move(key), series_.size());
    by_cell_.emplace(cell, series_.size());
    families_[family].series.push_back(series_.size());
    series_.push_back(Series{family, std::move(rendered), cell, {}});
    return cell;
}

void MetricsRegistry::show_when_any(MetricCell cell, std::vector<MetricCell> cells) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = by_cell_.find(cell); it != by_cell_.end()) series_[it->second].shown_when = std::move(cells);
}

const std::vector<double>& MetricsRegistry::duration_bounds() {
    static const std::vector<double> bounds = {0.1,   0.5,   1,     5,     15,    60,    300,
                                               900,   1800,  3600,  7200,  21600, 43200, 86400};
    return bounds;
}

void MetricsRegistry::observe(MetricCell histogram, std::uint64_t ms) {
    if (histogram == 0) return;
    const std::vector<double>& bounds = duration_bounds();
    std::size_t bucket = 0;
    while (bucket < bounds.size() && static_cast<double>(ms) > bounds[bucket] * 1000.0) ++bucket;
    add(histogram + static_cast<MetricCell>(bucket), 1);
    add(histogram + static_cast<MetricCell>(bounds.size() + 1), 1);
    add(histogram + static_cast<MetricCell>(bounds.size() + 2), static_cast<std::int64_t>(ms));
}

std::int64_t MetricsRegistry::value(MetricCell cell) const {
    std::int64_t sum = 0;
    for (std::int64_t* block : blocks_) {
        sum += std::atomic_ref<std::int64_t>(block[cell]).load(std::memory_order_relaxed);
    }
    return sum;
}

void MetricsRegistry::render_series(std::string& out, const Family& family, const Series& s) const {
    auto line = [&](std::string_view suffix, std::string_view extra_label, std::int64_t v) {
        out += family.name;
        out += suffix;
        if (!s.labels.empty() || !extra_label.empty()) {
            out += '{';
            out += s.labels;
            if (!s.labels.empty() && !extra_label.empty()) out += ',';
            out += extra_label;
            out += '}';
        }
        out += ' ';
        append_signed(out, v);
        out += '\n';
    };
    if (family.type != MetricType::histogram) {
        line("", "", value(s.cell));
        return;
    }
    const std::vector<double>& bounds = duration_bounds();
    std::int64_t cumulative = 0;
    std::string le;
    for (std::size_t b = 0; b <= bounds.size(); ++b) {
        cumulative += value(s.cell + static_cast<MetricCell>(b));
        le = "le=\"";
        if (b < bounds.size()) {
            append_double(le, bounds[b]);
        } else {
            le += "+Inf";
        }
        le += '"';
        line("_bucket", le, cumulative);
    }
    // The sum is kept in milliseconds; the exposition is in seconds.
    std::int64_t sum_ms = value(s.cell + static_cast<MetricCell>(bounds.size() + 2));
    out += family.name;
    out += "_sum";
    if (!s.labels.empty()) {
        out += '{';
        out += s.labels;
        out += '}';
    }
    out += ' ';
    append_double(out, static_cast<double>(sum_ms) / 1000.0);
    out += '\n';
    line("_count", "", value(s.cell + static_cast<MetricCell>(bounds.size() + 1)));
}

std::string MetricsRegistry::render() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string out;
    out.reserve(8192);
    for (const Family& family : families_) {
        out += "# HELP ";
        out += family.name;
        out += ' ';
        out += family.help;
        out += "\n# TYPE ";
        out += family.name;
        out += family.type == MetricType::counter ? " counter\n"
               : family.type == MetricType::gauge ? " gauge\n"
                                                  : " histogram\n";
        for (std::size_t i : family.series) {
            const Series& s = series_[i];
            if (!s.shown_when.empty()) {
                bool shown = false;
                for (MetricCell c : s.shown_when) shown = shown || value(c) != 0;
                if (!shown) continue;
            }
            render_series(out, family, s);
        }
    }
    return out;
}

}  // namespace sy
