// The access log's two formats (docs/operations.md, "Access log"), as tables.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "proxy/ops/log_format.hpp"

using namespace sy;

namespace {

std::string json(std::string_view bytes) {
    std::string out;
    append_json_string(out, bytes);
    return out;
}

AccessRecord exchange() {
    AccessRecord r;
    r.client = "127.0.0.1";
    r.method = "GET";
    r.target = "/a?b=c";
    r.status = 200;
    r.route = "api";
    r.upstream = "app";
    r.server = "127.0.0.1:9001";
    r.bytes_in = 27;
    r.bytes_out = 40;
    r.request_ms = 0.412;
    r.end = "ok";
    return r;
}

}  // namespace

TEST_CASE("JSON strings are valid JSON whatever the bytes") {
    struct Case {
        std::string_view name;
        std::string bytes;
        std::string_view expected;
    };
    const std::vector<Case> cases = {
        {"plain ASCII", "/chat?room=1", R"("/chat?room=1")"},
        {"empty", "", R"("")"},
        {"quote and backslash", "a\"b\\c", R"("a\"b\\c")"},
        {"named controls", "\n\r\t", R"("\n\r\t")"},
        {"other controls and DEL", std::string("\x01\x1f\x7f", 3), R"("\u0001\u001f\u007f")"},
        {"NUL", std::string("a\0b", 3), R"("a\u0000b")"},
        {"valid 2-byte UTF-8", "caf\xc3\xa9", "\"caf\xc3\xa9\""},
        {"valid 3-byte UTF-8", "\xe2\x82\xac", "\"\xe2\x82\xac\""},
        {"valid 4-byte UTF-8", "\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\""},
        {"a lone continuation byte", "\x80", R"("\u0080")"},
        {"a truncated sequence", "\xc3", R"("\u00c3")"},
        {"a truncated sequence before ASCII", "\xe2\x82z", R"("\u00e2\u0082z")"},
        {"an overlong encoding of '/'", "\xc0\xaf", R"("\u00c0\u00af")"},
        {"an overlong 3-byte form", "\xe0\x80\xaf", R"("\u00e0\u0080\u00af")"},
        {"a UTF-16 surrogate", "\xed\xa0\x80", R"("\u00ed\u00a0\u0080")"},
        {"above U+10FFFF", "\xf4\x90\x80\x80", R"("\u00f4\u0090\u0080\u0080")"},
        {"0xff", "\xff", R"("\u00ff")"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        CHECK(json(c.bytes) == c.expected);
    }
}

TEST_CASE("rfc3339_ms") {
    CHECK(rfc3339_ms(0) == "1970-01-01T00:00:00.000Z");
    CHECK(rfc3339_ms(1796533318123) == "2026-12-06T05:01:58.123Z");
    CHECK(rfc3339_ms(1796533318007) == "2026-12-06T05:01:58.007Z");
}

TEST_CASE("a JSON exchange line has every key, in order, null where it does not apply") {
    std::string out;
    append_json_line(out, exchange(), "2026-12-06T04:46:00.123Z");
    CHECK(out ==
          R"({"time":"2026-12-06T04:46:00.123Z","event":"exchange","client":"127.0.0.1","method":"GET",)"
          R"("target":"/a?b=c","version":"1.1","status":200,"route":"api","upstream":"app",)"
          R"("server":"127.0.0.1:9001","upgrade":null,"protocol":null,"bytes_in":27,"bytes_out":40,)"
          R"("request_ms":0.412,"tunnel_ms":null,"end":"ok"})"
          "\n");

    AccessRecord none;  // a head that never arrived (408 on an empty connection)
    none.client = "::1";
    none.status = 408;
    none.end = "proxy";
    out.clear();
    append_json_line(out, none, "T");
    CHECK(out ==
          R"({"time":"T","event":"exchange","client":"::1","method":null,"target":null,"version":null,)"
          R"("status":408,"route":null,"upstream":null,"server":null,"upgrade":null,"protocol":null,)"
          R"("bytes_in":0,"bytes_out":0,"request_ms":0,"tunnel_ms":null,"end":"proxy"})"
          "\n");
}

TEST_CASE("a JSON tunnel line") {
    AccessRecord r = exchange();
    r.tunnel = true;
    r.target = "/chat";
    r.status = 101;
    r.upgrade = UpgradeOutcome::switched;
    r.protocol = "websocket";
    r.bytes_in = 5;
    r.bytes_out = 3;
    r.request_ms = 1.87;
    r.tunnel_ms = 30534.25;
    r.end = "eof";
    std::string out;
    append_json_line(out, r, "T");
    CHECK(out ==
          R"({"time":"T","event":"tunnel","client":"127.0.0.1","method":"GET","target":"/chat","version":"1.1",)"
          R"("status":101,"route":"api","upstream":"app","server":"127.0.0.1:9001","upgrade":"switched",)"
          R"("protocol":"websocket","bytes_in":5,"bytes_out":3,"request_ms":1.87,"tunnel_ms":30534.25,"end":"eof"})"
          "\n");
}

TEST_CASE("text lines") {
    struct Case {
        std::string_view name;
        AccessRecord record;
        std::string expected;
    };
    AccessRecord hostile = exchange();
    hostile.target = "/a\"b\\c\xff d";
    AccessRecord tunnel = exchange();
    tunnel.tunnel = true;
    tunnel.status = 101;
    tunnel.tunnel_ms = 30534.9;
    tunnel.end = "idle_timeout";
    tunnel.protocol = "websocket";
    AccessRecord unrouted;
    unrouted.client = "127.0.0.1";
    unrouted.method = "GET";
    unrouted.target = "/nope";
    unrouted.http_minor = 0;
    unrouted.status = 404;
    unrouted.end = "proxy";
    const std::string long_target = "/" + std::string(600, 'x');
    AccessRecord long_one = exchange();
    long_one.target = long_target;
    const std::vector<Case> cases = {
        {"an exchange", exchange(),
         "T 127.0.0.1 \"GET /a?b=c HTTP/1.1\" 200 in=27 out=40 0ms route=api upstream=app server=127.0.0.1:9001 ok\n"},
        {"bytes that would break the quoted request line", hostile,
         "T 127.0.0.1 \"GET /a\\x22b\\x5cc\\xff\\x20d HTTP/1.1\" 200 in=27 out=40 0ms route=api upstream=app "
         "server=127.0.0.1:9001 ok\n"},
        {"a tunnel's end", tunnel,
         "T 127.0.0.1 \"GET /a?b=c HTTP/1.1\" 101 in=27 out=40 30534ms route=api upstream=app server=127.0.0.1:9001 "
         "tunnel_idle_timeout proto=websocket\n"},
        {"no route, no upstream", unrouted,
         "T 127.0.0.1 \"GET /nope HTTP/1.0\" 404 in=0 out=0 0ms route=- upstream=- server=- proxy\n"},
        {"the target is cut at 512 bytes", long_one,
         "T 127.0.0.1 \"GET " + long_target.substr(0, 512) +
             " HTTP/1.1\" 200 in=27 out=40 0ms route=api upstream=app server=127.0.0.1:9001 ok\n"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        std::string out;
        append_text_line(out, c.record, "T");
        CHECK(out == c.expected);
    }
}
