#include "routing/token_bucket.hpp"

namespace sy {

BucketStep bucket_step(std::uint64_t tat_ns, std::uint64_t now_ns, std::uint32_t rate) {
    constexpr std::uint64_t kSecond = 1'000'000'000;
    const std::uint64_t interval = (kSecond + rate - 1) / rate;  // one token's worth, rounded up
    // Burst tolerance: a full bucket holds `rate` tokens, so `rate` arrivals at one instant
    // fit (about one second's window).
    const std::uint64_t tolerance = interval * (rate - 1);
    const std::uint64_t start = tat_ns > now_ns ? tat_ns : now_ns;
    BucketStep step;
    if (start - now_ns > tolerance) {
        step.tat_ns = tat_ns;
        step.retry_after_ns = start - now_ns - tolerance;
        return step;
    }
    step.admit = true;
    step.tat_ns = start + interval;
    return step;
}

}  // namespace sy
