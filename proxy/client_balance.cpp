// ClientConn's balancing and admission (docs/upgrades.md, "Balancing long-lived
// connections"): the route's admission of an upgrade (max_tunnels, max_rate), the server's
// choice (hash key, affinity cookie, max_tunnels, slow start: routing/balancer.hpp), the 503
// when nothing may be admitted, and the places taken in the shared counters, held until the
// tunnel ends or it is clear that none comes.
#include <string>

#include "proxy/client_conn.hpp"
#include "proxy/upstream_pool.hpp"
#include "routing/affinity.hpp"

namespace sy {

bool ClientConn::admit_upgrade(std::size_t route_index) {
    const RouteAdmission& admission = gen_->snapshot->admission.routes[route_index];
    const UpgradeConfig& rule = route_->upgrade;
    if (!admission.tunnels->try_acquire(rule.max_tunnels)) {
        throttle("route max_tunnels reached", 1);
        return false;
    }
    route_reservation_ = admission.tunnels;
    std::uint64_t retry_ns = 0;
    if (rule.max_rate > 0 && !admission.rate->try_take(uv_hrtime(), rule.max_rate, &retry_ns)) {
        throttle("route max_rate reached", (retry_ns + 999'999'999) / 1'000'000'000);
        return false;
    }
    return true;
}

void ClientConn::throttle(const char* why, std::uint64_t retry_after_s) {
    count_upgrade(UpgradeOutcome::throttled, offered_protocol());
    // Nothing went upstream; the client may come back after Retry-After (RFC 9110 §10.2.3).
    respond_local(503, false, why, {{"Retry-After", std::to_string(retry_after_s < 1 ? 1 : retry_after_s)}});
}

void ClientConn::take_balance_inputs() {
    const UpstreamConfig& upstream = pool_->config();
    if (upstream.balance == Balance::hash) {
        if (auto key = balance_key(upstream.hash_key, http_->req, http_->client_ip)) http_->balance_key = key_hash(*key);
    }
    if (upstream.sticky) {
        if (auto value = find_cookie(http_->req.headers, upstream.sticky->cookie)) http_->affinity = *value;
    }
}

std::size_t ClientConn::pick_server(bool first) {
    UpstreamPool::PickRequest request;
    request.upgrade = http_->decision.kind == UpgradeDecision::Kind::forward;
    request.key = http_->balance_key;
    request.affinity = http_->affinity;
    const UpstreamPool::Picked picked = pool_->pick(http_->tried, request);
    if (picked.server == UpstreamPool::npos && picked.all_full) {
        throttle("every server is at max_tunnels", 1);
        return UpstreamPool::npos;
    }
    // The decision's outcome is counted once, when it is clear that the proxy does not
    // refuse the request itself (a terminated upgrade is counted at its 101).
    if (first && http_->decision.outcome != UpgradeOutcome::none && !http_->terminate.terminate) {
        count_upgrade(http_->decision.outcome, offered_protocol());
    }
    if (picked.server == UpstreamPool::npos) {
        fail_exchange(502, "no upstream server could be reached");
        return UpstreamPool::npos;
    }
    server_reservation_ = picked.reservation;
    const UpstreamConfig& upstream = pool_->config();
    if (upstream.sticky && !picked.affinity_kept) {
        // No valid cookie for a server that can take the request: set one (RFC 6265 §4.1).
        http_->set_cookie = affinity_set_cookie(*upstream.sticky, pool_->affinity_value(picked.server), tls_ != nullptr);
    } else {
        http_->set_cookie.clear();
    }
    return picked.server;
}

void ClientConn::release_server_reservation() {
    if (server_reservation_ == nullptr) return;
    server_reservation_->release();
    server_reservation_ = nullptr;
}

void ClientConn::release_reservations() {
    release_server_reservation();
    if (route_reservation_ != nullptr) {
        route_reservation_->release();
        route_reservation_ = nullptr;
    }
}

}  // namespace sy
