#include "parser/chunk_line.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace sy {
namespace {

struct Case {
    const char* line;
    bool ok;
    std::uint64_t size;
};

}  // namespace

TEST_CASE("chunk-size lines (RFC 9112 §7.1, §7.1.1)") {
    const std::vector<Case> cases = {
        {"0", true, 0},
        {"a", true, 10},
        {"1F", true, 31},
        {"0000010", true, 16},
        {"ffffffffffffffff", true, 0xffffffffffffffffULL},
        {"3;a", true, 3},
        {"3;a=b", true, 3},
        {"3 ;a=b", true, 3},
        {"3\t; a = b", true, 3},
        {"3 ; a = b ; c ; d=\"q\"", true, 3},
        {"3;a=\"\"", true, 3},
        {"3;a=\"x\\\"y\\\\z\"", true, 3},
        {"3;a=\"tab\there\"", true, 3},
        {"3;a=\"\x80\xff\"", true, 3},
        {"3;!#$%&'*+-.^_`|~=v", true, 3},
        // refused
        {"", false, 0},
        {" 3", false, 0},
        {"3 ", false, 0},
        {"3;a ", false, 0},
        {"3;a=b ", false, 0},
        {"3;", false, 0},
        {"3;;a", false, 0},
        {"3;=b", false, 0},
        {"3;a=", false, 0},
        {"3;a b", false, 0},
        {"3;a=b c", false, 0},
        {"3;a=\"b", false, 0},
        {"3;a=\"b\\\"", false, 0},
        {"3;a=\"b\x01\"", false, 0},
        {"3;a=\"b\"c", false, 0},
        {"3;a=@", false, 0},
        {"0x3", false, 0},
        {"-1", false, 0},
        {"+1", false, 0},
        {"3a g", false, 0},
        {"10000000000000000", false, 0},
        {"3,a", false, 0},
        {"3\r", false, 0},
    };
    for (const Case& c : cases) {
        const std::string line = c.line;
        CAPTURE(line);
        const ChunkLine r = parse_chunk_line(line);
        CHECK(r.ok == c.ok);
        if (c.ok) CHECK(r.size == c.size);
        if (!c.ok) CHECK(std::string(r.reason) != "");
    }
}

TEST_CASE("canonical chunk-size lines") {
    char out[24];
    const auto f = [&](std::uint64_t v) { return std::string(out, format_chunk_line(v, out)); };
    CHECK(f(0) == "0\r\n");
    CHECK(f(10) == "a\r\n");
    CHECK(f(0x1234abcd) == "1234abcd\r\n");
    CHECK(f(0xffffffffffffffffULL) == "ffffffffffffffff\r\n");
    for (std::uint64_t v : {1ULL, 255ULL, 4096ULL, 1ULL << 40}) {
        const std::string s = f(v);
        const ChunkLine back = parse_chunk_line(std::string_view(s).substr(0, s.size() - 2));
        CHECK(back.ok);
        CHECK(back.size == v);
    }
}

}  // namespace sy
