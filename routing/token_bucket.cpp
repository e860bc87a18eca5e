#include "routing/token_bucket.hpp"

namespace sy {

BucketStep bucket_step(std::uint64_t tat_us, std::uint64_t now_us, std::uint32_t rate) {
    constexpr std::uint64_t kSecond = 1'000'000;
    const std::uint64_t interval = kSecond / rate;  // one token's worth
    // Burst tolerance: a full bucket holds `rate` tokens, so `rate` arrivals at one instant
    // fit in one second's window.
    const std::uint64_t tolerance = kSecond - interval;
    const std::uint64_t start = tat_us > now_us ? tat_us : now_us;
    BucketStep step;
    if (start - now_us > tolerance) {
        step.tat_us = tat_us;
        step.retry_after_us = start - now_us - tolerance;
        return step;
    }
    step.admit = true;
    step.tat_us = start + interval;
    return step;
}

}  // namespace sy
