// libFuzzer target, a differential property: "no smuggling". Every request the parser
// accepts is serialised as Switchyard would send it upstream (append_upstream_request_head,
// the body re-chunked or passed with its Content-Length), then parsed again by a fresh strict
// parser. The second parse must give exactly the message of the first: same method, target,
// end-to-end fields (the received ones minus the hop-by-hop ones, computed here
// independently), framing and body bytes, and nothing left over. ASan/UBSan check memory.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "parser/http_parser.hpp"
#include "parser/serialize.hpp"
#include "parser/tokens.hpp"

namespace {

struct Message {
    sy::MessageHead head;
    std::string body;
    bool complete = false;
};

struct Collector final : sy::HttpParser::Handler {
    std::vector<Message> messages;
    sy::HttpParser::AfterHead on_head(sy::MessageHead& head) override {
        messages.emplace_back();
        messages.back().head = head;
        return sy::HttpParser::AfterHead::proceed;
    }
    void on_body(std::string_view data) override { messages.back().body.append(data); }
    void on_message_end() override { messages.back().complete = true; }
};

// Parses every complete message of `input`, as the proxy does (upgrade requests end the
// input: what follows them is not HTTP).
std::vector<Message> parse_all(std::string_view input, bool* clean_end) {
    Collector collector;
    sy::HttpParser parser(sy::HttpParser::Kind::request, collector, sy::HttpParser::Limits{8192, 64});
    std::size_t pos = 0;
    *clean_end = false;
    for (int guard = 0; guard < 1000; ++guard) {
        const sy::HttpParser::Result r = parser.feed(input.data() + pos, input.size() - pos);
        pos += r.consumed;
        if (r.status == sy::HttpParser::Status::error || r.status == sy::HttpParser::Status::upgrade) break;
        if (r.status == sy::HttpParser::Status::need_more) {
            *clean_end = pos == input.size() && !parser.in_message();
            break;
        }
        if (r.status == sy::HttpParser::Status::paused) parser.resume();
    }
    std::vector<Message> complete;
    for (Message& m : collector.messages) {
        if (m.complete) complete.push_back(std::move(m));
    }
    return complete;
}

// The fields that must reach the backend: every received field but the hop-by-hop ones
// (RFC 9110 §7.6.1) and those the Connection fields name. Written apart from
// parser/serialize.cpp on purpose: it is the oracle.
std::vector<std::pair<std::string, std::string>> end_to_end(const sy::HeaderList& fields) {
    static const char* const kHopByHop[] = {"connection", "keep-alive", "proxy-connection", "te",
                                            "transfer-encoding", "upgrade", "proxy-authenticate",
                                            "proxy-authorization"};
    std::vector<std::string> named;
    for (const sy::HeaderField& f : fields) {
        if (!sy::iequals(f.name, "connection")) continue;
        for (std::string_view token : sy::split_list(f.value)) named.push_back(sy::to_lower(token));
    }
    std::vector<std::pair<std::string, std::string>> out;
    for (const sy::HeaderField& f : fields) {
        const std::string name = sy::to_lower(f.name);
        bool drop = false;
        for (const char* h : kHopByHop) drop = drop || name == h;
        for (const std::string& n : named) drop = drop || name == n;
        if (!drop) out.emplace_back(f.name, f.value);
    }
    return out;
}

std::string serialise(const Message& m) {
    std::string out;
    sy::ForwardingOptions fwd;
    fwd.x_forwarded_for = false;
    fwd.x_forwarded_proto = false;
    fwd.via = false;
    sy::append_upstream_request_head(out, m.head, fwd);
    if (m.head.framing == sy::BodyFraming::chunked) {
        if (!m.body.empty()) {
            sy::append_chunk_header(out, m.body.size());
            out += m.body;
            out += sy::kChunkEnd;
        }
        out += sy::kLastChunk;
    } else {
        out += m.body;
    }
    return out;
}

void check(const Message& sent, const Message& got) {
    if (got.head.method != sent.head.method || got.head.target != sent.head.target) std::abort();
    if (got.head.framing != sent.head.framing || got.body != sent.body) std::abort();
    if (end_to_end(got.head.headers) != end_to_end(sent.head.headers)) std::abort();
    // Nothing the proxy dropped may come back.
    if (end_to_end(got.head.headers).size() != got.head.headers.size() -
                                                  (sent.head.framing == sy::BodyFraming::chunked ? 1 : 0)) {
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(bytes), size);
    bool clean = false;
    const std::vector<Message> first = parse_all(input, &clean);
    for (const Message& m : first) {
        const std::string wire = serialise(m);
        bool clean_again = false;
        const std::vector<Message> second = parse_all(wire, &clean_again);
        // One message, all of it, nothing after it: the backend cannot read more or less.
        if (second.size() != 1 || !clean_again) std::abort();
        check(m, second.front());
    }
    return 0;
}
