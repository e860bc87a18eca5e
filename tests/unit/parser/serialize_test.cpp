#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "parser/serialize.hpp"

using namespace sy;

namespace {

MessageHead request(HeaderList headers, BodyFraming framing = BodyFraming::none) {
    MessageHead head;
    head.method = "GET";
    head.target = "/path?q=1";
    head.headers = std::move(headers);
    head.framing = framing;
    return head;
}

MessageHead response(int status, std::string reason, HeaderList headers) {
    MessageHead head;
    head.status = status;
    head.reason = std::move(reason);
    head.headers = std::move(headers);
    return head;
}

}  // namespace

TEST_CASE("connection_tokens and is_hop_by_hop") {
    const HeaderList headers = {
        {"Connection", "Keep-Alive, X-Foo"},
        {"X-Foo", "1"},
        {"connection", " , x-BAR ,,"},
        {"X-Bar", "2"},
        {"X-Baz", "3"},
    };
    const std::vector<std::string> tokens = connection_tokens(headers);
    CHECK(tokens == std::vector<std::string>{"keep-alive", "x-foo", "x-bar"});

    struct Case {
        const char* name;
        bool hop;
    };
    const std::vector<Case> cases = {
        {"Connection", true},        {"connection", true},         {"Keep-Alive", true},
        {"Proxy-Connection", true},  {"TE", true},                 {"te", true},
        {"Transfer-Encoding", true}, {"Upgrade", true},            {"Proxy-Authenticate", true},
        {"Proxy-Authorization", true}, {"x-foo", true},            {"X-FOO", true},
        {"X-Bar", true},             {"X-Baz", false},             {"Host", false},
        {"Content-Length", false},   {"Trailer", false},           {"Upgrade-Insecure-Requests", false},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        CHECK(is_hop_by_hop(HeaderField{c.name, "v"}, tokens) == c.hop);
    }
    CHECK(connection_tokens({}).empty());
}

TEST_CASE("append_upstream_request_head") {
    ForwardingOptions fwd;
    fwd.client_address = "10.0.0.7";

    struct Case {
        const char* what;
        MessageHead req;
        ForwardingOptions fwd;
        HeaderList extra;
        bool close;
        std::string expected;
    };
    ForwardingOptions no_fwd = fwd;
    no_fwd.x_forwarded_for = false;
    no_fwd.x_forwarded_proto = false;
    ForwardingOptions with_via = fwd;
    with_via.via = true;

    MessageHead http10 = request({{"Host", "a"}});
    http10.http_minor = 0;

    const std::vector<Case> cases = {
        {"plain, forwarding fields added", request({{"Host", "a"}, {"Accept", "*/*"}}), fwd, {}, false,
         "GET /path?q=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n"
         "X-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Proto: http\r\n\r\n"},
        {"HTTP/1.0 request goes up as HTTP/1.1", http10, no_fwd, {}, false,
         "GET /path?q=1 HTTP/1.1\r\nHost: a\r\n\r\n"},
        {"hop-by-hop removed, order and spelling kept",
         request({{"hOST", "a"},
                  {"Connection", "keep-alive, X-Secret"},
                  {"X-Secret", "s"},
                  {"Keep-Alive", "timeout=5"},
                  {"x-dup", "1"},
                  {"Proxy-Connection", "close"},
                  {"TE", "trailers"},
                  {"Upgrade", "websocket"},
                  {"Proxy-Authorization", "Basic x"},
                  {"X-Dup", "2"},
                  {"Content-Length", "3"}},
                 BodyFraming::content_length),
         no_fwd, {}, false,
         "GET /path?q=1 HTTP/1.1\r\nhOST: a\r\nx-dup: 1\r\nX-Dup: 2\r\nContent-Length: 3\r\n\r\n"},
        {"every name the Connection fields list is dropped, however many (more than 8 here)",
         request({{"Connection", "x-1, X-2, keep-alive, x-3, x-4, upgrade, x-5"},
                  {"X-1", "1"}, {"X-9", "9"}, {"x-2", "2"}, {"X-3", "3"}, {"X-4", "4"}, {"X-5", "5"},
                  {"connection", "close, \"x-q\", X-6,, x-7, x-8, X-9"},
                  {"X-6", "6"}, {"X-7", "7"}, {"X-8", "8"}, {"X-10", "10"}, {"Close", "c"}, {"Host", "h"}}),
         no_fwd, {}, false,
         "GET /path?q=1 HTTP/1.1\r\nX-10: 10\r\nHost: h\r\n\r\n"},
        {"last X-Forwarded-For extended in place",
         request({{"X-Forwarded-For", "1.1.1.1"}, {"Host", "a"}, {"x-forwarded-for", "2.2.2.2, 3.3.3.3"},
                  {"Accept", "*"}}),
         fwd, {}, false,
         "GET /path?q=1 HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nHost: a\r\n"
         "x-forwarded-for: 2.2.2.2, 3.3.3.3, 10.0.0.7\r\nAccept: *\r\nX-Forwarded-Proto: http\r\n\r\n"},
        {"client X-Forwarded-Proto dropped",
         request({{"X-Forwarded-Proto", "https"}, {"Host", "a"}, {"x-forwarded-proto", "https"}}), fwd, {},
         false,
         "GET /path?q=1 HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Proto: http\r\n\r\n"},
        {"client X-Forwarded-Proto kept when we add none", request({{"X-Forwarded-Proto", "https"}}), no_fwd,
         {}, false, "GET /path?q=1 HTTP/1.1\r\nX-Forwarded-Proto: https\r\n\r\n"},
        {"Via added", request({{"Host", "a"}}), with_via, {}, false,
         "GET /path?q=1 HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Proto: http\r\n"
         "Via: 1.1 switchyard\r\n\r\n"},
        {"Via appended to the last one", request({{"Via", "1.0 a"}, {"Host", "a"}, {"via", "1.1 b"}}), with_via,
         {}, false,
         "GET /path?q=1 HTTP/1.1\r\nVia: 1.0 a\r\nHost: a\r\nvia: 1.1 b, 1.1 switchyard\r\n"
         "X-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Proto: http\r\n\r\n"},
        {"extra, chunked and close, in that order",
         request({{"Host", "a"}, {"Transfer-Encoding", "chunked"}, {"Upgrade", "websocket, h2c"},
                  {"Connection", "Upgrade"}},
                 BodyFraming::chunked),
         with_via, {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}}, true,
         "GET /path?q=1 HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Proto: http\r\n"
         "Via: 1.1 switchyard\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.what);
        std::string out = "prefix|";
        append_upstream_request_head(out, c.req, c.fwd, c.extra, c.close);
        CHECK(out == "prefix|" + c.expected);
    }
}

TEST_CASE("append_client_response_head") {
    struct Case {
        const char* what;
        MessageHead resp;
        ClientResponseOptions opts;
        HeaderList extra;
        std::string expected;
    };
    ClientResponseOptions cl;
    ClientResponseOptions chunked;
    chunked.framing = BodyFraming::chunked;
    ClientResponseOptions close_eof;
    close_eof.framing = BodyFraming::until_close;
    close_eof.close = true;
    ClientResponseOptions ka10;
    ka10.keep_alive_10 = true;
    ClientResponseOptions via;
    via.via = true;
    via.framing = BodyFraming::none;

    const std::vector<Case> cases = {
        {"content-length kept", response(200, "OK", {{"Content-Length", "5"}, {"Server", "x"}}), cl, {},
         "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\n"},
        {"upstream reason kept", response(200, "Fine Thanks", {}), cl, {}, "HTTP/1.1 200 Fine Thanks\r\n\r\n"},
        {"empty reason gets the standard one", response(404, "", {}), cl, {},
         "HTTP/1.1 404 Not Found\r\n\r\n"},
        {"re-chunked: TE replaced, CL dropped",
         response(200, "OK",
                  {{"Transfer-Encoding", "gzip, chunked"}, {"Content-Length", "9"}, {"Connection", "keep-alive"},
                   {"Keep-Alive", "timeout=5"}, {"ETag", "\"x\""}}),
         chunked, {}, "HTTP/1.1 200 OK\r\nETag: \"x\"\r\nTransfer-Encoding: chunked\r\n\r\n"},
        {"close-delimited: no framing field, close",
         response(200, "OK", {{"Connection", "close, X-Hop"}, {"X-Hop", "1"}, {"Date", "d"}}), close_eof, {},
         "HTTP/1.1 200 OK\r\nDate: d\r\nConnection: close\r\n\r\n"},
        {"HTTP/1.0 client kept alive", response(204, "No Content", {}), ka10, {},
         "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n"},
        {"101 with regenerated Upgrade", response(101, "Switching Protocols",
                                                  {{"Upgrade", "WebSocket"}, {"Connection", "upgrade"},
                                                   {"Sec-WebSocket-Accept", "abc="}}),
         ClientResponseOptions{BodyFraming::none, false, false, false},
         {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}},
         "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: abc=\r\nUpgrade: websocket\r\n"
         "Connection: Upgrade\r\n\r\n"},
        {"Via appended", response(304, "Not Modified", {{"Via", "1.1 up"}, {"Content-Length", "10"}}), via, {},
         "HTTP/1.1 304 Not Modified\r\nVia: 1.1 up, 1.1 switchyard\r\nContent-Length: 10\r\n\r\n"},
        {"Via added before extra", response(200, "OK", {}), via, {{"X-E", "1"}},
         "HTTP/1.1 200 OK\r\nVia: 1.1 switchyard\r\nX-E: 1\r\n\r\n"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.what);
        std::string out;
        append_client_response_head(out, c.resp, c.opts, c.extra);
        CHECK(out == c.expected);
    }
}

TEST_CASE("chunk framing") {
    struct Case {
        std::size_t size;
        const char* expected;
    };
    for (const Case& c : std::vector<Case>{{0, "0\r\n"}, {1, "1\r\n"}, {15, "f\r\n"}, {16, "10\r\n"},
                                           {65536, "10000\r\n"}, {0xdeadbeef, "deadbeef\r\n"}}) {
        CAPTURE(c.size);
        std::string out = "x";
        append_chunk_header(out, c.size);
        CHECK(out == std::string("x") + c.expected);
    }
    CHECK(kChunkEnd == "\r\n");
    CHECK(kLastChunk == "0\r\n\r\n");
}

TEST_CASE("reason_phrase") {
    struct Case {
        int status;
        const char* reason;
    };
    const std::vector<Case> cases = {
        {100, "Continue"}, {101, "Switching Protocols"}, {200, "OK"}, {201, "Created"},
        {202, "Accepted"}, {203, "Non-Authoritative Information"}, {204, "No Content"},
        {205, "Reset Content"}, {206, "Partial Content"}, {301, "Moved Permanently"}, {302, "Found"},
        {303, "See Other"}, {304, "Not Modified"}, {307, "Temporary Redirect"},
        {308, "Permanent Redirect"}, {400, "Bad Request"}, {401, "Unauthorized"}, {403, "Forbidden"},
        {404, "Not Found"}, {405, "Method Not Allowed"}, {408, "Request Timeout"},
        {413, "Content Too Large"}, {426, "Upgrade Required"},
        {431, "Request Header Fields Too Large"}, {500, "Internal Server Error"},
        {502, "Bad Gateway"}, {503, "Service Unavailable"}, {504, "Gateway Timeout"},
        {505, "HTTP Version Not Supported"}, {299, "Unknown"}, {0, "Unknown"}, {-1, "Unknown"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.status);
        CHECK(reason_phrase(c.status) == c.reason);
    }
}

TEST_CASE("make_proxy_response") {
    CHECK(make_proxy_response(502, true) ==
          "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n"
          "Content-Length: 16\r\nConnection: close\r\n\r\n502 Bad Gateway\n");
    CHECK(make_proxy_response(404, false) ==
          "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
          "Content-Length: 14\r\n\r\n404 Not Found\n");
    CHECK(make_proxy_response(403, true, {}, "refused: h2c\n") ==
          "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n"
          "Content-Length: 13\r\nConnection: close\r\n\r\nrefused: h2c\n");
    CHECK(make_proxy_response(426, false, {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}}) ==
          "HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/plain; charset=utf-8\r\n"
          "Content-Length: 21\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n426 Upgrade Required\n");
    // A 426 on a connection that closes: one Connection field with both options.
    CHECK(make_proxy_response(426, true, {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}}) ==
          "HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/plain; charset=utf-8\r\n"
          "Content-Length: 21\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n\r\n426 Upgrade Required\n");
    // The answer to HEAD: the same head, the length of the body it would have, no body.
    CHECK(make_proxy_response(404, false, {}, {}, true) ==
          "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
          "Content-Length: 14\r\n\r\n");
    // A caller's Content-Type replaces the default one.
    CHECK(make_proxy_response(200, true, {{"Content-Type", "text/plain; version=0.0.4"}}, "x\n") ==
          "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain; version=0.0.4\r\n"
          "Connection: close\r\n\r\nx\n");
    // No content is allowed in 1xx/204/304 (RFC 9110 §6.4.1).
    CHECK(make_proxy_response(204, false) == "HTTP/1.1 204 No Content\r\n\r\n");
}
