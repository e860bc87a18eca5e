// Internal to the config loader: typed reads from yaml-cpp nodes that report every problem
// as a ConfigError at the node's position instead of throwing. Not a public interface.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "routing/config.hpp"
#include "routing/config_loader.hpp"

namespace sy::config_detail {

// A value read from the file, with what is needed to point at it in an error.
struct Entry {
    std::string key;     // the map key, or for a list item the list's key
    YAML::Node key_node;  // the key (for a list item: the list); used when `value` is empty
    YAML::Node value;

    // Where an error about the value points: the value, or the key when the value is
    // empty (yaml-cpp places an empty value at the start of the next token).
    YAML::Mark value_mark() const;
};

// The known keys present in a map, first occurrence of each.
class Fields {
public:
    const Entry* find(std::string_view key) const;
    void add(Entry entry) { entries_.push_back(std::move(entry)); }

private:
    std::vector<Entry> entries_;
};

// The closest of `candidates` to `word` within edit distance 2 (case-insensitive), or
// an empty view.
std::string_view closest_match(std::string_view word, const std::vector<std::string_view>& candidates);

class Reader {
public:
    explicit Reader(std::string file) : file_(std::move(file)) {}

    void error(const YAML::Mark& mark, std::string message);
    bool has_errors() const { return !errors_.empty(); }
    // Every error, in file order (errors without a position first).
    std::vector<ConfigError> take_sorted_errors();

    // The entries of `map` (which must be a map), reporting non-scalar and duplicate keys.
    std::vector<Entry> entries(const YAML::Node& map);
    // Like entries(), and also reports keys not in `known` (with a did-you-mean).
    Fields fields(const YAML::Node& map, std::initializer_list<std::string_view> known);
    // Reports "missing required key" at `map` when `fields` lacks `key`.
    const Entry* required(const Fields& fields, const YAML::Node& map, std::string_view key);

    // Type checks: report "expected a map/list for 'key', got ..." and return false.
    bool expect_map(const Entry& entry);
    bool expect_list(const Entry& entry);
    // The items of a list entry, each as an Entry named after the list.
    std::vector<Entry> items(const Entry& list);

    // Scalar readers; each reports its own error and returns nullopt on failure.
    std::optional<std::string> scalar(const Entry& entry);
    std::optional<bool> boolean(const Entry& entry);
    // A decimal integer in [min, max].
    std::optional<std::uint64_t> integer(const Entry& entry, std::uint64_t min, std::uint64_t max);
    // A duration, > 0 unless `allow_zero`.
    std::optional<Millis> duration(const Entry& entry, bool allow_zero = false);
    // A size of at least `min` bytes; `min_text` is how `min` reads in the error.
    std::optional<std::size_t> size(const Entry& entry, std::size_t min, std::string_view min_text);
    std::optional<Address> address(const Entry& entry);
    // The index of the value in `allowed`; the error lists them.
    std::optional<std::size_t> choice(const Entry& entry, std::initializer_list<std::string_view> allowed);

private:
    std::string file_;
    std::vector<ConfigError> errors_;
};

// "a map", "a list", "'text'" or "nothing": how a node reads in "got ..." messages.
std::string describe(const YAML::Node& node);
// Joins with ", ".
std::string join(std::initializer_list<std::string_view> words);
// 'text', for messages.
std::string quoted(std::string_view text);

}  // namespace sy::config_detail
