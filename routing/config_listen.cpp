// The listen section of the configuration (docs/configuration.md, "listen"): addresses,
// TLS (certificates read and checked at load) and proxy_protocol.
#include <algorithm>
#include <string>

#include "routing/config_reader.hpp"
#include "routing/tls_files.hpp"

namespace sy::config_detail {

void ConfigReader::read_listen(const Entry& entry, Config& config) {
    if (!r_.expect_list(entry)) {
        return;
    }
    if (entry.value.size() == 0) {
        r_.error(entry.value_mark(), "'listen' needs at least one listener");
        return;
    }
    for (const Entry& item : r_.items(entry)) {
        if (!r_.expect_map(item)) {
            continue;
        }
        const Fields fields = r_.fields(item.value, {"address", "tls", "proxy_protocol"});
        bool proxy_protocol = false;
        if (const Entry* e = fields.find("proxy_protocol")) {
            if (auto value = r_.boolean(*e)) proxy_protocol = *value;
        }
        std::optional<ListenerTls> tls;
        if (const Entry* tls_entry = fields.find("tls")) {
            tls = read_listener_tls(*tls_entry, config.file);
            if (!tls) continue;
        }
        const Entry* address_entry = r_.required(fields, item.value, "address");
        if (address_entry == nullptr) {
            continue;
        }
        if (auto address = r_.address(*address_entry)) {
            const bool duplicate =
                std::any_of(config.listen.begin(), config.listen.end(), [&](const ListenerConfig& seen) {
                    return seen.address.host == address->host && seen.address.port == address->port;
                });
            if (duplicate && address->port != 0) {
                r_.error(address_entry->value_mark(),
                         "duplicate listen address " + quoted(address->to_string()));
                continue;
            }
            config.listen.push_back(ListenerConfig{std::move(*address), std::move(tls), proxy_protocol});
        }
    }
}

// listen[].tls: cert + key, or certificates: [{cert, key}, ...] (SNI, first = default),
// min_version. The files are read and checked now, so --check and a reload report an
// unreadable file or a key that does not belong to its certificate, where it is named.
std::optional<ListenerTls> ConfigReader::read_listener_tls(const Entry& entry, const std::string& config_file) {
    if (!r_.expect_map(entry)) return std::nullopt;
    const Fields fields = r_.fields(entry.value, {"cert", "key", "certificates", "min_version"});
    ListenerTls tls;
    bool ok = true;
    const Entry* cert = fields.find("cert");
    const Entry* key = fields.find("key");
    const Entry* list = fields.find("certificates");
    if (list != nullptr && (cert != nullptr || key != nullptr)) {
        r_.error(list->key_node.Mark(), "use either cert/key or certificates, not both");
        return std::nullopt;
    }
    if (list != nullptr) {
        if (!r_.expect_list(*list)) return std::nullopt;
        if (list->value.size() == 0) {
            r_.error(list->value_mark(), "'certificates' needs at least one {cert, key}");
            return std::nullopt;
        }
        for (const Entry& item : r_.items(*list)) {
            if (!r_.expect_map(item)) {
                ok = false;
                continue;
            }
            const Fields pair = r_.fields(item.value, {"cert", "key"});
            const Entry* c = r_.required(pair, item.value, "cert");
            const Entry* k = r_.required(pair, item.value, "key");
            if (c == nullptr || k == nullptr) {
                ok = false;
                continue;
            }
            if (auto certificate = read_certificate(*c, *k, config_file)) {
                tls.certificates.push_back(std::move(*certificate));
            } else {
                ok = false;
            }
        }
    } else {
        cert = r_.required(fields, entry.value, "cert");
        key = r_.required(fields, entry.value, "key");
        if (cert == nullptr || key == nullptr) return std::nullopt;
        if (auto certificate = read_certificate(*cert, *key, config_file)) {
            tls.certificates.push_back(std::move(*certificate));
        } else {
            ok = false;
        }
    }
    if (const Entry* v = fields.find("min_version")) {
        if (auto index = r_.choice(*v, {"1.2", "1.3"})) {
            tls.min_version = *index == 0 ? 12 : 13;
        } else {
            ok = false;
        }
    }
    if (!ok) return std::nullopt;
    return tls;
}

std::optional<TlsCertificate> ConfigReader::read_certificate(const Entry& cert, const Entry& key,
                                                             const std::string& config_file) {
    const auto cert_path = r_.scalar(cert);
    const auto key_path = r_.scalar(key);
    if (!cert_path || !key_path) return std::nullopt;
    // A relative path is relative to the configuration file's directory.
    const std::size_t slash = config_file.rfind('/');
    const auto resolve = [&](const std::string& p) {
        return p.empty() || p[0] == '/' || slash == std::string::npos ? p : config_file.substr(0, slash + 1) + p;
    };
    TlsCertificate out{resolve(*cert_path), resolve(*key_path), {}, {}};
    std::string error;
    auto cert_pem = read_text_file(out.cert_file, &error);
    if (!cert_pem) {
        r_.error(cert.value_mark(), error);
        return std::nullopt;
    }
    auto key_pem = read_text_file(out.key_file, &error);
    if (!key_pem) {
        r_.error(key.value_mark(), error);
        return std::nullopt;
    }
    const std::string problem = check_cert_and_key(*cert_pem, *key_pem);
    if (!problem.empty()) {
        r_.error(problem.find("certificate in") != std::string::npos ? cert.value_mark() : key.value_mark(),
                 problem + " (" + out.cert_file + ", " + out.key_file + ")");
        return std::nullopt;
    }
    out.cert_pem = std::move(*cert_pem);
    out.key_pem = std::move(*key_pem);
    return out;
}

}  // namespace sy::config_detail
