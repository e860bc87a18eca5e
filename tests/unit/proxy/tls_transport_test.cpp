// TlsTransport over a real loopback connection: handshake through memory BIOs on a libuv
// loop, ALPN (http/1.1 or the no_application_protocol alert), SNI choosing the certificate,
// data both ways, close_notify as a half-close, and a key that does not match its
// certificate refused. Certificates are made in memory for the test.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "proxy/transport/tls_context.hpp"
#include "proxy/transport/tls_transport.hpp"
#include "tests/unit/proxy/loopback_pair.hpp"

using namespace sy;
using sy::test::Pair;
using sy::test::Recorder;

namespace {

std::string pem_of_key(EVP_PKEY* key) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(bio);
    return out;
}

// A self-signed P-256 certificate for `name` (also its subjectAltName).
CertKeyPem self_signed(const std::string& name, EVP_PKEY** key_out = nullptr) {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* subject = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(name.c_str()), -1,
                               -1, 0);
    X509_set_issuer_name(cert, subject);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, ("DNS:" + name).c_str());
    X509_add_ext(cert, san, -1);
    X509_EXTENSION_free(san);
    X509_sign(cert, key, EVP_sha256());
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    CertKeyPem out{std::string(data, static_cast<std::size_t>(n)), pem_of_key(key)};
    BIO_free(bio);
    X509_free(cert);
    if (key_out != nullptr) {
        *key_out = key;
    } else {
        EVP_PKEY_free(key);
    }
    return out;
}

struct TlsPair {
    Pair tcp;
    SslCtxPtr client_ctx{SSL_CTX_new(TLS_client_method())};
    TlsTransport* client = nullptr;
    TlsTransport* server = nullptr;
    int closed = 0;

    TlsPair(const ServerTls& tls, const std::string& sni, const std::vector<unsigned char>& alpn) {
        SSL* c = SSL_new(client_ctx.get());
        SSL_set_connect_state(c);
        if (!sni.empty()) SSL_set_tlsext_host_name(c, sni.c_str());
        if (!alpn.empty()) SSL_set_alpn_protos(c, alpn.data(), static_cast<unsigned>(alpn.size()));
        client = new TlsTransport(&tcp.loop, tcp.client, c, tcp.pool);
        server = new TlsTransport(&tcp.loop, tcp.server, tls.new_ssl(), tcp.pool);
    }
    void close_both() {
        static constexpr Transport::ClosedCallback kCount = [](void* self) { ++static_cast<TlsPair*>(self)->closed; };
        client->close(kCount, this);
        server->close(kCount, this);
        tcp.run_until([&] { return closed == 2; });
    }
};

const std::vector<unsigned char> kOfferHttp11 = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
const std::vector<unsigned char> kOfferH2Only = {2, 'h', '2'};

std::string alpn_of(TlsTransport& t) {
    const unsigned char* p = nullptr;
    unsigned int n = 0;
    SSL_get0_alpn_selected(t.ssl(), &p, &n);
    return std::string(reinterpret_cast<const char*>(p), n);
}

}  // namespace

TEST_CASE("TLS: handshake, http/1.1 by ALPN, bytes both ways, close_notify as a half-close") {
    std::string error;
    auto tls = ServerTls::make({self_signed("a.test")}, TLS1_2_VERSION, &error);
    REQUIRE_MESSAGE(tls != nullptr, error);
    TlsPair p(*tls, "a.test", kOfferHttp11);
    Recorder client_events, server_events;
    p.client->set_user(&client_events);
    p.server->set_user(&server_events);
    REQUIRE(p.server->start_reading());
    REQUIRE(p.client->start_reading());
    // Written before the handshake is done: kept, then encrypted.
    p.client->write("GET / HTTP/1.1\r\n\r\n");
    p.tcp.run_until([&] { return server_events.received.size() == 18; });
    CHECK(server_events.received == "GET / HTTP/1.1\r\n\r\n");
    CHECK(client_events.drained == 1);  // what waited for the handshake is out
    CHECK(p.client->queued() == 0);
    CHECK(p.server->handshake_done());
    CHECK(alpn_of(*p.server) == "http/1.1");
    CHECK(SSL_version(p.server->ssl()) == TLS1_3_VERSION);

    std::string big(300000, 'x');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
    p.server->write(big);
    p.tcp.run_until([&] { return client_events.received.size() == big.size(); });
    CHECK(client_events.received == big);

    // The client's close_notify ends its direction only: the server still writes.
    CHECK(p.client->shutdown_write() != Transport::Shutdown::failed);
    p.tcp.run_until([&] { return !server_events.ends.empty(); });
    CHECK(server_events.ends == std::vector<int>{UV_EOF});
    p.server->write("after");
    p.tcp.run_until([&] { return client_events.received.size() == big.size() + 5; });
    CHECK(p.server->shutdown_write() != Transport::Shutdown::failed);
    p.tcp.run_until([&] { return !client_events.ends.empty(); });
    CHECK(client_events.ends == std::vector<int>{UV_EOF});
    p.close_both();
    CHECK(p.tcp.pool.lent() == 0);
}

TEST_CASE("TLS: a client offering only h2 gets the no_application_protocol alert") {
    std::string error;
    auto tls = ServerTls::make({self_signed("a.test")}, TLS1_2_VERSION, &error);
    REQUIRE(tls != nullptr);
    TlsPair p(*tls, "a.test", kOfferH2Only);
    Recorder client_events, server_events;
    p.client->set_user(&client_events);
    p.server->set_user(&server_events);
    REQUIRE(p.server->start_reading());
    REQUIRE(p.client->start_reading());
    p.tcp.run_until([&] { return !client_events.ends.empty() && !server_events.ends.empty(); });
    CHECK(server_events.ends == std::vector<int>{UV_EPROTO});
    CHECK(client_events.ends == std::vector<int>{UV_EPROTO});
    CHECK(p.client->error().find("no application protocol") != std::string::npos);
    CHECK(server_events.received.empty());
    p.close_both();
}

TEST_CASE("TLS: SNI picks the certificate naming the host, the first one otherwise") {
    std::string error;
    auto tls = ServerTls::make({self_signed("a.test"), self_signed("b.test")}, TLS1_2_VERSION, &error);
    REQUIRE(tls != nullptr);
    for (const auto& [sni, expected] : std::vector<std::pair<std::string, std::string>>{
             {"b.test", "b.test"}, {"a.test", "a.test"}, {"other.test", "a.test"}, {"", "a.test"}}) {
        CAPTURE(sni);
        TlsPair p(*tls, sni, kOfferHttp11);
        Recorder client_events, server_events;
        p.client->set_user(&client_events);
        p.server->set_user(&server_events);
        REQUIRE(p.server->start_reading());
        REQUIRE(p.client->start_reading());
        p.client->write("x");
        p.tcp.run_until([&] { return server_events.received == "x"; });
        X509* peer = SSL_get1_peer_certificate(p.client->ssl());
        REQUIRE(peer != nullptr);
        char cn[64] = {};
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof cn);
        X509_free(peer);
        CHECK(std::string(cn) == expected);
        p.close_both();
    }
}

TEST_CASE("TLS: a key that does not match its certificate, and garbage, are refused") {
    std::string error;
    CertKeyPem a = self_signed("a.test");
    const CertKeyPem b = self_signed("b.test");
    a.key_pem = b.key_pem;
    CHECK(ServerTls::make({a}, TLS1_2_VERSION, &error) == nullptr);
    CHECK(error.find("does not match") != std::string::npos);
    CHECK(ServerTls::make({CertKeyPem{"nonsense", b.key_pem}}, TLS1_2_VERSION, &error) == nullptr);
    CHECK(error.find("certificate") != std::string::npos);
    CHECK(ServerTls::make({}, TLS1_2_VERSION, &error) == nullptr);
}
