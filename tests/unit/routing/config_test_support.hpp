// Shared by the configuration tests: load a whole file from a string, and compare its
// errors (ConfigError::to_string() without the leading "t.yaml:") as tables of cases.
#pragma once

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "routing/config_loader.hpp"

namespace sy::config_test {

// The file must load without an error; its configuration.
inline Config load_ok(const std::string& yaml) {
    ConfigResult result = load_config_string(yaml, "t.yaml");
    for (const ConfigError& error : result.errors) {
        CAPTURE(error.to_string());
        CHECK(false);
    }
    REQUIRE(result.config.has_value());
    return std::move(*result.config);
}

inline std::vector<std::string> errors_of(const std::string& yaml) {
    const ConfigResult result = load_config_string(yaml, "t.yaml");
    CHECK(result.config.has_value() == result.errors.empty());
    std::vector<std::string> errors;
    for (const ConfigError& error : result.errors) {
        CHECK(error.file == "t.yaml");
        std::string text = error.to_string();
        REQUIRE(text.starts_with("t.yaml:"));
        errors.push_back(text.substr(7));
    }
    return errors;
}

struct Case {
    std::string name;
    std::string yaml;
    std::vector<std::string> errors;
};

// One error a line, so that a mismatch prints readably.
inline std::string lines(const std::vector<std::string>& errors) {
    std::string text;
    for (const std::string& error : errors) {
        text += error;
        text += '\n';
    }
    return text;
}

inline void run(const std::vector<Case>& cases) {
    for (const Case& c : cases) {
        CAPTURE(c.name);
        CAPTURE(c.yaml);
        CHECK(lines(errors_of(c.yaml)) == lines(c.errors));
    }
}

}  // namespace sy::config_test
