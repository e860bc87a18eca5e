// The incremental UTF-8 validator (parser/utf8.hpp) against RFC 3629 §3-§4: no overlong
// forms, no surrogates (U+D800-U+DFFF), nothing above U+10FFFF, and a failure reported as soon
// as the bytes seen so far cannot begin valid UTF-8 (what RFC 6455 §8.1 asks of a WebSocket
// endpoint). The tables follow Markus Kuhn's UTF-8 decoder stress test, the source of
// Autobahn's case 6.x; the exhaustive checks compare with a decoder written here from
// RFC 3629's bit patterns (decode, then reject what the RFC forbids).
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "parser/utf8.hpp"

namespace sy {
namespace {

enum class Expect { valid, invalid, truncated };

struct Case {
    const char* name;
    std::string bytes;
    Expect expect;
    std::size_t fail_at = 0;  // invalid: index of the first byte after which no valid UTF-8 can follow
};

std::string b(std::initializer_list<int> bytes) {
    std::string s;
    for (int v : bytes) s.push_back(static_cast<char>(v));
    return s;
}

// RFC 3629 §3: encodes a scalar value (the encoder is the RFC's table, not the validator's).
std::string encode(std::uint32_t cp) {
    std::string s;
    if (cp < 0x80) {
        s.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        s.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        s.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        s.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    return s;
}

// Reference: can `s` be the beginning of valid UTF-8 (complete = must it be whole)? Each
// sequence's length comes from its lead byte's bit pattern; a whole sequence is decoded and
// must be the shortest form of a scalar value <= U+10FFFF outside the surrogates. A cut-off
// last sequence is accepted (prefix mode) when some continuation could still make it valid:
// the values it can still reach form one interval, which must meet the allowed ones.
bool reference_ok(std::string_view s, bool complete) {
    static constexpr std::uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    std::size_t i = 0;
    while (i < s.size()) {
        const auto lead = static_cast<unsigned char>(s[i]);
        std::size_t n;
        std::uint32_t cp;
        if ((lead & 0x80) == 0) {
            ++i;
            continue;
        } else if ((lead & 0xE0) == 0xC0) {
            n = 2;
            cp = lead & 0x1F;
        } else if ((lead & 0xF0) == 0xE0) {
            n = 3;
            cp = lead & 0x0F;
        } else if ((lead & 0xF8) == 0xF0) {
            n = 4;
            cp = lead & 0x07;
        } else {
            return false;
        }
        std::size_t have = 1;
        for (; have < n && i + have < s.size(); ++have) {
            const auto c = static_cast<unsigned char>(s[i + have]);
            if ((c & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (c & 0x3F);
        }
        const std::size_t missing = n - have;
        if (missing != 0 && complete) return false;
        const std::uint32_t lo = cp << (6 * missing);
        const std::uint32_t hi = lo | ((1u << (6 * missing)) - 1);
        // [lo, hi] meets [kMin[n], 0x10FFFF] minus [0xD800, 0xDFFF]?
        const std::uint32_t a = std::max(lo, kMin[n]);
        const std::uint32_t z = std::min(hi, std::uint32_t{0x10FFFF});
        if (a > z) return false;
        if (a >= 0xD800 && z <= 0xDFFF) return false;
        i += have;
    }
    return true;
}

const std::vector<Case>& cases() {
    static const std::vector<Case> table = {
        // valid (Kuhn 1, 2.1-2.3)
        {"empty", "", Expect::valid},
        {"ASCII", "Hello, World!", Expect::valid},
        {"U+0000", b({0x00}), Expect::valid},
        {"U+007F", b({0x7F}), Expect::valid},
        {"U+0080 (first 2-byte)", b({0xC2, 0x80}), Expect::valid},
        {"U+07FF (last 2-byte)", b({0xDF, 0xBF}), Expect::valid},
        {"U+0800 (first 3-byte)", b({0xE0, 0xA0, 0x80}), Expect::valid},
        {"U+D7FF (before surrogates)", b({0xED, 0x9F, 0xBF}), Expect::valid},
        {"U+E000 (after surrogates)", b({0xEE, 0x80, 0x80}), Expect::valid},
        {"U+FFFD", b({0xEF, 0xBF, 0xBD}), Expect::valid},
        {"U+FFFE (noncharacter, still UTF-8)", b({0xEF, 0xBF, 0xBE}), Expect::valid},
        {"U+FFFF", b({0xEF, 0xBF, 0xBF}), Expect::valid},
        {"U+FDD0 (noncharacter)", b({0xEF, 0xB7, 0x90}), Expect::valid},
        {"U+10000 (first 4-byte)", b({0xF0, 0x90, 0x80, 0x80}), Expect::valid},
        {"U+10FFFF (last)", b({0xF4, 0x8F, 0xBF, 0xBF}), Expect::valid},
        {"kosme (Kuhn 1)", b({0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5}), Expect::valid},
        {"mixed", "a\xC3\xA9" "b\xE2\x82\xAC" "c\xF0\x9D\x84\x9E" "d", Expect::valid},
        {"Hello-µ@ßöäüàá-UTF-8!! (Autobahn 6.2)",
         "Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!", Expect::valid},
        // 3.1 unexpected continuation bytes
        {"lone 0x80", b({0x80}), Expect::invalid, 0},
        {"lone 0xBF", b({0xBF}), Expect::invalid, 0},
        {"0x80 0xBF", b({0x80, 0xBF}), Expect::invalid, 0},
        {"ASCII then stray continuation", b({'a', 'b', 0x80}), Expect::invalid, 2},
        {"continuation after a whole 2-byte", b({0xC3, 0xA9, 0xA9}), Expect::invalid, 2},
        {"continuation after a whole 4-byte", b({0xF0, 0x90, 0x80, 0x80, 0x80}), Expect::invalid, 4},
        // 3.2 lonely start characters followed by a space
        {"C2 then space", b({0xC2, 0x20}), Expect::invalid, 1},
        {"DF then space", b({0xDF, 0x20}), Expect::invalid, 1},
        {"E1 then space", b({0xE1, 0x20}), Expect::invalid, 1},
        {"E1 80 then space", b({0xE1, 0x80, 0x20}), Expect::invalid, 2},
        {"F1 then space", b({0xF1, 0x20}), Expect::invalid, 1},
        {"F1 80 80 then space", b({0xF1, 0x80, 0x80, 0x20}), Expect::invalid, 3},
        {"start then start", b({0xC3, 0xC3, 0xA9}), Expect::invalid, 1},
        {"F8 (5-byte lead)", b({0xF8, 0x88, 0x80, 0x80, 0x80}), Expect::invalid, 0},
        {"FC (6-byte lead)", b({0xFC, 0x84, 0x80, 0x80, 0x80, 0x80}), Expect::invalid, 0},
        // 3.3 / 3.4 / 3.5: cut-off sequences at the end, impossible bytes
        {"C2 at end", b({0xC2}), Expect::truncated},
        {"DF at end", b({0xDF}), Expect::truncated},
        {"E2 82 at end", b({0xE2, 0x82}), Expect::truncated},
        {"EF BF at end", b({0xEF, 0xBF}), Expect::truncated},
        {"ED 9F at end (still U+D7C0..U+D7FF)", b({0xED, 0x9F}), Expect::truncated},
        {"F0 90 80 at end", b({0xF0, 0x90, 0x80}), Expect::truncated},
        {"F4 8F BF at end", b({0xF4, 0x8F, 0xBF}), Expect::truncated},
        {"text then E2 at end", b({'a', 'b', 'c', 0xE2}), Expect::truncated},
        {"F5", b({0xF5, 0x80, 0x80, 0x80}), Expect::invalid, 0},
        {"F7 BF BF BF (U+1FFFFF)", b({0xF7, 0xBF, 0xBF, 0xBF}), Expect::invalid, 0},
        {"FE", b({0xFE}), Expect::invalid, 0},
        {"FF", b({0xFF}), Expect::invalid, 0},
        {"FE FE FF FF", b({0xFE, 0xFE, 0xFF, 0xFF}), Expect::invalid, 0},
        {"all lead bytes cut off (Kuhn 3.4)", b({0xC0, 0xE0, 0x80, 0xF0, 0x80, 0x80}), Expect::invalid, 0},
        // 4.1-4.3 overlong forms
        {"overlong '/' C0 AF", b({0xC0, 0xAF}), Expect::invalid, 0},
        {"overlong '/' E0 80 AF", b({0xE0, 0x80, 0xAF}), Expect::invalid, 1},
        {"overlong '/' F0 80 80 AF", b({0xF0, 0x80, 0x80, 0xAF}), Expect::invalid, 1},
        {"overlong NUL C0 80", b({0xC0, 0x80}), Expect::invalid, 0},
        {"overlong NUL E0 80 80", b({0xE0, 0x80, 0x80}), Expect::invalid, 1},
        {"overlong NUL F0 80 80 80", b({0xF0, 0x80, 0x80, 0x80}), Expect::invalid, 1},
        {"max overlong C1 BF", b({0xC1, 0xBF}), Expect::invalid, 0},
        {"max overlong E0 9F BF", b({0xE0, 0x9F, 0xBF}), Expect::invalid, 1},
        {"max overlong F0 8F BF BF", b({0xF0, 0x8F, 0xBF, 0xBF}), Expect::invalid, 1},
        // 5.1 / 5.2 surrogates
        {"U+D800 ED A0 80", b({0xED, 0xA0, 0x80}), Expect::invalid, 1},
        {"U+DB7F ED AD BF", b({0xED, 0xAD, 0xBF}), Expect::invalid, 1},
        {"U+DB80 ED AE 80", b({0xED, 0xAE, 0x80}), Expect::invalid, 1},
        {"U+DBFF ED AF BF", b({0xED, 0xAF, 0xBF}), Expect::invalid, 1},
        {"U+DC00 ED B0 80", b({0xED, 0xB0, 0x80}), Expect::invalid, 1},
        {"U+DF80 ED BE 80", b({0xED, 0xBE, 0x80}), Expect::invalid, 1},
        {"U+DFFF ED BF BF", b({0xED, 0xBF, 0xBF}), Expect::invalid, 1},
        {"paired surrogates", b({0xED, 0xA0, 0x80, 0xED, 0xB0, 0x80}), Expect::invalid, 1},
        {"surrogate after text", b({'x', 0xED, 0xB0, 0x80}), Expect::invalid, 2},
        // above U+10FFFF
        {"U+110000 F4 90 80 80", b({0xF4, 0x90, 0x80, 0x80}), Expect::invalid, 1},
        {"F4 BF BF BF", b({0xF4, 0xBF, 0xBF, 0xBF}), Expect::invalid, 1},
        // Autobahn 6.3.1 / 6.4.x: fail fast inside otherwise good text
        {"kosme with ED A0 80 then edited (6.3.1)",
         b({0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80, 0x65, 0x64, 0x69,
            0x74, 0x65, 0x64}),
         Expect::invalid, 12},
        {"kosme with F4 90 80 80 (6.4.1)",
         b({0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xF4, 0x90, 0x80, 0x80, 0x65, 0x64,
            0x69, 0x74, 0x65, 0x64}),
         Expect::invalid, 12},
        {"invalid continuation in a 4-byte", b({0xF0, 0x90, 0x80, 0x41}), Expect::invalid, 3},
        {"invalid continuation in a 3-byte", b({0xE2, 0x41, 0x82}), Expect::invalid, 1},
    };
    return table;
}

// Feeds c.bytes cut at `cuts` and returns a description of the first difference from the
// expectation ("" when none).
std::string check_split(const Case& c, const std::vector<std::size_t>& cuts) {
    Utf8Validator v;
    std::size_t begin = 0;
    std::vector<std::size_t> ends = cuts;
    ends.push_back(c.bytes.size());
    for (std::size_t end : ends) {
        const bool got = v.feed(c.bytes.data() + begin, end - begin);
        const bool want = c.expect != Expect::invalid || end <= c.fail_at;
        if (got != want) {
            return "piece [" + std::to_string(begin) + "," + std::to_string(end) + ") feed " + (got ? "true" : "false");
        }
        begin = end;
    }
    if (v.complete() != (c.expect == Expect::valid)) return std::string("complete() ") + (v.complete() ? "true" : "false");
    return "";
}

std::vector<std::vector<std::size_t>> all_splits(std::size_t n) {
    std::vector<std::vector<std::size_t>> out;
    out.push_back({});
    std::vector<std::size_t> every;
    for (std::size_t i = 1; i < n; ++i) {
        every.push_back(i);
        out.push_back({i});
        for (std::size_t j = i + 1; j < n; ++j) out.push_back({i, j});
    }
    // cut at zero-length pieces too: empty feeds change nothing
    out.push_back({0, 0});
    out.push_back({n, n});
    out.push_back(every);
    return out;
}

}  // namespace

TEST_CASE("UTF-8 validity tables (RFC 3629 §4, Kuhn's stress test), split at every byte") {
    for (const Case& c : cases()) {
        CAPTURE(c.name);
        // the table agrees with the reference decoder written from RFC 3629
        CHECK(reference_ok(c.bytes, true) == (c.expect == Expect::valid));
        CHECK(reference_ok(c.bytes, false) == (c.expect != Expect::invalid));
        if (c.expect == Expect::invalid) {
            CHECK(reference_ok(c.bytes.substr(0, c.fail_at), false));
            CHECK_FALSE(reference_ok(c.bytes.substr(0, c.fail_at + 1), false));
        }
        CHECK(is_valid_utf8(c.bytes) == (c.expect == Expect::valid));
        std::string first_mismatch;
        for (const auto& cuts : all_splits(c.bytes.size())) {
            first_mismatch = check_split(c, cuts);
            if (!first_mismatch.empty()) {
                std::string where;
                for (std::size_t cut : cuts) where += std::to_string(cut) + " ";
                first_mismatch += " with cuts at " + where;
                break;
            }
        }
        CHECK(first_mismatch == "");
    }
}

TEST_CASE("a failed validator stays failed; reset starts over") {
    Utf8Validator v;
    CHECK_FALSE(v.feed("\xC0\xAF", 2));
    CHECK_FALSE(v.feed("abc", 3));
    CHECK_FALSE(v.feed("", 0));
    CHECK_FALSE(v.complete());
    v.reset();
    CHECK(v.complete());
    CHECK(v.feed("abc", 3));
    CHECK(v.feed("\xE2\x82", 2));
    CHECK_FALSE(v.complete());
    v.reset();  // a cut-off character is forgotten too
    CHECK(v.feed("\xAC", 1) == false);
    v.reset();
    CHECK(v.feed("\xE2\x82\xAC", 3));
    CHECK(v.complete());
}

TEST_CASE("long ASCII runs with one non-ASCII byte at every offset (word-at-a-time paths)") {
    for (std::size_t len : {7u, 8u, 9u, 15u, 16u, 17u, 31u, 40u}) {
        for (std::size_t at = 0; at < len; ++at) {
            CAPTURE(len);
            CAPTURE(at);
            std::string s(len, 'a');
            // a bad byte at `at`
            s[at] = '\xFF';
            CHECK_FALSE(is_valid_utf8(s));
            {
                Utf8Validator v;
                CHECK(v.feed(s.data(), at));
                CHECK_FALSE(v.feed(s.data() + at, len - at));
            }
            // a stray continuation
            s[at] = '\x80';
            CHECK_FALSE(is_valid_utf8(s));
            // a whole 3-byte character inserted at `at`
            std::string t(len, 'a');
            t.insert(at, "\xE2\x82\xAC");
            CHECK(is_valid_utf8(t));
            // a character cut off at the end of a long run
            std::string u(len, 'a');
            u += "\xF0\x9F\x98";
            Utf8Validator v;
            CHECK(v.feed(u));
            CHECK_FALSE(v.complete());
            CHECK(v.feed("\x80", 1));
            CHECK(v.complete());
            // an overlong form after a long run
            std::string w(len, 'a');
            w.insert(at, "\xE0\x80\x80");
            CHECK_FALSE(is_valid_utf8(w));
        }
    }
}

TEST_CASE("every scalar value encoded per RFC 3629 is valid; every surrogate is not") {
    std::vector<std::uint32_t> wrong;
    for (std::uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
        const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        if (is_valid_utf8(encode(cp)) == surrogate) wrong.push_back(cp);
        if (wrong.size() > 10) break;
    }
    const std::uint32_t first_wrong = wrong.empty() ? 0 : wrong.front();
    CAPTURE(first_wrong);
    CHECK(wrong.empty());
}

TEST_CASE("exhaustive short inputs against the reference decoder, whole and as a prefix") {
    // every 1- and 2-byte input; every 3-byte input led by C0..FF with continuation-range
    // and boundary bytes; 4-byte inputs led by F0..F7 with boundary bytes after
    const int edges[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0xFF};
    std::string mismatch;
    const auto check = [&](const std::string& s) {
        Utf8Validator v;
        const bool fed = v.feed(s);
        if (is_valid_utf8(s) != reference_ok(s, true) || fed != reference_ok(s, false) ||
            v.complete() != reference_ok(s, true)) {
            if (mismatch.empty()) {
                for (char c : s) mismatch += std::to_string(static_cast<unsigned char>(c)) + " ";
            }
        }
    };
    for (int x = 0; x < 256; ++x) {
        check(b({x}));
        for (int y = 0; y < 256; ++y) check(b({x, y}));
    }
    for (int x = 0xC0; x < 256; ++x) {
        for (int y = 0x70; y < 0xD0; ++y) {
            for (int z = 0x70; z < 0xD0; ++z) check(b({x, y, z}));
        }
    }
    for (int x = 0xF0; x < 0xF8; ++x) {
        for (int y = 0; y < 256; ++y) {
            for (int z : edges) {
                for (int w : edges) check(b({x, y, z, w}));
            }
        }
    }
    CHECK(mismatch == "");
}

}  // namespace sy
