// The metrics registry: per-writer cells summed at scrape time, the exposition format.
#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include "proxy/ops/metrics.hpp"

using namespace sy;

TEST_CASE("counters from several writers are summed; labels are escaped") {
    MetricsRegistry registry;
    registry.init(3);
    registry.family("t_requests_total", MetricType::counter, "Requests.");
    registry.family("t_open", MetricType::gauge, "Open things.");
    set_metrics_writer(0);
    const MetricCell a = registry.series("t_requests_total", {{"route", "chat"}, {"code", "2xx"}});
    const MetricCell b = registry.series("t_requests_total", {{"route", "a\"b\\c\nd"}, {"code", "5xx"}});
    const MetricCell open = registry.series("t_open", {});
    CHECK(registry.series("t_requests_total", {{"route", "chat"}, {"code", "2xx"}}) == a);  // the same series
    CHECK(a != b);

    // Each writer adds in its own block, from its own thread.
    std::vector<std::thread> threads;
    for (unsigned w = 0; w < 3; ++w) {
        threads.emplace_back([&, w] {
            set_metrics_writer(w);
            for (int i = 0; i < 1000; ++i) registry.add(a, 1);
            registry.add(open, w == 2 ? -1 : 1);
        });
    }
    for (std::thread& t : threads) t.join();
    set_metrics_writer(1);
    registry.add(b, 7);

    CHECK(registry.value(a) == 3000);
    CHECK(registry.value(open) == 1);
    CHECK(registry.render() ==
          "# HELP t_requests_total Requests.\n"
          "# TYPE t_requests_total counter\n"
          "t_requests_total{route=\"chat\",code=\"2xx\"} 3000\n"
          "t_requests_total{route=\"a\\\"b\\\\c\\nd\",code=\"5xx\"} 7\n"
          "# HELP t_open Open things.\n"
          "# TYPE t_open gauge\n"
          "t_open 1\n");
}

TEST_CASE("a series shown only once one of its group's cells moved") {
    MetricsRegistry registry;
    registry.init(1);
    set_metrics_writer(0);
    registry.family("t_upgrades_total", MetricType::counter, "Upgrades.");
    const MetricCell forwarded = registry.series("t_upgrades_total", {{"outcome", "forwarded"}});
    const MetricCell switched = registry.series("t_upgrades_total", {{"outcome", "switched"}});
    registry.show_when_any(forwarded, {forwarded, switched});
    registry.show_when_any(switched, {forwarded, switched});
    CHECK(registry.render() == "# HELP t_upgrades_total Upgrades.\n# TYPE t_upgrades_total counter\n");
    registry.add(forwarded, 1);
    CHECK(registry.render() ==
          "# HELP t_upgrades_total Upgrades.\n# TYPE t_upgrades_total counter\n"
          "t_upgrades_total{outcome=\"forwarded\"} 1\n"
          "t_upgrades_total{outcome=\"switched\"} 0\n");
}

TEST_CASE("a duration histogram: cumulative buckets from 0.1 s to a day, sum in seconds") {
    MetricsRegistry registry;
    registry.init(2);
    registry.family("t_duration_seconds", MetricType::histogram, "Durations.");
    const MetricCell h = registry.series("t_duration_seconds", {{"route", "r"}});
    set_metrics_writer(0);
    registry.observe(h, 50);          // 0.05 s: le 0.1
    registry.observe(h, 100);         // exactly 0.1 s: le 0.1 (bounds are inclusive)
    set_metrics_writer(1);
    registry.observe(h, 7'000);       // 7 s: le 15
    registry.observe(h, 90'000'000);  // 25 h: only +Inf
    const std::string page = registry.render();
    CHECK(page.find("t_duration_seconds_bucket{route=\"r\",le=\"0.1\"} 2\n") != std::string::npos);
    CHECK(page.find("t_duration_seconds_bucket{route=\"r\",le=\"5\"} 2\n") != std::string::npos);
    CHECK(page.find("t_duration_seconds_bucket{route=\"r\",le=\"15\"} 3\n") != std::string::npos);
    CHECK(page.find("t_duration_seconds_bucket{route=\"r\",le=\"86400\"} 3\n") != std::string::npos);
    CHECK(page.find("t_duration_seconds_bucket{route=\"r\",le=\"+Inf\"} 4\n") != std::string::npos);
    CHECK(page.find("t_duration_seconds_sum{route=\"r\"} 90007.15\n") != std::string::npos);
    CHECK(page.find("t_duration_seconds_count{route=\"r\"} 4\n") != std::string::npos);
    CHECK(MetricsRegistry::duration_bounds().front() <= 0.1);
    CHECK(MetricsRegistry::duration_bounds().back() >= 86400);
}
