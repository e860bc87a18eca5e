// Token and list utilities for HTTP field values (RFC 9110 §5.6.1, §5.6.2).
// Pure functions over string_views; no allocation unless a function returns a container.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "parser/message.hpp"

namespace sy {

// ASCII case-insensitive equality.
bool iequals(std::string_view a, std::string_view b);
// ASCII lower-case copy.
std::string to_lower(std::string_view s);
// Strips optional whitespace (SP / HTAB) from both ends.
std::string_view trim_ows(std::string_view s);

// Splits a comma-separated list (#rule): elements are trimmed of OWS, empty elements are
// skipped. Quoted strings are respected (a comma inside "..." does not split).
std::vector<std::string_view> split_list(std::string_view value);

// True when the comma list `value` contains `token` (case-insensitive).
bool list_has_token(std::string_view value, std::string_view token);

// Joins the values of every field named `name` (case-insensitive) into one list, in order.
std::vector<std::string_view> collect_list(const HeaderList& headers, std::string_view name);

// Number of fields named `name` (case-insensitive).
std::size_t count_fields(const HeaderList& headers, std::string_view name);

// The first field named `name` (case-insensitive), or nullptr.
const HeaderField* find_field(const HeaderList& headers, std::string_view name);

// An RFC 9110 token character (tchar).
bool is_tchar(char c);

}  // namespace sy
