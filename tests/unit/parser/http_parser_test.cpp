#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "parser/http_parser.hpp"
#include "parser_test_support.hpp"

using namespace sy;
using namespace sy::test;
using Kind = HttpParser::Kind;
using Status = HttpParser::Status;

namespace {

struct Outcome {
    std::string log;
    std::vector<std::string> heads;
    std::vector<std::string> bodies;
    std::string stops;  // space-separated
    Status status = Status::need_more;
    ParseError error = ParseError::none;
    std::string finish;

    bool operator==(const Outcome&) const = default;
};

Outcome parse(Kind kind, std::string_view input, const std::vector<std::size_t>& cuts,
              bool response_to_head = false, bool stop_at_upgrade = true,
              HttpParser::Limits limits = {}) {
    Recorder rec;
    HttpParser parser(kind, rec, limits);
    parser.set_response_to_head(response_to_head);
    const DriveResult d = drive(parser, input, cuts, stop_at_upgrade);
    Outcome out;
    for (const std::string& stop : d.stops) out.stops += (out.stops.empty() ? "" : " ") + stop;
    out.status = d.last.status;
    out.error = d.last.error;
    if (d.last.status != Status::error && d.last.status != Status::upgrade) {
        const HttpParser::Result f = parser.finish();
        out.finish = f.status == Status::error ? "eof-error" : "ok";
    }
    out.log = rec.log;
    for (const MessageHead& h : rec.heads) out.heads.push_back(describe(h));
    out.bodies = rec.bodies;
    return out;
}

// Every two-piece split, and byte by byte, must give what one piece gives.
void check_every_split(Kind kind, std::string_view input, const Outcome& whole, bool response_to_head,
                       bool stop_at_upgrade, HttpParser::Limits limits = {}) {
    for (std::size_t cut = 1; cut < input.size(); ++cut) {
        CAPTURE(cut);
        CHECK(parse(kind, input, {cut}, response_to_head, stop_at_upgrade, limits) == whole);
    }
    CHECK(parse(kind, input, every_byte(input.size()), response_to_head, stop_at_upgrade, limits) == whole);
}

struct ValidCase {
    const char* what;
    Kind kind;
    std::string input;
    std::string log;                  // H head, B body, E end
    std::string stops;                // where feed() stopped, offsets in `input`
    std::vector<std::string> bodies;
    bool response_to_head = false;
};

const std::string kGet = "GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n";               // 38 bytes
const std::string kPost = "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";  // 53 bytes
const std::string kChunkedPost =
    "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    "4;ext=1\r\nabcd\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n";  // 104 bytes
const std::string kUpgrade =
    "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n";  // 82

std::vector<ValidCase> valid_cases() {
    return {
        {"GET", Kind::request, kGet, "HE", "paused@38", {""}},
        {"POST with Content-Length", Kind::request, kPost, "HBE", "paused@53", {"hello"}},
        {"chunked POST with extension and trailer", Kind::request, kChunkedPost, "HBE", "paused@104",
         {"abcd0123456789abcdef"}},
        {"pipelined", Kind::request, kGet + kPost + kChunkedPost + kGet, "HEHBEHBEHE",
         "paused@38 paused@91 paused@195 paused@233", {"", "hello", "abcd0123456789abcdef", ""}},
        {"CRLF before a request", Kind::request, "\r\n" + kGet, "HE", "paused@40", {""}},
        {"values trimmed, empty value, odd spelling", Kind::request,
         "OPTIONS * HTTP/1.1\r\nhOsT:   a b \t \r\nX-Empty:\r\nX-Sp:   \r\n\r\n", "HE", "paused@58", {""}},
        {"HTTP/1.0 request", Kind::request, "GET / HTTP/1.0\r\n\r\n", "HE", "paused@18", {""}},
        {"upgrade request, bytes behind it", Kind::request, kUpgrade + "\x81\x05hello", "HE", "upgrade@82",
         {""}},
        {"HTTP/1.0 upgrade request", Kind::request,
         "GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nxyz", "HE", "upgrade@59", {""}},
        {"upgrade request with a body", Kind::request,
         "POST /u HTTP/1.1\r\nUpgrade: foo\r\nConnection: upgrade\r\nContent-Length: 3\r\n\r\nabcTUNNEL", "HBE",
         "upgrade@77", {"abc"}},
        {"response with Content-Length", Kind::response, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", "HBE",
         "paused@40", {"hi"}},
        {"chunked response", Kind::response,
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "HBE", "paused@60",
         {"abc"}},
        {"close-delimited response", Kind::response, "HTTP/1.1 200 OK\r\n\r\nuntil the end", "HBE", "",
         {"until the end"}},
        {"100 Continue then 200", Kind::response,
         "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", "HEHBE",
         "paused@25 paused@65", {"", "hi"}},
        {"204 and 304 have no body whatever they say", Kind::response,
         "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n"
         "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"
         "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
         "HEHEHE", "paused@46 paused@103 paused@141", {"", "", ""}},
        {"response to HEAD, then a normal one", Kind::response,
         "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", "HEHBE",
         "paused@38 paused@78", {"", "hi"}, true},
        {"101 with bytes behind it", Kind::response,
         "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi",
         "HE", "upgrade@77", {""}},
        {"101 without Upgrade still stops", Kind::response, "HTTP/1.1 101 Switching Protocols\r\n\r\nraw",
         "HE", "upgrade@36", {""}},
        // RFC 9112 §7.1.1: BWS around ";" and "=", quoted values, several extensions.
        {"chunk extensions with optional whitespace", Kind::request,
         "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
         "3 ; a = b\r\nabc\r\n2\t;\tq=\"x \\\" y\";n\r\nde\r\n0 ;last\r\n\r\n",
         "HBE", "paused@97", {"abcde"}},
        {"chunk size with leading zeros, upper-case hex", Kind::request,
         "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n000A\r\n0123456789\r\n000\r\n\r\n",
         "HBE", "paused@73", {"0123456789"}},
        {"chunked response with extensions", Kind::response,
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3 ;a=1\r\nabc\r\n0\r\n\r\n", "HBE",
         "paused@65", {"abc"}},
        // RFC 9110 §2.5: a higher minor version is handled as 1.1.
        {"HTTP/1.2 request", Kind::request, "GET / HTTP/1.2\r\nHost: a\r\n\r\n", "HE", "paused@27", {""}},
        {"HTTP/1.9 upgrade request", Kind::request,
         "GET / HTTP/1.9\r\nHost: a\r\nUpgrade: foo\r\nConnection: upgrade\r\n\r\nxy", "HE", "upgrade@62",
         {""}},
        {"101 with Content-Length has no body", Kind::response,
         "HTTP/1.1 101 Switching Protocols\r\nUpgrade: a\r\nConnection: upgrade\r\nContent-Length: 3\r\n\r\nraw",
         "HE", "upgrade@88", {""}},
    };
}

}  // namespace

TEST_CASE("valid messages: same result for every split") {
    for (const ValidCase& c : valid_cases()) {
        const std::string what = c.what;
        CAPTURE(what);
        const Outcome whole = parse(c.kind, c.input, {}, c.response_to_head);
        CHECK(whole.error == ParseError::none);
        CHECK(whole.log == c.log);
        CHECK(whole.stops == c.stops);
        CHECK(whole.bodies == c.bodies);
        check_every_split(c.kind, c.input, whole, c.response_to_head, true);
    }
}

TEST_CASE("heads as parsed") {
    Recorder rec;
    HttpParser parser(Kind::request, rec, {});
    const std::string input = kPost + kUpgrade;
    DriveResult d = drive(parser, input, {}, true);
    REQUIRE(rec.heads.size() == 2);
    const MessageHead& post = rec.heads[0];
    CHECK(post.method == "POST");
    CHECK(post.target == "/b");
    CHECK(post.http_major == 1);
    CHECK(post.http_minor == 1);
    CHECK(post.keep_alive);
    CHECK_FALSE(post.upgrade);
    CHECK(post.framing == BodyFraming::content_length);
    CHECK(post.content_length == 5);
    REQUIRE(post.headers.size() == 2);
    CHECK(post.headers[1].name == "Content-Length");
    CHECK(post.headers[1].value == "5");
    const MessageHead& ws = rec.heads[1];
    CHECK(ws.upgrade);
    CHECK(ws.framing == BodyFraming::none);
    CHECK(ws.headers.size() == 3);

    Outcome trimmed = parse(Kind::request, "OPTIONS * HTTP/1.1\r\nhOsT:   a b \t \r\nX-Empty:\r\nX-Sp:   \r\n\r\n", {});
    REQUIRE(trimmed.heads.size() == 1);
    CHECK(trimmed.heads[0] ==
          "OPTIONS|*|0||1.1|ka=1|up=0|framing=0|cl=0\nhOsT: [a b]\nX-Empty: []\nX-Sp: []");

    Outcome h10 = parse(Kind::request, "GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", {});
    REQUIRE(h10.heads.size() == 1);
    CHECK(h10.heads[0].find("|1.0|ka=0|up=1|") != std::string::npos);

    Outcome resp = parse(Kind::response, "HTTP/1.0 200 Fine thanks\r\nContent-Length: 0\r\n\r\n", {});
    REQUIRE(resp.heads.size() == 1);
    CHECK(resp.heads[0] == "||200|Fine thanks|1.0|ka=0|up=0|framing=1|cl=0\nContent-Length: [0]");

    Outcome eof = parse(Kind::response, "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\nx", {});
    REQUIRE(eof.heads.size() == 1);
    CHECK(eof.heads[0].find("|ka=0|up=0|framing=3|") != std::string::npos);
    CHECK(eof.finish == "ok");
    CHECK(eof.log == "HBE");
}

constexpr char kNulRequest[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";

struct RejectCase {
    const char* what;
    Kind kind;
    std::string input;
    ParseError error;
};

TEST_CASE("rejections") {
    const ParseError bad = ParseError::bad_message;
    const std::string req = "POST / HTTP/1.1\r\nHost: a\r\n";
    const std::vector<RejectCase> cases = {
        // Rejected by llhttp itself (llhttp 8.1 as Debian builds it).
        {"bare CR in the head", Kind::request, "GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", bad},
        // llhttp 8.1 takes these as an empty value and drops a byte; refused by us.
        {"bare CR after the colon", Kind::request, "GET / HTTP/1.1\r\nHost: x\r\nX:\rY\r\n\r\n", bad},
        {"bare CR after OWS", Kind::request, "GET / HTTP/1.1\r\nHost: x\r\nX: \rY\r\n\r\n", bad},
        {"bare CR at the start of a field line", Kind::request, "GET / HTTP/1.1\r\nHost: x\r\n\rX: y\r\n\r\n", bad},
        {"bare CR in the start line", Kind::request, "GET /a\rb HTTP/1.1\r\nHost: x\r\n\r\n", bad},
        {"bare CR before the start line", Kind::request, "\rGET / HTTP/1.1\r\nHost: x\r\n\r\n", bad},
        {"CR CR LF", Kind::request, "GET / HTTP/1.1\r\nHost: x\r\r\n\r\n", bad},
        {"bare CR ending the head", Kind::request, "GET / HTTP/1.1\r\nHost: x\r\n\r\r\n", bad},
        {"bare CR after OWS, response", Kind::response, "HTTP/1.1 200 OK\r\nX: \rY\r\nContent-Length: 0\r\n\r\n", bad},
        {"header line ended by bare LF", Kind::request, "GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", bad},
        {"all lines ended by bare LF", Kind::request, "GET / HTTP/1.1\nHost: x\n\n", bad},
        {"CL then TE", Kind::request, req + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", bad},
        {"TE then CL", Kind::request, req + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", bad},
        {"CL twice, equal", Kind::request, req + "Content-Length: 4\r\nContent-Length: 4\r\n\r\nabcd", bad},
        {"CL twice, different", Kind::request, req + "Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcd", bad},
        {"CL +4", Kind::request, req + "Content-Length: +4\r\n\r\nabcd", bad},
        {"CL 4, 4", Kind::request, req + "Content-Length: 4, 4\r\n\r\nabcd", bad},
        {"CL not a number", Kind::request, req + "Content-Length: 0x4\r\n\r\nabcd", bad},
        {"TE chunked, identity", Kind::request, req + "Transfer-Encoding: chunked, identity\r\n\r\n", bad},
        {"TE xchunked", Kind::request, req + "Transfer-Encoding: xchunked\r\n\r\n", bad},
        {"TE twice", Kind::request,
         req + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", bad},
        {"TE gzip only in a request", Kind::request, req + "Transfer-Encoding: gzip\r\n\r\n", bad},
        {"chunk size 0x10", Kind::request, req + "Transfer-Encoding: chunked\r\n\r\n0x10\r\n", bad},
        {"chunk size -1", Kind::request, req + "Transfer-Encoding: chunked\r\n\r\n-1\r\n", bad},
        {"chunk size overflow", Kind::request,
         req + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n", bad},
        {"bare CR in a chunk extension", Kind::request,
         req + "Transfer-Encoding: chunked\r\n\r\n4;a\rb\r\nabcd\r\n0\r\n\r\n", bad},
        {"NUL in a value", Kind::request, std::string(kNulRequest, sizeof kNulRequest - 1), bad},
        {"control byte in a value", Kind::request, "GET / HTTP/1.1\r\nX: a\x01" "b\r\n\r\n", bad},
        {"invalid method", Kind::request, "G@T / HTTP/1.1\r\n\r\n", bad},
        {"invalid version", Kind::request, "GET / HTTP/1.x\r\n\r\n", bad},
        {"space in a field name", Kind::request, "GET / HTTP/1.1\r\nX Y: a\r\n\r\n", bad},
        {"empty field name", Kind::request, "GET / HTTP/1.1\r\n: a\r\n\r\n", bad},
        {"bad status line", Kind::response, "HTTP/1.1 2000 OK\r\n\r\n", bad},
        {"response CL twice", Kind::response,
         "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", bad},
        // Accepted by llhttp, refused by us (second table).
        {"obs-fold", Kind::request, "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", bad},
        {"obs-fold with HTAB", Kind::request, "GET / HTTP/1.1\r\nX: a\r\n\tb\r\nY: c\r\n\r\n", bad},
        {"obs-fold in a response", Kind::response, "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", bad},
        {"space before the colon", Kind::request, "GET / HTTP/1.1\r\nHost : a\r\n\r\n", bad},
        {"TE with space before the colon", Kind::request,
         req + "Transfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc", bad},
        {"HTAB before the colon", Kind::request, "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", bad},
        {"space before the colon, response", Kind::response, "HTTP/1.1 200 OK\r\nServer : a\r\n\r\n", bad},
        {"chunk data not followed by CRLF", Kind::request,
         req + "Transfer-Encoding: chunked\r\n\r\n4\r\nabcdXX0\r\n\r\n", bad},
        {"chunk data followed by CR only", Kind::request,
         req + "Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\rX0\r\n\r\n", bad},
        {"chunk data followed by LF only", Kind::request,
         req + "Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\n0\r\n\r\n", bad},
        {"h2 preface", Kind::request, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", ParseError::h2_preface},
        // RFC 9110 §15.6.6: another major version is 505, not forwarded as HTTP/1.1.
        {"HTTP/2.0 request line", Kind::request, "GET / HTTP/2.0\r\nHost: h\r\n\r\n", ParseError::version},
        {"HTTP/3.0 request line", Kind::request, "GET / HTTP/3.0\r\nHost: h\r\n\r\n", ParseError::version},
        {"HTTP/0.9 request line", Kind::request, "GET / HTTP/0.9\r\nHost: h\r\n\r\n", ParseError::version},
        {"two-digit minor version", Kind::request, "GET / HTTP/1.10\r\nHost: h\r\n\r\n", bad},
        {"two-digit major version", Kind::request, "GET / HTTP/11.1\r\nHost: h\r\n\r\n", bad},
        // Chunk-size lines are checked by the wrapper (parser/chunk_line.cpp).
        {"whitespace after a chunk size, no extension", Kind::request,
         req + "Transfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", bad},
        {"whitespace before a chunk size", Kind::request,
         req + "Transfer-Encoding: chunked\r\n\r\n 3\r\nabc\r\n0\r\n\r\n", bad},
        {"chunk size line ended by bare LF", Kind::request,
         req + "Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", bad},
        {"last chunk line ended by bare LF", Kind::request,
         req + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\n\r\n", bad},
        {"chunk extension without a name", Kind::request,
         req + "Transfer-Encoding: chunked\r\n\r\n3;=b\r\nabc\r\n0\r\n\r\n", bad},
        {"unterminated quoted extension", Kind::request,
         req + "Transfer-Encoding: chunked\r\n\r\n3;a=\"b\r\nabc\r\n0\r\n\r\n", bad},
        {"chunk size line too long", Kind::request,
         req + "Transfer-Encoding: chunked\r\n\r\n3;a=" + std::string(5000, 'b') + "\r\nabc\r\n0\r\n\r\n", bad},
        {"empty chunk size line", Kind::request, req + "Transfer-Encoding: chunked\r\n\r\n\r\nabc\r\n", bad},
        // A proxy drops what Connection names: naming the framing (or, in a request, the
        // Host) would send the body on without its length.
        {"Connection names Content-Length", Kind::request,
         req + "Connection: content-length\r\nContent-Length: 32\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n", bad},
        {"Connection names Content-Length among others, any case", Kind::request,
         req + "Content-Length: 3\r\nConnection: keep-alive\r\nconnection: x-a, CONTENT-LENGTH\r\n\r\nabc", bad},
        {"Connection names Content-Length, no Content-Length field", Kind::request,
         "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, Content-Length\r\n\r\n", bad},
        {"Connection names Host", Kind::request, "GET / HTTP/1.1\r\nHost: a\r\nConnection: Host\r\n\r\n", bad},
        {"response: Connection names Content-Length", Kind::response,
         "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: Content-Length\r\n\r\nhello", bad},
        {"101: Connection names Content-Length", Kind::response,
         "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade, Content-Length\r\n\r\n", bad},
    };
    for (const RejectCase& c : cases) {
        const std::string what = c.what;
        CAPTURE(what);
        const Outcome whole = parse(c.kind, c.input, {});
        CHECK(whole.status == Status::error);
        CHECK(whole.error == c.error);
        // Never a head (or its end) for a message refused in its head.
        check_every_split(c.kind, c.input, whole, false, true);
    }
}

TEST_CASE("Connection options that do not name the framing or the Host pass") {
    for (const char* input : {
             "POST / HTTP/1.1\r\nHost: a\r\nConnection: x-content-length, content-lengths, \"content-length\"\r\n"
             "Content-Length: 1\r\n\r\nz",
             "GET / HTTP/1.1\r\nHost: a\r\nConnection: Hosts, x-host\r\n\r\n",
         }) {
        CAPTURE(input);
        CHECK(parse(Kind::request, input, {}).error == ParseError::none);
    }
    // Host is a request field: a response naming it loses nothing the next hop needs.
    CHECK(parse(Kind::response, "HTTP/1.1 200 OK\r\nConnection: Host\r\nContent-Length: 0\r\n\r\n", {}).error ==
          ParseError::none);
}

TEST_CASE("rejected heads never reach the handler; llhttp's reason is kept") {
    for (const char* input : {"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
                              "GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n"}) {
        CAPTURE(input);
        Recorder rec;
        HttpParser parser(Kind::request, rec, {});
        const std::string_view in(input);
        const HttpParser::Result r = parser.feed(in.data(), in.size());
        CHECK(r.status == Status::error);
        CHECK(r.error == ParseError::bad_message);
        CHECK(std::string(r.reason).size() > 0);
        CHECK(rec.log.empty());
        // The parser stays dead.
        const HttpParser::Result again = parser.feed("GET / HTTP/1.1\r\n\r\n", 18);
        CHECK(again.status == Status::error);
        CHECK(again.error == ParseError::bad_message);
    }
    Recorder rec;
    HttpParser parser(Kind::request, rec, {});
    const std::string in = "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    const HttpParser::Result r = parser.feed(in.data(), in.size());
    CHECK(r.error == ParseError::bad_message);
    CHECK(std::string(r.reason).find("Content-Length") != std::string::npos);
}

TEST_CASE("error_status") {
    CHECK(error_status(ParseError::bad_message) == 400);
    CHECK(error_status(ParseError::header_too_large) == 431);
    CHECK(error_status(ParseError::too_many_headers) == 431);
    CHECK(error_status(ParseError::h2_preface) == 400);
    CHECK(error_status(ParseError::version) == 505);
}

namespace {

// A request head of exactly `size` bytes.
std::string head_of_size(std::size_t size) {
    const std::string start = "GET / HTTP/1.1\r\nX: ";
    const std::string end = "\r\n\r\n";
    return start + std::string(size - start.size() - end.size(), 'a') + end;
}

}  // namespace

TEST_CASE("head size limit: at the bound and one past") {
    HttpParser::Limits limits;
    limits.max_header_bytes = 200;
    struct Case {
        std::string input;
        ParseError error;
        std::string log;
    };
    const std::vector<Case> cases = {
        {head_of_size(200), ParseError::none, "HE"},
        {head_of_size(201), ParseError::header_too_large, ""},
        {head_of_size(200) + head_of_size(200), ParseError::none, "HEHE"},  // counted per message
        {head_of_size(200) + head_of_size(201), ParseError::header_too_large, "HE"},
        {"\r\n" + head_of_size(198), ParseError::none, "HE"},
        {"\r\n" + head_of_size(199), ParseError::header_too_large, ""},
        {"GET / HTTP/1.1\r\nContent-Length: 300\r\n\r\n" + std::string(300, 'b'), ParseError::none, "HBE"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.input.size());
        const Outcome whole = parse(Kind::request, c.input, {}, false, true, limits);
        CHECK(whole.error == c.error);
        CHECK(whole.log == c.log);
        check_every_split(Kind::request, c.input, whole, false, true, limits);
    }
}

TEST_CASE("an endless head is cut off at the limit") {
    HttpParser::Limits limits;
    limits.max_header_bytes = 1000;
    limits.max_headers = 100000;
    Recorder rec;
    HttpParser parser(Kind::request, rec, limits);
    const std::string start = "GET / HTTP/1.1\r\n";
    HttpParser::Result r = parser.feed(start.data(), start.size());
    CHECK(r.status == Status::need_more);
    const std::string line = "X-Filler: 0123456789\r\n";  // 22 bytes
    std::size_t fed = start.size();
    for (int i = 0; i < 1000 && r.status == Status::need_more; ++i) {
        r = parser.feed(line.data(), line.size());
        fed += line.size();
    }
    CHECK(r.status == Status::error);
    CHECK(r.error == ParseError::header_too_large);
    CHECK(fed < 1000 + line.size() + 1);
    CHECK(rec.log.empty());
}

TEST_CASE("field count limit: at the bound and one past") {
    HttpParser::Limits limits;
    limits.max_headers = 3;
    for (Kind kind : {Kind::request, Kind::response}) {
        const std::string start = kind == Kind::request ? "GET / HTTP/1.1\r\n" : "HTTP/1.1 204 No Content\r\n";
        const std::string three = start + "A: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        const std::string four = start + "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
        const Outcome ok = parse(kind, three, {}, false, true, limits);
        CHECK(ok.error == ParseError::none);
        CHECK(ok.log == "HE");
        const Outcome over = parse(kind, four, {}, false, true, limits);
        CHECK(over.error == ParseError::too_many_headers);
        CHECK(over.log.empty());
        check_every_split(kind, four, over, false, true, limits);
    }
}

TEST_CASE("pipelined requests come out one at a time") {
    Recorder rec;
    HttpParser parser(Kind::request, rec, {});
    const std::string input = kGet + kPost + kGet;
    HttpParser::Result r = parser.feed(input.data(), input.size());
    CHECK(r.status == Status::paused);
    CHECK(r.consumed == kGet.size());
    CHECK(rec.log == "HE");
    CHECK_FALSE(parser.in_message());
    // Not resumed: nothing happens.
    r = parser.feed(input.data() + kGet.size(), input.size() - kGet.size());
    CHECK(r.status == Status::paused);
    CHECK(r.consumed == 0);
    CHECK(rec.log == "HE");

    parser.resume();
    std::size_t at = kGet.size();
    r = parser.feed(input.data() + at, input.size() - at);
    CHECK(r.status == Status::paused);
    CHECK(r.consumed == kPost.size());
    CHECK(rec.log == "HEHBE");
    CHECK(rec.bodies[1] == "hello");
    at += r.consumed;

    parser.resume();
    r = parser.feed(input.data() + at, input.size() - at);
    CHECK(r.status == Status::paused);
    CHECK(r.consumed == kGet.size());
    CHECK(rec.log == "HEHBEHE");

    parser.resume();
    r = parser.feed(input.data() + input.size(), 0);
    CHECK(r.status == Status::need_more);
    CHECK(r.consumed == 0);
}

TEST_CASE("pause after the head") {
    Recorder rec;
    rec.pause_on_head = true;
    HttpParser parser(Kind::request, rec, {});
    const std::string input = kPost + kGet;
    HttpParser::Result r = parser.feed(input.data(), input.size());
    CHECK(r.status == Status::paused);
    CHECK(r.consumed == kPost.size() - 5);  // right after the head
    CHECK(rec.log == "H");
    CHECK(parser.in_message());

    parser.resume();
    std::size_t at = r.consumed;
    r = parser.feed(input.data() + at, input.size() - at);
    CHECK(r.status == Status::paused);
    CHECK(r.consumed == 5);
    CHECK(rec.log == "HBE");
    CHECK_FALSE(parser.in_message());
    at += r.consumed;

    parser.resume();
    r = parser.feed(input.data() + at, input.size() - at);
    CHECK(r.status == Status::paused);  // paused on the head; a bodyless message ends on resume
    CHECK(r.consumed == kGet.size());
    CHECK(rec.log == "HBEH");
    parser.resume();
    r = parser.feed(input.data() + input.size(), 0);
    CHECK(r.status == Status::paused);
    CHECK(r.consumed == 0);
    CHECK(rec.log == "HBEHE");
    parser.resume();
    CHECK(parser.finish().status == Status::need_more);
}

TEST_CASE("upgrade: stop right after the message, then go on as HTTP") {
    struct Case {
        const char* what;
        Kind kind;
        std::string message;
        std::string next;  // parsed as HTTP after resume_after_upgrade
        std::string log;
    };
    const std::vector<Case> cases = {
        {"HTTP/1.1 request", Kind::request, kUpgrade, kGet, "HEHE"},
        {"HTTP/1.0 request", Kind::request,
         "GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade, keep-alive\r\n\r\n", kGet, "HEHE"},
        {"request with a chunked body", Kind::request,
         "POST / HTTP/1.1\r\nUpgrade: foo\r\nConnection: upgrade\r\nTransfer-Encoding: chunked\r\n\r\n"
         "2\r\nab\r\n0\r\n\r\n",
         kPost, "HBEHBE"},
        {"CONNECT", Kind::request, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", kGet,
         "HEHE"},
        {"101 response", Kind::response,
         "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
         "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", "HEHBE"},
        {"bare 101", Kind::response, "HTTP/1.1 101 Switching Protocols\r\n\r\n",
         "HTTP/1.1 204 No Content\r\n\r\n", "HEHE"},
    };
    for (const Case& c : cases) {
        const std::string what = c.what;
        CAPTURE(what);
        Recorder rec;
        HttpParser parser(c.kind, rec, {});
        const std::string input = c.message + c.next;
        HttpParser::Result r = parser.feed(input.data(), input.size());
        CHECK(r.status == Status::upgrade);
        CHECK(r.consumed == c.message.size());
        REQUIRE(rec.heads.size() == 1);
        CHECK(rec.heads[0].upgrade);
        CHECK(rec.log == c.log.substr(0, c.log.find('E') + 1));  // one on_message_end
        CHECK_FALSE(parser.in_message());

        // Not resumed: stays stopped.
        r = parser.feed(input.data() + c.message.size(), c.next.size());
        CHECK(r.status == Status::upgrade);
        CHECK(r.consumed == 0);

        parser.resume_after_upgrade();
        r = parser.feed(input.data() + c.message.size(), c.next.size());
        CHECK(r.status == Status::paused);
        CHECK(r.consumed == c.next.size());
        CHECK(rec.log == c.log);
        CHECK_FALSE(rec.heads[1].upgrade);
    }
}

TEST_CASE("Upgrade without the Connection token is an ordinary request") {
    const std::string input = "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n" + kGet;
    const Outcome out = parse(Kind::request, input, {});
    CHECK(out.stops == "paused@38 paused@76");
    REQUIRE(out.heads.size() == 2);
    CHECK(out.heads[0].find("|up=0|") != std::string::npos);
}

TEST_CASE("finish") {
    struct Case {
        const char* what;
        Kind kind;
        std::string input;
        bool pause_on_head;
        Status status;
        ParseError error;
        std::string log;
    };
    const std::vector<Case> cases = {
        {"nothing yet", Kind::request, "", false, Status::need_more, ParseError::none, ""},
        {"between messages", Kind::request, kGet, false, Status::need_more, ParseError::none, "HE"},
        {"CRLF only", Kind::request, "\r\n", false, Status::need_more, ParseError::none, ""},
        {"in the method", Kind::request, "GE", false, Status::error, ParseError::unexpected_eof, ""},
        {"in the head", Kind::request, "GET / HTTP/1.1\r\nHost: a\r\n", false, Status::error,
         ParseError::unexpected_eof, ""},
        {"in a Content-Length body", Kind::request, kPost.substr(0, kPost.size() - 1), false, Status::error,
         ParseError::unexpected_eof, "HB"},
        {"in a chunked body", Kind::request, kChunkedPost.substr(0, 60), false, Status::error,
         ParseError::unexpected_eof, "HB"},
        {"close-delimited response", Kind::response, "HTTP/1.1 200 OK\r\n\r\nabc", false, Status::need_more,
         ParseError::none, "HBE"},
        {"close-delimited response, no body byte", Kind::response, "HTTP/1.1 200 OK\r\n\r\n", false,
         Status::need_more, ParseError::none, "HE"},
        {"close-delimited response paused at its head", Kind::response, "HTTP/1.1 200 OK\r\n\r\n", true,
         Status::need_more, ParseError::none, "HE"},
        {"bodyless request paused at its head", Kind::request, kGet, true, Status::need_more, ParseError::none,
         "HE"},
        {"Content-Length response paused at its head", Kind::response,
         "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true, Status::error, ParseError::unexpected_eof, "H"},
        {"response in the status line", Kind::response, "HTTP/1.1 20", false, Status::error,
         ParseError::unexpected_eof, ""},
    };
    for (const Case& c : cases) {
        const std::string what = c.what;
        CAPTURE(what);
        Recorder rec;
        rec.pause_on_head = c.pause_on_head;
        HttpParser parser(c.kind, rec, {});
        const HttpParser::Result r = parser.feed(c.input.data(), c.input.size());
        CHECK(r.status != Status::error);
        const HttpParser::Result f = parser.finish();
        CHECK(f.status == c.status);
        CHECK(f.error == c.error);
        CHECK(rec.log == c.log);
        // A second finish() changes nothing.
        const HttpParser::Result again = parser.finish();
        CHECK(again.status == c.status);
        CHECK(rec.log == c.log);
    }
}

TEST_CASE("in_message and reset") {
    Recorder rec;
    HttpParser parser(Kind::request, rec, {});
    CHECK_FALSE(parser.in_message());
    HttpParser::Result r = parser.feed("G", 1);
    CHECK(r.status == Status::need_more);
    CHECK(parser.in_message());
    r = parser.feed("x / HTTP/1.1\r\n\r\n", 16);
    CHECK(r.status == Status::error);
    parser.reset();
    CHECK_FALSE(parser.in_message());
    r = parser.feed(kPost.data(), 30);
    CHECK(r.status == Status::need_more);
    CHECK(parser.in_message());
    parser.reset();  // mid-message: forgotten
    r = parser.feed(kGet.data(), kGet.size());
    CHECK(r.status == Status::paused);
    CHECK(r.consumed == kGet.size());
    CHECK(rec.heads.back().target == "/a");
    CHECK(rec.heads.back().headers.size() == 1);
}

TEST_CASE("response to HEAD applies to the next final response only") {
    Recorder rec;
    HttpParser parser(Kind::response, rec, {});
    parser.set_response_to_head(true);
    const std::string input =
        "HTTP/1.1 100 Continue\r\n\r\n"
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
    const DriveResult d = drive(parser, input, {});
    CHECK(d.last.status == Status::paused);
    CHECK(rec.log == "HEHEHBE");
    REQUIRE(rec.heads.size() == 3);
    CHECK(rec.heads[1].framing == BodyFraming::none);
    CHECK(rec.heads[1].keep_alive);
    CHECK(rec.heads[2].framing == BodyFraming::content_length);
}

namespace {

struct Thrower : Recorder {
    HttpParser::AfterHead on_head(MessageHead&) override { throw std::runtime_error("boom"); }
};

}  // namespace

TEST_CASE("an exception in a handler does not cross llhttp") {
    Thrower handler;
    HttpParser parser(Kind::request, handler, {});
    const HttpParser::Result r = parser.feed(kGet.data(), kGet.size());
    CHECK(r.status == Status::error);
    CHECK(r.error == ParseError::bad_message);
}

TEST_CASE("bytes after a message that does not keep the connection alive are discarded") {
    // llhttp 8.1 (no lenient flags) swallows whatever follows such a message without an
    // error (RFC 9112 §9.6: no further requests are processed on that connection).
    for (const std::string& first : {std::string("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"),
                                    std::string("GET / HTTP/1.0\r\n\r\n")}) {
        CAPTURE(first);
        const Outcome out = parse(Kind::request, first + kGet, {});
        CHECK(out.log == "HE");
        CHECK(out.status == Status::need_more);
        CHECK(out.stops == "paused@" + std::to_string(first.size()));
    }
}

TEST_CASE("trailer fields are dropped and count against the head size limit") {
    HttpParser::Limits limits;
    limits.max_header_bytes = 100;
    const std::string head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n";
    const Outcome ok = parse(Kind::request, head + "T: " + std::string(90, 't') + "\r\n\r\n", {}, false, true, limits);
    CHECK(ok.log == "HBE");
    REQUIRE(ok.heads.size() == 1);
    CHECK(ok.heads[0].find("\nT:") == std::string::npos);
    const Outcome over =
        parse(Kind::request, head + "T: " + std::string(120, 't') + "\r\n\r\n", {}, false, true, limits);
    CHECK(over.error == ParseError::header_too_large);
    CHECK(over.log == "HB");
}
