// The active health check of an upstream pool (`health.check`): every `interval`, each
// server gets `GET <path>`; a 2xx answer within the interval (and within
// timeouts.upstream_connect for the connection) marks it up, anything else down. A server
// that is down is skipped by the balancer unless every server is down.
#pragma once

#include <cstddef>
#include <vector>

#include <uv.h>

#include "routing/config.hpp"

namespace sy {

class UpstreamPool;

class HealthChecker {
public:
    HealthChecker(uv_loop_t* loop, UpstreamPool& pool, const HealthCheck& check, Millis connect_timeout);
    ~HealthChecker();
    HealthChecker(const HealthChecker&) = delete;
    HealthChecker& operator=(const HealthChecker&) = delete;

    void start();
    // Stops the timer and aborts probes in flight (shutdown). Idempotent.
    void stop();

private:
    class Probe;
    friend class Probe;
    static void on_tick(uv_timer_t* timer);
    void probe_all();
    void probe_done(Probe* probe, std::size_t server, bool up);

    uv_loop_t* loop_;
    UpstreamPool& pool_;
    HealthCheck check_;
    Millis connect_timeout_;
    uv_timer_t* timer_;  // heap: its close completes after this object may be gone
    std::vector<Probe*> probes_;
    bool stopped_ = false;
};

}  // namespace sy
