#include "proxy/transport/tls_context.hpp"

#include <algorithm>
#include <cstring>

#include <strings.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

namespace sy {

std::string ssl_error_text(const char* what) {
    std::string out = what;
    const unsigned long code = ERR_peek_last_error();
    if (code != 0) {
        char text[256];
        ERR_error_string_n(code, text, sizeof text);
        out += ": ";
        out += text;
    }
    ERR_clear_error();
    return out;
}

namespace {

// RFC 7301 §3.2: http/1.1 when offered; a client offering only other protocols (h2) gets
// the no_application_protocol alert.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
    static constexpr unsigned char kHttp11[] = {'h', 't', 't', 'p', '/', '1', '.', '1'};
    for (unsigned int i = 0; i < inlen;) {
        const unsigned int len = in[i];
        if (i + 1 + len > inlen) break;
        if (len == sizeof kHttp11 && std::equal(kHttp11, kHttp11 + sizeof kHttp11, in + i + 1)) {
            *out = in + i + 1;
            *outlen = static_cast<unsigned char>(len);
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + len;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

std::vector<std::string> dns_names(X509* cert) {
    std::vector<std::string> names;
    auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    if (sans != nullptr) {
        for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
            const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, i);
            if (n->type != GEN_DNS) continue;
            const ASN1_STRING* s = n->d.dNSName;
            names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                               static_cast<std::size_t>(ASN1_STRING_length(s)));
        }
        GENERAL_NAMES_free(sans);
    }
    return names;
}

bool name_matches(const std::string& pattern, const char* host) {
    if (pattern.rfind("*.", 0) == 0) {
        const char* dot = std::strchr(host, '.');
        return dot != nullptr && strcasecmp(dot + 1, pattern.c_str() + 2) == 0;
    }
    return strcasecmp(pattern.c_str(), host) == 0;
}

SslCtxPtr make_context(const CertKeyPem& pair, int min_version, std::vector<std::string>* names, std::string* error) {
    SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx) {
        *error = ssl_error_text("cannot create a TLS context");
        return nullptr;
    }
    SSL_CTX_set_min_proto_version(ctx.get(), min_version);
    SSL_CTX_set_options(ctx.get(), SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_select_cb(ctx.get(), &select_alpn, nullptr);
    SSL_CTX_set_session_id_context(ctx.get(), reinterpret_cast<const unsigned char*>("switchyard"), 10);

    BIO* bio = BIO_new_mem_buf(pair.cert_pem.data(), static_cast<int>(pair.cert_pem.size()));
    X509* leaf = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    if (leaf == nullptr || SSL_CTX_use_certificate(ctx.get(), leaf) != 1) {
        BIO_free(bio);
        X509_free(leaf);
        *error = ssl_error_text("not a PEM certificate");
        return nullptr;
    }
    *names = dns_names(leaf);
    X509_free(leaf);
    while (X509* extra = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
        if (SSL_CTX_add0_chain_cert(ctx.get(), extra) != 1) X509_free(extra);
    }
    ERR_clear_error();  // the end of the chain reads as an error
    BIO_free(bio);

    bio = BIO_new_mem_buf(pair.key_pem.data(), static_cast<int>(pair.key_pem.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (key == nullptr) {
        *error = ssl_error_text("not a PEM private key");
        return nullptr;
    }
    if (SSL_CTX_use_PrivateKey(ctx.get(), key) != 1) {  // OpenSSL checks it against the certificate
        EVP_PKEY_free(key);
        *error = ssl_error_text("the key does not match the certificate");
        return nullptr;
    }
    EVP_PKEY_free(key);
    if (SSL_CTX_check_private_key(ctx.get()) != 1) {
        *error = ssl_error_text("the key does not match the certificate");
        return nullptr;
    }
    return ctx;
}

}  // namespace

std::shared_ptr<ServerTls> ServerTls::make(const std::vector<CertKeyPem>& certs, int min_version, std::string* error) {
    auto tls = std::make_shared<ServerTls>();
    for (const CertKeyPem& pair : certs) {
        std::vector<std::string> names;
        SslCtxPtr ctx = make_context(pair, min_version, &names, error);
        if (!ctx) return nullptr;
        tls->contexts_.push_back(std::move(ctx));
        tls->names_.push_back(std::move(names));
    }
    if (tls->contexts_.empty()) {
        *error = "no certificate";
        return nullptr;
    }
    SSL_CTX_set_tlsext_servername_callback(tls->contexts_[0].get(), &ServerTls::on_servername);
    SSL_CTX_set_tlsext_servername_arg(tls->contexts_[0].get(), tls.get());
    return tls;
}

SSL* ServerTls::new_ssl() const {
    SSL* ssl = SSL_new(contexts_[0].get());
    if (ssl != nullptr) SSL_set_accept_state(ssl);
    return ssl;
}

// SNI: the first certificate naming the host, else the default (the first).
int ServerTls::on_servername(SSL* ssl, int*, void* arg) {
    const auto* self = static_cast<const ServerTls*>(arg);
    const char* host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (host == nullptr) return SSL_TLSEXT_ERR_NOACK;
    for (std::size_t i = 0; i < self->contexts_.size(); ++i) {
        for (const std::string& name : self->names_[i]) {
            if (!name_matches(name, host)) continue;
            if (i != 0) SSL_set_SSL_CTX(ssl, self->contexts_[i].get());
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

std::shared_ptr<ClientTls> ClientTls::make(const std::string& ca_pem, bool verify, std::string* error) {
    auto tls = std::make_shared<ClientTls>();
    tls->ctx_.reset(SSL_CTX_new(TLS_client_method()));
    if (!tls->ctx_) {
        *error = ssl_error_text("cannot create a TLS context");
        return nullptr;
    }
    SSL_CTX* ctx = tls->ctx_.get();
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    static constexpr unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof kAlpn);
    tls->verify_ = verify;
    if (verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
        if (ca_pem.empty()) {
            SSL_CTX_set_default_verify_paths(ctx);
        } else {
            X509_STORE* store = SSL_CTX_get_cert_store(ctx);
            BIO* bio = BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size()));
            int added = 0;
            while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
                added += X509_STORE_add_cert(store, cert) == 1 ? 1 : 0;
                X509_free(cert);
            }
            BIO_free(bio);
            ERR_clear_error();
            if (added == 0) {
                *error = "no CA certificate could be loaded";
                return nullptr;
            }
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    }
    return tls;
}

SSL* ClientTls::new_ssl(const std::string& host) const {
    SSL* ssl = SSL_new(ctx_.get());
    if (ssl == nullptr) return nullptr;
    SSL_set_connect_state(ssl);
    const bool is_address = host.find(':') != std::string::npos ||
                            host.find_first_not_of("0123456789.") == std::string::npos;
    if (!is_address) SSL_set_tlsext_host_name(ssl, host.c_str());
    if (verify_) {
        if (is_address) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
        } else {
            SSL_set1_host(ssl, host.c_str());
        }
    }
    return ssl;
}

}  // namespace sy
