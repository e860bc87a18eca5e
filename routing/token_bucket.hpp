// The admission rate of upgrade.max_rate (docs/upgrades.md, "Balancing long-lived
// connections"): a token bucket of one second's worth, refilled at `rate` per second, in
// its GCRA form (one number, the theoretical arrival time) so that workers can share it
// through a single atomic. Pure: the caller passes the time and stores the new state.
#pragma once

#include <cstdint>

namespace sy {

// Times are in nanoseconds, so that 1/rate s is exact to within a nanosecond for every rate
// (and rounded up: never more than `rate` per second).
struct BucketStep {
    bool admit = false;
    std::uint64_t tat_ns = 0;          // the new state (unchanged when refused)
    std::uint64_t retry_after_ns = 0;  // refused: when the next token comes
};

// `tat_ns`: the state (0 at first), `now_ns`: a monotonic clock, `rate`: per second (> 0).
// Up to `rate` admissions at once after a quiet second, then one every 1/rate s.
BucketStep bucket_step(std::uint64_t tat_ns, std::uint64_t now_ns, std::uint32_t rate);

}  // namespace sy
