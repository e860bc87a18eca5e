// TLS configuration as OpenSSL contexts, built once per configuration snapshot and shared
// by the worker threads (an SSL_CTX is safe to share once set up).
//   - server: one context per certificate; SNI picks one (the first when no name matches);
//     TLS 1.2 and 1.3 only (min_version can raise it); ALPN offers http/1.1 only and ends a
//     handshake that offers only other protocols with the no_application_protocol alert
//     (RFC 7301 §3.2); a client without ALPN is served; session tickets (TLS 1.2) and
//     PSK resumption (TLS 1.3) on.
//   - client (upstream): verification against a CA file or the system store, the name
//     checked is the configured server_name.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <openssl/ssl.h>

namespace sy {

struct SslCtxDeleter {
    void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

// `what`, then OpenSSL's reason for the last error on this thread (if any); clears the
// thread's OpenSSL error queue.
std::string ssl_error_text(const char* what);

struct CertKeyPem {
    std::string cert_pem;  // the chain, leaf first
    std::string key_pem;
};

class ServerTls {
public:
    // Null with `error` set when a certificate or key cannot be used (a bad PEM, a key that
    // does not match its certificate). min_version: TLS1_2_VERSION or TLS1_3_VERSION.
    static std::shared_ptr<ServerTls> make(const std::vector<CertKeyPem>& certs, int min_version, std::string* error);

    // A new server-side SSL for one connection.
    SSL* new_ssl() const;

private:
    static int on_servername(SSL* ssl, int* alert, void* arg);
    std::vector<SslCtxPtr> contexts_;     // [0] is the default
    std::vector<std::vector<std::string>> names_;  // the DNS names of each certificate
};

class ClientTls {
public:
    // `ca_pem` empty: the system trust store. Null with `error` set on failure.
    static std::shared_ptr<ClientTls> make(const std::string& ca_pem, bool verify, std::string* error);

    // A new client-side SSL toward `host` (a name or an address as configured): SNI when it
    // is a name, and with verification the certificate must name it.
    SSL* new_ssl(const std::string& host) const;

private:
    SslCtxPtr ctx_;
    bool verify_ = true;
};

}  // namespace sy
