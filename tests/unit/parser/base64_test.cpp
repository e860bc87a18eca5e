// Base64 (parser/base64.hpp) against RFC 4648: the §10 test vectors both ways, the §4
// alphabet, and the strict reading the header promises: alphabet only, '=' only as the
// padding of the last group (§3.2, §4), zero pad bits (§3.5), nothing after the padding,
// and a message that must end on a whole group. The decoder is fed every split of its input.
#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "parser/base64.hpp"

namespace sy {
namespace {

constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string encode(std::string_view in) {
    std::string out(base64_encoded_size(in.size()), '\0');
    base64_encode(in.data(), in.size(), out.data());
    return out;
}

// Decodes `text` fed in pieces cut at `cuts`; nullopt when the decoder refuses it. Each piece
// gets exactly the output room the header asks for, and must not be told it wrote more.
std::optional<std::string> decode(std::string_view text, const std::vector<std::size_t>& cuts, std::string* note = nullptr) {
    Base64Decoder d;
    std::string out;
    std::size_t begin = 0;
    std::vector<std::size_t> ends = cuts;
    ends.push_back(text.size());
    bool failed = false;
    for (std::size_t end : ends) {
        const std::size_t n = end - begin;
        const std::size_t room = (n + 3) / 4 * 3;
        std::vector<char> buf(room + 1);
        const std::ptrdiff_t r = d.decode(text.data() + begin, n, buf.data());
        begin = end;
        if (r < 0) {
            failed = true;
            continue;  // and later pieces must fail too
        }
        if (failed) {
            if (note) *note = "decode succeeded after a failure";
            return std::string("<decoded after failure>");
        }
        if (static_cast<std::size_t>(r) > room) {
            if (note) *note = "wrote more than (n + 3) / 4 * 3";
            return std::string("<overflow>");
        }
        out.append(buf.data(), static_cast<std::size_t>(r));
    }
    const bool finished = d.finish();
    if (failed && finished) {
        if (note) *note = "finish() true after a failure";
        return std::string("<finished after failure>");
    }
    if (failed || !finished) return std::nullopt;
    return out;
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
    out.push_back({0});
    out.push_back(every);
    return out;
}

std::string describe(const std::optional<std::string>& r) { return r ? "\"" + *r + "\"" : std::string("<invalid>"); }

// Checks `text` decodes to `want` (nullopt: refused) for every split; "" when it does.
std::string check_every_split(std::string_view text, const std::optional<std::string>& want) {
    for (const auto& cuts : all_splits(text.size())) {
        std::string note;
        const std::optional<std::string> got = decode(text, cuts, &note);
        if (!note.empty() || got != want) {
            std::string where;
            for (std::size_t c : cuts) where += std::to_string(c) + " ";
            return "cuts [" + where + "]: got " + describe(got) + " " + note;
        }
    }
    return "";
}

}  // namespace

TEST_CASE("RFC 4648 §10 test vectors, encoded") {
    CHECK(encode("") == "");
    CHECK(encode("f") == "Zg==");
    CHECK(encode("fo") == "Zm8=");
    CHECK(encode("foo") == "Zm9v");
    CHECK(encode("foob") == "Zm9vYg==");
    CHECK(encode("fooba") == "Zm9vYmE=");
    CHECK(encode("foobar") == "Zm9vYmFy");
    CHECK(base64_encoded_size(0) == 0);
    CHECK(base64_encoded_size(1) == 4);
    CHECK(base64_encoded_size(3) == 4);
    CHECK(base64_encoded_size(4) == 8);
    CHECK(base64_encoded_size(6) == 8);
}

TEST_CASE("encoding uses the whole §4 alphabet and high bytes") {
    CHECK(encode(std::string("\xFB\xEF\xBE", 3)) == "++++");
    CHECK(encode(std::string("\xFF\xFF\xFF", 3)) == "////");
    CHECK(encode(std::string("\xFB\xFF", 2)) == "+/8=");
    CHECK(encode(std::string("\x00\x00\x00", 3)) == "AAAA");
    CHECK(encode(std::string("\xFF", 1)) == "/w==");
    CHECK(encode(std::string("\x00", 1)) == "AA==");
    // every sextet value at every position of a group: 0x00 0x10 0x83 0x10 0x51 0x87 ... is
    // the alphabet in order
    std::string bytes;
    for (std::size_t i = 0; i < 64; i += 4) {
        const std::uint32_t v = (std::uint32_t(i) << 18) | (std::uint32_t(i + 1) << 12) | (std::uint32_t(i + 2) << 6) |
                                std::uint32_t(i + 3);
        bytes.push_back(static_cast<char>(v >> 16));
        bytes.push_back(static_cast<char>(v >> 8));
        bytes.push_back(static_cast<char>(v));
    }
    CHECK(encode(bytes) == kAlphabet);
}

TEST_CASE("encoding writes exactly base64_encoded_size characters") {
    for (std::size_t n = 0; n < 10; ++n) {
        CAPTURE(n);
        const std::string in(n, 'x');
        std::string out(base64_encoded_size(n) + 8, '#');
        base64_encode(in.data(), n, out.data());
        CHECK(out.substr(base64_encoded_size(n)) == std::string(8, '#'));
        CHECK(out.find('#') == base64_encoded_size(n));
    }
}

TEST_CASE("RFC 4648 §10 test vectors, decoded at every split") {
    const std::vector<std::pair<std::string, std::string>> vectors = {
        {"", ""},
        {"Zg==", "f"},
        {"Zm8=", "fo"},
        {"Zm9v", "foo"},
        {"Zm9vYg==", "foob"},
        {"Zm9vYmE=", "fooba"},
        {"Zm9vYmFy", "foobar"},
        {"++++", "\xFB\xEF\xBE"},
        {"////", "\xFF\xFF\xFF"},
        {"+/8=", "\xFB\xFF"},
        {"AAAA", std::string(3, '\0')},
        {"AA==", std::string(1, '\0')},
    };
    for (const auto& vector : vectors) {
        const std::string& text = vector.first;
        CAPTURE(text);
        CHECK(check_every_split(text, vector.second) == "");
    }
    CHECK(check_every_split(kAlphabet, [] {
              std::string bytes;
              for (std::size_t i = 0; i < 64; i += 4) {
                  const std::uint32_t v = (std::uint32_t(i) << 18) | (std::uint32_t(i + 1) << 12) |
                                          (std::uint32_t(i + 2) << 6) | std::uint32_t(i + 3);
                  bytes.push_back(static_cast<char>(v >> 16));
                  bytes.push_back(static_cast<char>(v >> 8));
                  bytes.push_back(static_cast<char>(v));
              }
              return bytes;
          }()) == "");
}

TEST_CASE("strict decoding refuses what is not base64, at every split") {
    const char* invalid[] = {
        // incomplete group at the end
        "Z", "Zg", "Zg=", "Zm9", "Zm9vY", "Zm9vYg", "Zm9vYg=", "Zm9vYmE",
        // '=' where it cannot be
        "=", "==", "===", "====", "Z===", "=Zg=", "Z=g=", "Zg=g", "Zm=v", "Zm9v=", "Zm9v====", "Zm9v=Zg=",
        // data after the padding
        "Zg==Zg==", "Zg==Zm9v", "Zm8=Zm9v", "Zg===", "Zm8==", "Zg==A", "Zm8=\n",
        // non-zero pad bits (RFC 4648 §3.5)
        "Zh==", "Zv==", "Zm9=", "Zm/=", "/x==", "AB==",
        // characters outside the alphabet (including base64url's and whitespace)
        "Zm9v\n", "Zm9v\r\n", "Zm 9v", " Zm9v", "Zm9v ", "Zm9-", "Zm9_", "Zm9v*AAA", "Zm9.", "Zm\t9v",
        "Z\xC3\xA9v", "Zm9\x80", "Zm9\xFF",
    };
    for (const char* text : invalid) {
        CAPTURE(text);
        CHECK(check_every_split(text, std::nullopt) == "");
    }
    // a NUL byte is not part of the alphabet either
    CHECK(check_every_split(std::string_view("Zm\0v", 4), std::nullopt) == "");
}

TEST_CASE("every padded last group: valid exactly when its pad bits are zero") {
    std::string mismatch;
    for (std::size_t a = 0; a < 64; ++a) {
        for (std::size_t b2 = 0; b2 < 64; ++b2) {
            const std::string two = {kAlphabet[a], kAlphabet[b2], '=', '='};
            const std::optional<std::string> want =
                (b2 & 0xF) != 0 ? std::nullopt : std::optional<std::string>(std::string(1, static_cast<char>((a << 2) | (b2 >> 4))));
            if (decode(two, {}) != want && mismatch.empty()) mismatch = two;
            for (std::size_t c = 0; c < 64; ++c) {
                const std::string three = {kAlphabet[a], kAlphabet[b2], kAlphabet[c], '='};
                const std::uint32_t v = (std::uint32_t(a) << 12) | (std::uint32_t(b2) << 6) | std::uint32_t(c);
                std::optional<std::string> want3;
                if ((c & 0x3) == 0) want3 = std::string{static_cast<char>(v >> 10), static_cast<char>(v >> 2)};
                if (decode(three, {}) != want3 && mismatch.empty()) mismatch = three;
                // an unpadded whole group is always 3 bytes
                for (std::size_t d = 0; d < 64; d += 21) {
                    const std::string four = {kAlphabet[a], kAlphabet[b2], kAlphabet[c], kAlphabet[d]};
                    const std::uint32_t w = (v << 6) | std::uint32_t(d);
                    const std::string want4 = {static_cast<char>(w >> 16), static_cast<char>(w >> 8), static_cast<char>(w)};
                    if (decode(four, {}) != want4 && mismatch.empty()) mismatch = four;
                }
            }
        }
    }
    CHECK(mismatch == "");
}

TEST_CASE("round trip of every length, every byte value") {
    std::string bytes;
    std::uint32_t x = 12345;
    for (std::size_t n = 0; n <= 300; ++n) {
        CAPTURE(n);
        const std::string text = encode(bytes);
        CHECK(text.size() == base64_encoded_size(n));
        CHECK(decode(text, {}) == bytes);
        if (n <= 40) CHECK(check_every_split(text, bytes) == "");
        x = x * 1103515245u + 12345u;
        bytes.push_back(static_cast<char>(x >> 16));
    }
    std::string all;
    for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
    CHECK(decode(encode(all), {}) == all);
}

TEST_CASE("a decoder reads message after message; a refusal lasts until finish") {
    Base64Decoder d;
    char out[16];
    CHECK(d.decode("Zm9v", 4, out) == 3);
    CHECK(std::string(out, 3) == "foo");
    CHECK(d.decode("Zg==", 4, out) == 1);
    CHECK(out[0] == 'f');
    CHECK(d.finish());
    // the next message starts from nothing: padding is allowed again
    CHECK(d.decode("Zm8=", 4, out) == 2);
    CHECK(std::string(out, 2) == "fo");
    CHECK(d.finish());
    // a cut-off group is not carried into the next message
    CHECK(d.decode("Zm", 2, out) == 0);
    CHECK_FALSE(d.finish());
    CHECK(d.decode("9v", 2, out) == 0);  // "9v" alone: an incomplete group
    CHECK_FALSE(d.finish());
    // a refusal: -1 for every later piece of the message, finish false, then a fresh start
    CHECK(d.decode("Z!", 2, out) == -1);
    CHECK(d.decode("Zm9v", 4, out) == -1);
    CHECK_FALSE(d.finish());
    CHECK(d.decode("Zm9v", 4, out) == 3);
    CHECK(d.finish());
    // an empty message
    CHECK(d.decode("", 0, out) == 0);
    CHECK(d.finish());
}

}  // namespace sy
