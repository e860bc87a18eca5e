#include "proxy/admission.hpp"

#include "routing/token_bucket.hpp"

namespace sy {

AdmissionRegistry g_admission;

bool SharedRate::try_take(std::uint64_t now_ns, std::uint32_t rate, std::uint64_t* retry_after_ns) {
    std::uint64_t tat = tat_ns_.load(std::memory_order_relaxed);
    for (;;) {
        const BucketStep step = bucket_step(tat, now_ns, rate);
        if (!step.admit) {
            *retry_after_ns = step.retry_after_ns;
            return false;
        }
        if (tat_ns_.compare_exchange_weak(tat, step.tat_ns, std::memory_order_relaxed)) return true;
        // Another worker took one meanwhile: `tat` now holds its state; decide again.
    }
}

AdmissionBinding AdmissionRegistry::bind(const Config& config) {
    const std::lock_guard<std::mutex> lock(mutex_);
    const auto count = [&](const std::string& key) {
        std::unique_ptr<SharedCount>& slot = counts_[key];
        if (!slot) slot = std::make_unique<SharedCount>();
        return slot.get();
    };
    AdmissionBinding binding;
    for (const UpstreamConfig& upstream : config.upstreams) {
        std::vector<SharedCount*> servers;
        for (const Address& server : upstream.servers) {
            servers.push_back(count("server\n" + upstream.name + "\n" + server.to_string()));
        }
        binding.servers.push_back(std::move(servers));
    }
    for (const RouteConfig& route : config.routes) {
        RouteAdmission admission;
        admission.tunnels = count("route\n" + route.name);
        std::unique_ptr<SharedRate>& rate = rates_[route.name];
        if (!rate) rate = std::make_unique<SharedRate>();
        admission.rate = rate.get();
        binding.routes.push_back(admission);
    }
    return binding;
}

}  // namespace sy
