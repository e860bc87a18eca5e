#include "routing/yaml_reader.hpp"

#include <algorithm>
#include <cctype>

#include "parser/tokens.hpp"
#include "routing/units.hpp"

namespace sy::config_detail {
namespace {

// Optimal string alignment distance (Levenshtein plus adjacent transpositions),
// case-insensitive.
std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) {
        d[i][0] = i;
    }
    for (std::size_t j = 0; j <= b.size(); ++j) {
        d[0][j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = ascii_lower(a[i - 1]) == ascii_lower(b[j - 1]) ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && ascii_lower(a[i - 1]) == ascii_lower(b[j - 2]) &&
                ascii_lower(a[i - 2]) == ascii_lower(b[j - 1])) {
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
            }
        }
    }
    return d[a.size()][b.size()];
}


}  // namespace

std::string quoted(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 2);
    out += '\'';
    out += text;
    out += '\'';
    return out;
}

YAML::Mark Entry::value_mark() const {
    if (value && !value.IsNull() && value.Mark().line >= 0) {
        return value.Mark();
    }
    return key_node.Mark();
}

const Entry* Fields::find(std::string_view key) const {
    for (const Entry& entry : entries_) {
        if (entry.key == key) {
            return &entry;
        }
    }
    return nullptr;
}

std::string_view closest_match(std::string_view word,
                               const std::vector<std::string_view>& candidates) {
    std::string_view best;
    std::size_t best_distance = 3;
    for (std::string_view candidate : candidates) {
        const std::size_t distance = edit_distance(word, candidate);
        if (distance < best_distance) {
            best = candidate;
            best_distance = distance;
        }
    }
    return best;
}

std::string describe(const YAML::Node& node) {
    if (!node || node.IsNull()) {
        return "nothing";
    }
    if (node.IsMap()) {
        return "a map";
    }
    if (node.IsSequence()) {
        return "a list";
    }
    return quoted(node.Scalar());
}

std::string join(std::initializer_list<std::string_view> words) {
    std::string out;
    for (std::string_view word : words) {
        if (!out.empty()) {
            out += ", ";
        }
        out += word;
    }
    return out;
}

void Reader::error(const YAML::Mark& mark, std::string message) {
    ConfigError error;
    error.file = file_;
    if (mark.line >= 0 && mark.column >= 0) {
        error.line = mark.line + 1;
        error.column = mark.column + 1;
    }
    error.message = std::move(message);
    errors_.push_back(std::move(error));
}

std::vector<ConfigError> Reader::take_sorted_errors() {
    std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
        return a.line != b.line ? a.line < b.line : a.column < b.column;
    });
    return std::move(errors_);
}

std::vector<Entry> Reader::entries(const YAML::Node& map) {
    std::vector<Entry> result;
    for (const auto& pair : map) {
        const YAML::Node key = pair.first;  // copies: yaml-cpp iterators yield temporaries
        if (!key.IsScalar()) {
            error(key.Mark(), "expected a name as the key, got " + describe(key));
            continue;
        }
        const bool duplicate = std::any_of(result.begin(), result.end(), [&](const Entry& seen) {
            return seen.key == key.Scalar();
        });
        if (duplicate) {
            error(key.Mark(), "duplicate key " + quoted(key.Scalar()));
            continue;
        }
        result.push_back(Entry{key.Scalar(), key, pair.second});
    }
    return result;
}

Fields Reader::fields(const YAML::Node& map, std::initializer_list<std::string_view> known) {
    Fields fields;
    const std::vector<std::string_view> known_keys(known);
    for (Entry& entry : entries(map)) {
        if (std::find(known_keys.begin(), known_keys.end(), entry.key) != known_keys.end()) {
            fields.add(std::move(entry));
            continue;
        }
        std::string message = "unknown key " + quoted(entry.key);
        const std::string_view suggestion = closest_match(entry.key, known_keys);
        if (!suggestion.empty()) {
            message += " (did you mean " + quoted(suggestion) + "?)";
        } else {
            message += " (expected one of: " + join(known) + ")";
        }
        error(entry.key_node.Mark(), std::move(message));
    }
    return fields;
}

const Entry* Reader::required(const Fields& fields, const YAML::Node& map, std::string_view key) {
    const Entry* entry = fields.find(key);
    if (entry == nullptr) {
        error(map.Mark(), "missing required key " + quoted(key));
    }
    return entry;
}

bool Reader::expect_map(const Entry& entry) {
    if (entry.value.IsMap()) {
        return true;
    }
    error(entry.value_mark(), "expected a map for " + quoted(entry.key) + ", got " + describe(entry.value));
    return false;
}

bool Reader::expect_list(const Entry& entry) {
    if (entry.value.IsSequence()) {
        return true;
    }
    error(entry.value_mark(),
          "expected a list for " + quoted(entry.key) + ", got " + describe(entry.value));
    return false;
}

std::vector<Entry> Reader::items(const Entry& list) {
    std::vector<Entry> result;
    for (const YAML::Node& item : list.value) {
        result.push_back(Entry{list.key, list.value, item});
    }
    return result;
}

std::optional<std::string> Reader::scalar(const Entry& entry) {
    if (entry.value.IsScalar()) {
        return entry.value.Scalar();
    }
    error(entry.value_mark(),
          "expected a value for " + quoted(entry.key) + ", got " + describe(entry.value));
    return std::nullopt;
}

std::optional<bool> Reader::boolean(const Entry& entry) {
    const auto text = scalar(entry);
    if (!text) {
        return std::nullopt;
    }
    if (*text == "true") {
        return true;
    }
    if (*text == "false") {
        return false;
    }
    error(entry.value_mark(),
          "invalid value " + quoted(*text) + " for " + quoted(entry.key) + " (expected true or false)");
    return std::nullopt;
}

std::optional<std::uint64_t> Reader::integer(const Entry& entry, std::uint64_t min, std::uint64_t max) {
    const auto text = scalar(entry);
    if (!text) {
        return std::nullopt;
    }
    std::optional<std::uint64_t> value;
    if (!text->empty() && text->size() <= 20 &&
        std::all_of(text->begin(), text->end(), [](char c) { return c >= '0' && c <= '9'; })) {
        try {
            value = std::stoull(*text);
        } catch (const std::exception&) {  // out of range
        }
    }
    if (value && *value >= min && *value <= max) {
        return value;
    }
    std::string expected = "an integer >= " + std::to_string(min);
    const bool unbounded = max == UINT64_MAX || max == UINT32_MAX;
    if (!unbounded || (value && *value > max)) {
        expected = "an integer from " + std::to_string(min) + " to " + std::to_string(max);
    }
    error(entry.value_mark(),
          "invalid value " + quoted(*text) + " for " + quoted(entry.key) + " (expected " + expected + ")");
    return std::nullopt;
}

std::optional<Millis> Reader::duration(const Entry& entry, bool allow_zero) {
    const auto text = scalar(entry);
    if (!text) {
        return std::nullopt;
    }
    const auto value = parse_duration(*text);
    if (!value) {
        error(entry.value_mark(), "invalid duration " + quoted(*text) +
                                      " (expected a number with a unit: ms, s, m, h)");
        return std::nullopt;
    }
    if (!allow_zero && value->count() == 0) {
        error(entry.value_mark(), quoted(entry.key) + " must be greater than 0");
        return std::nullopt;
    }
    return value;
}

std::optional<std::size_t> Reader::size(const Entry& entry, std::size_t min, std::string_view min_text) {
    const auto text = scalar(entry);
    if (!text) {
        return std::nullopt;
    }
    const auto value = parse_size(*text);
    if (!value) {
        error(entry.value_mark(),
              "invalid size " + quoted(*text) +
                  " (expected bytes as an integer, or a number with a unit: B, KiB, MiB, GiB, KB, MB, GB)");
        return std::nullopt;
    }
    if (*value < min) {
        error(entry.value_mark(), quoted(entry.key) + " must be at least " + std::string(min_text) +
                                      ", got " + quoted(*text));
        return std::nullopt;
    }
    return value;
}

std::optional<Address> Reader::address(const Entry& entry) {
    const auto text = scalar(entry);
    if (!text) {
        return std::nullopt;
    }
    auto value = parse_address(*text);
    if (!value) {
        error(entry.value_mark(), "invalid address " + quoted(*text) +
                                      " (expected host:port or [v6]:port, port 0-65535)");
    }
    return value;
}

std::optional<std::size_t> Reader::choice(const Entry& entry,
                                          std::initializer_list<std::string_view> allowed) {
    const auto text = scalar(entry);
    if (!text) {
        return std::nullopt;
    }
    std::size_t index = 0;
    for (std::string_view option : allowed) {
        if (*text == option) {
            return index;
        }
        ++index;
    }
    error(entry.value_mark(), "invalid " + entry.key + " " + quoted(*text) +
                                  " (expected one of: " + join(allowed) + ")");
    return std::nullopt;
}

}  // namespace sy::config_detail
