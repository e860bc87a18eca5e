// Loading and validating the YAML configuration. Every error carries FILE:LINE:COLUMN
// (1-based, from yaml-cpp's marks). yaml-cpp exceptions never escape this module.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "routing/config.hpp"

namespace sy {

struct ConfigError {
    std::string file;
    int line = 0;    // 1-based; 0 when the error has no position (e.g. unreadable file)
    int column = 0;  // 1-based
    std::string message;
    // "FILE:LINE:COL: message" (or "FILE: message" without a position)
    std::string to_string() const;
};

struct ConfigResult {
    std::optional<Config> config;     // set when there are no errors
    std::vector<ConfigError> errors;  // every error found, in file order
};

// Reads and validates the file at `path`.
ConfigResult load_config_file(const std::string& path);
// Validates YAML text; `file` names it in errors.
ConfigResult load_config_string(std::string_view yaml, const std::string& file);

}  // namespace sy
