// The route's upgrade.max_rate bucket (routing/token_bucket.hpp, docs/upgrades.md
// "Balancing long-lived connections"): up to `rate` at once after a quiet second, then one
// every 1/rate s; a refusal says when the next token comes and leaves the state alone.
// Time is a number passed in: no clock, no sleeping.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "routing/token_bucket.hpp"

namespace sy {
namespace {

TEST_SUITE_BEGIN("token_bucket");

constexpr std::uint64_t kSecond = 1'000'000'000;

// 1/rate s in nanoseconds, as a real number.
double interval_ns(std::uint32_t rate) { return 1e9 / rate; }

// Steps at one instant until the first refusal; returns the admissions and leaves the
// state in `tat` and the refusal in `refused`.
std::uint64_t admit_all(std::uint64_t& tat, std::uint64_t now, std::uint32_t rate, BucketStep& refused) {
    std::uint64_t admitted = 0;
    for (;;) {
        const BucketStep step = bucket_step(tat, now, rate);
        if (!step.admit) {
            CHECK(step.tat_ns == tat);  // a refusal changes nothing
            refused = step;
            return admitted;
        }
        tat = step.tat_ns;
        ++admitted;
        if (admitted > 2ull * rate + 10) return admitted;  // runaway: fail below, do not loop forever
    }
}

TEST_CASE("a fresh bucket admits exactly rate at one instant, then says when the next token comes") {
    for (std::uint32_t rate : {1u, 2u, 3u, 7u, 200u, 3'000u, 10'000u, 300'000u, 1'000'000u, 2'000'000u}) {
        for (std::uint64_t start : {std::uint64_t{500'000}, 3 * kSecond, std::uint64_t{86'400} * kSecond}) {
            CAPTURE(rate);
            CAPTURE(start);
            std::uint64_t tat = 0;
            BucketStep refused;
            CHECK(admit_all(tat, start, rate, refused) == rate);
            CHECK_FALSE(refused.admit);
            // The next token: 1/rate s after the burst (to a nanosecond or two: the clock's unit).
            CHECK(std::abs(static_cast<double>(refused.retry_after_ns) - interval_ns(rate)) <= 2.0);
            CHECK(refused.retry_after_ns >= 1);
        }
    }
}

TEST_CASE("after a burst: one more exactly when the refusal said, then refused again") {
    for (std::uint32_t rate : {1u, 3u, 200u, 10'000u}) {
        CAPTURE(rate);
        const std::uint64_t start = 10 * kSecond;
        std::uint64_t tat = 0;
        BucketStep refused;
        REQUIRE(admit_all(tat, start, rate, refused) == rate);
        const std::uint64_t wait = refused.retry_after_ns;
        REQUIRE(wait >= 1);

        // A nanosecond before: still refused, state unchanged, the wait one nanosecond less.
        const BucketStep early = bucket_step(tat, start + wait - 1, rate);
        CHECK_FALSE(early.admit);
        CHECK(early.tat_ns == tat);
        CHECK(early.retry_after_ns == 1);

        // On time: one more, and only one.
        BucketStep next = bucket_step(tat, start + wait, rate);
        REQUIRE(next.admit);
        CHECK(next.tat_ns > tat);
        tat = next.tat_ns;
        BucketStep after;
        CHECK(admit_all(tat, start + wait, rate, after) == 0);
        CHECK(std::abs(static_cast<double>(after.retry_after_ns) - interval_ns(rate)) <= 2.0);

        // 1/rate s later again: one more.
        const std::uint64_t later = start + wait + after.retry_after_ns;
        CHECK(admit_all(tat, later, rate, after) == 1);
    }
}

TEST_CASE("after a quiet second the full burst again, never more") {
    for (std::uint32_t rate : {1u, 3u, 200u, 10'000u}) {
        CAPTURE(rate);
        const std::uint64_t start = 10 * kSecond;
        std::uint64_t tat = 0;
        BucketStep refused;
        REQUIRE(admit_all(tat, start, rate, refused) == rate);
        // A quiet second since the burst: rate again (1/rate is rounded up to whole
        // nanoseconds, so the bucket is full a few nanoseconds after the second).
        CHECK(admit_all(tat, start + kSecond + 1000, rate, refused) == rate);
        // A long quiet time does not bank more than a second's worth.
        CHECK(admit_all(tat, start + 3600 * kSecond, rate, refused) == rate);
        // Half a quiet second: half the bucket (to one token).
        const std::uint64_t half = start + 3600 * kSecond + kSecond / 2;
        const std::uint64_t admitted = admit_all(tat, half, rate, refused);
        CHECK(static_cast<double>(admitted) >= std::floor(rate / 2.0));
        CHECK(static_cast<double>(admitted) <= std::ceil(rate / 2.0));
    }
}

TEST_CASE("a refused step changes nothing, whatever the time it is asked") {
    for (std::uint32_t rate : {1u, 3u, 200u, 10'000u}) {
        CAPTURE(rate);
        const std::uint64_t start = 5 * kSecond;
        std::uint64_t tat = 0;
        BucketStep refused;
        REQUIRE(admit_all(tat, start, rate, refused) == rate);
        const std::uint64_t wait = refused.retry_after_ns;
        // Asked a thousand times before the token: each says the remaining time, none changes tat.
        for (std::uint64_t i = 0; i < 1000; ++i) {
            const std::uint64_t now = start + (wait - 1) * i / 1000;
            const BucketStep step = bucket_step(tat, now, rate);
            REQUIRE_FALSE(step.admit);
            CHECK(step.tat_ns == tat);
            CHECK(step.retry_after_ns == wait - (now - start));
        }
        CHECK(bucket_step(tat, start + wait, rate).admit);
    }
}

TEST_CASE("a storm: steady hammering never gets more than rate + one bucket in any second") {
    for (std::uint32_t rate : {1u, 3u, 200u, 3'000u, 10'000u}) {
        CAPTURE(rate);
        // Ask four times per token (at least once a millisecond) for four seconds.
        const std::uint64_t step_ns = std::max<std::uint64_t>(1, std::min<std::uint64_t>(1'000'000, 1'000'000'000 / rate / 4));
        const std::uint64_t start = 100 * kSecond;
        const std::uint64_t end = start + 4 * kSecond;
        std::uint64_t tat = 0;
        std::vector<std::uint64_t> admitted;
        std::uint64_t promised = 0;  // the time the last refusal named for the next token
        bool waiting = false;
        for (std::uint64_t now = start; now < end; now += step_ns) {
            const BucketStep step = bucket_step(tat, now, rate);
            if (step.admit) {
                CHECK(step.tat_ns > tat);
                if (waiting) {
                    // Not before the time the refusals named, and at the first ask after it.
                    CHECK(now + 1 >= promised);
                    CHECK(now < promised + step_ns + 1);
                }
                waiting = false;
                tat = step.tat_ns;
                admitted.push_back(now);
            } else {
                CHECK(step.tat_ns == tat);
                CHECK(step.retry_after_ns >= 1);
                promised = now + step.retry_after_ns;
                waiting = true;
            }
        }
        // Any window of one second: at most rate + rate; after the first second's burst, rate + 1.
        std::size_t most = 0, most_steady = 0;
        std::size_t first = 0;
        for (std::size_t last = 0; last < admitted.size(); ++last) {
            while (admitted[last] - admitted[first] >= kSecond) ++first;
            most = std::max(most, last - first + 1);
            if (admitted[first] >= start + kSecond) most_steady = std::max(most_steady, last - first + 1);
        }
        CHECK(most <= 2ull * rate);
        CHECK(most_steady <= rate + 1ull);
        // And the bucket does give its rate: the burst, then one per 1/rate s for 4 s.
        const double total = static_cast<double>(admitted.size());
        CHECK(total >= 5.0 * rate - 1);
        CHECK(total <= 5.0 * rate + 1);
        MESSAGE("rate " << rate << ": " << admitted.size() << " admitted in 4 s of hammering, at most " << most
                        << " in any second (" << most_steady << " after the first)");
    }
}

TEST_SUITE_END();

}  // namespace
}  // namespace sy
