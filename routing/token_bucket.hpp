// The admission rate of upgrade.max_rate (docs/upgrades.md, "Balancing long-lived
// connections"): a token bucket of one second's worth, refilled at `rate` per second, in
// its GCRA form (one number, the theoretical arrival time) so that workers can share it
// through a single atomic. Pure: the caller passes the time and stores the new state.
#pragma once

#include <cstdint>

namespace sy {

struct BucketStep {
    bool admit = false;
    std::uint64_t tat_us = 0;          // the new state (unchanged when refused)
    std::uint64_t retry_after_us = 0;  // refused: when the next token comes
};

// `tat_us`: the state (0 at first), `now_us`: a monotonic clock, `rate`: per second (> 0).
// Up to `rate` admissions at once after a quiet second, then one every 1/rate s.
BucketStep bucket_step(std::uint64_t tat_us, std::uint64_t now_us, std::uint32_t rate);

}  // namespace sy
