// What every worker shares to admit upgrades (docs/upgrades.md, "Balancing long-lived
// connections"): open tunnels per server (upstreams.<name>.max_tunnels) and per route
// (upgrade.max_tunnels), and each route's rate bucket (upgrade.max_rate). Atomics touched
// once per upgrade request and once per tunnel end, never per byte, and no lock.
//
// They are found by name (upstream and server address; route name) when a configuration
// is bound, and live as long as the process, so that a reload keeps counting the tunnels
// already open against the new caps.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "routing/config.hpp"

namespace sy {

class SharedCount {
public:
    // Takes one unless `cap` (> 0) is reached. True when taken.
    bool try_acquire(std::uint32_t cap) {
        const std::int64_t before = value_.fetch_add(1, std::memory_order_relaxed);
        if (cap == 0 || before < static_cast<std::int64_t>(cap)) return true;
        value_.fetch_sub(1, std::memory_order_relaxed);
        return false;
    }
    void release() { value_.fetch_sub(1, std::memory_order_relaxed); }
    std::int64_t load() const { return value_.load(std::memory_order_relaxed); }
    bool full(std::uint32_t cap) const { return cap != 0 && load() >= static_cast<std::int64_t>(cap); }

private:
    std::atomic<std::int64_t> value_{0};
};

class SharedRate {
public:
    // One admission at `now_ns` (a monotonic clock shared by the workers: uv_hrtime) at
    // `rate` per second; refused: *retry_after_ns says when to try again.
    bool try_take(std::uint64_t now_ns, std::uint32_t rate, std::uint64_t* retry_after_ns);

private:
    std::atomic<std::uint64_t> tat_ns_{0};
};

struct RouteAdmission {
    SharedCount* tunnels = nullptr;
    SharedRate* rate = nullptr;
};

// A configuration's view: per Config::upstreams index, per server index; per route index.
struct AdmissionBinding {
    std::vector<std::vector<SharedCount*>> servers;
    std::vector<RouteAdmission> routes;
};

class AdmissionRegistry {
public:
    // Called on the main thread when a configuration is loaded (start, reload).
    AdmissionBinding bind(const Config& config);

private:
    std::mutex mutex_;
    std::map<std::string, std::unique_ptr<SharedCount>> counts_;
    std::map<std::string, std::unique_ptr<SharedRate>> rates_;
};

extern AdmissionRegistry g_admission;

}  // namespace sy
