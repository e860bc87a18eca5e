#include "routing/tls_files.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

namespace sy {

std::optional<std::string> read_text_file(const std::string& path, std::string* error) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) {
        *error = "cannot read " + path + ": " + std::strerror(errno);
        return std::nullopt;
    }
    std::string text;
    char buf[16384];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    const bool failed = std::ferror(f) != 0;
    std::fclose(f);
    if (failed) {
        *error = "cannot read " + path;
        return std::nullopt;
    }
    return text;
}

std::string check_cert_and_key(const std::string& cert_pem, const std::string& key_pem) {
    std::string problem;
    BIO* bio = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
    X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    bio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (cert == nullptr) {
        problem = "no PEM certificate in the cert file";
    } else if (key == nullptr) {
        problem = "no PEM private key in the key file";
    } else if (X509_check_private_key(cert, key) != 1) {
        problem = "the key does not match the certificate";
    }
    ERR_clear_error();
    X509_free(cert);
    EVP_PKEY_free(key);
    return problem;
}

bool check_ca_bundle(const std::string& pem) {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    ERR_clear_error();
    const bool ok = cert != nullptr;
    X509_free(cert);
    return ok;
}

}  // namespace sy
