// Checks on the configuration's text that yaml-cpp 0.7 cannot be trusted with (found by
// fuzz_config_loader): bytes that are not printable UTF-8, and counting documents.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <yaml-cpp/mark.h>

#include "routing/config_loader.hpp"

namespace sy {

// YAML 1.2 §5.1: the first byte that is not printable UTF-8, as an error at its position
// (column in characters); nullopt when the text is fine.
std::optional<ConfigError> check_yaml_text(std::string_view text, const std::string& file);

// Where a second YAML document starts, if the text has one (parsing at most two).
std::optional<YAML::Mark> second_yaml_document(const std::string& text);

}  // namespace sy
