#include "proxy/ops/reload.hpp"

#include "proxy/net.hpp"

namespace sy {

std::vector<int> plan_listeners(const std::vector<ListenerConfig>& running, const std::vector<ListenerConfig>& next) {
    std::vector<bool> taken(running.size(), false);
    std::vector<int> plan;
    for (const ListenerConfig& listener : next) {
        const std::string key = listener.address.to_string();
        int found = -1;
        for (std::size_t i = 0; i < running.size(); ++i) {
            if (!taken[i] && running[i].address.to_string() == key) {
                taken[i] = true;
                found = static_cast<int>(i);
                break;
            }
        }
        plan.push_back(found);
    }
    return plan;
}

std::vector<std::string> restart_only_changes(const Config& running, Config& next) {
    std::vector<std::string> lines;
    if (next.workers != running.workers) {
        lines.push_back("reload: 'workers' changed from " + std::to_string(running.workers) + " to " +
                        std::to_string(next.workers) + "; this needs a restart, keeping " +
                        std::to_string(running.workers));
        next.workers = running.workers;
    }
    return lines;
}

std::shared_ptr<const Snapshot> make_snapshot(Config config, std::string* error) {
    auto snapshot = std::make_shared<Snapshot>();
    for (const UpstreamConfig& upstream : config.upstreams) {
        std::vector<sockaddr_storage> addresses(upstream.servers.size());
        for (std::size_t i = 0; i < upstream.servers.size(); ++i) {
            if (!resolve_address(upstream.servers[i], &addresses[i], error)) {
                *error = "upstream " + upstream.name + ": " + *error;
                return nullptr;
            }
        }
        snapshot->server_addresses.push_back(std::move(addresses));
        std::shared_ptr<ClientTls> tls;
        if (upstream.tls) {
            tls = ClientTls::make(upstream.tls->ca_pem, upstream.tls->verify, error);
            if (!tls) {
                *error = "upstream " + upstream.name + ": " + *error;
                return nullptr;
            }
        }
        snapshot->upstream_tls.push_back(std::move(tls));
    }
    for (const ListenerConfig& listener : config.listen) {
        std::shared_ptr<ServerTls> tls;
        if (listener.tls) {
            std::vector<CertKeyPem> certs;
            for (const TlsCertificate& c : listener.tls->certificates) certs.push_back({c.cert_pem, c.key_pem});
            tls = ServerTls::make(certs, listener.tls->min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION, error);
            if (!tls) {
                *error = "listener " + listener.address.to_string() + ": " + *error;
                return nullptr;
            }
        }
        snapshot->listener_tls.push_back(std::move(tls));
    }
    snapshot->stats = g_stats.bind(config);
    snapshot->admission = g_admission.bind(config);
    for (const UpstreamConfig& upstream : config.upstreams) {
        if (upstream.balance == Balance::hash && upstream.hash_key.kind == HashKey::Kind::client_ip) {
            snapshot->needs_client_ip = true;
        }
    }
    snapshot->config = std::move(config);
    return snapshot;
}

}  // namespace sy
