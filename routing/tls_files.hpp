// Reading TLS certificate and key files for the configuration: the PEM text, and whether
// the key matches the certificate (libcrypto only, no I/O beyond reading the files).
#pragma once

#include <optional>
#include <string>

namespace sy {

// The file's content, or nullopt with `error` ("cannot read FILE: reason").
std::optional<std::string> read_text_file(const std::string& path, std::string* error);

// Checks a PEM certificate chain and a PEM private key: empty when they are usable and the
// key belongs to the first certificate, else why not.
std::string check_cert_and_key(const std::string& cert_pem, const std::string& key_pem);

// True when `pem` holds at least one PEM certificate (a CA bundle).
bool check_ca_bundle(const std::string& pem);

}  // namespace sy
