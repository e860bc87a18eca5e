// libFuzzer target: the HTTP parser wrapper on arbitrary bytes, as a request parser and as a
// response parser, fed in two pieces split where the input says. Checks the wrapper's own
// contract (consumed never past the input, an error is final, heads only before bodies)
// while ASan/UBSan check memory. Build: cmake -DSWITCHYARD_FUZZ=ON with clang (tests/fuzz).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "parser/http_parser.hpp"
#include "parser/serialize.hpp"

namespace {

struct Handler final : sy::HttpParser::Handler {
    bool in_head_phase = true;
    int heads = 0;
    int ends = 0;
    sy::HttpParser::AfterHead on_head(sy::MessageHead& head) override {
        ++heads;
        in_head_phase = false;
        // Whatever was accepted must re-serialise without trouble.
        std::string out;
        if (head.status == 0) {
            sy::append_upstream_request_head(out, head, sy::ForwardingOptions{});
        } else {
            sy::append_client_response_head(out, head, sy::ClientResponseOptions{});
        }
        return heads % 2 == 0 ? sy::HttpParser::AfterHead::pause : sy::HttpParser::AfterHead::proceed;
    }
    void on_body(std::string_view) override {
        if (in_head_phase) std::abort();  // a body before its head
    }
    void on_message_end() override {
        ++ends;
        in_head_phase = true;
    }
};

void run(sy::HttpParser::Kind kind, const char* data, std::size_t size, std::size_t split) {
    Handler handler;
    sy::HttpParser parser(kind, handler, sy::HttpParser::Limits{4096, 32});
    const std::size_t cuts[2] = {split, size};
    std::size_t pos = 0;
    for (std::size_t end : cuts) {
        int guard = 0;
        while (pos < end && guard++ < 10000) {
            sy::HttpParser::Result r = parser.feed(data + pos, end - pos);
            if (r.consumed > end - pos) std::abort();
            pos += r.consumed;
            if (r.status == sy::HttpParser::Status::error) {
                // An error is final.
                if (parser.feed(data + pos, end - pos).status != sy::HttpParser::Status::error) std::abort();
                return;
            }
            if (r.status == sy::HttpParser::Status::need_more) break;
            if (r.status == sy::HttpParser::Status::paused) parser.resume();
            if (r.status == sy::HttpParser::Status::upgrade) parser.resume_after_upgrade();
        }
    }
    parser.finish();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    if (size < 2) return 0;
    const auto* data = reinterpret_cast<const char*>(bytes + 1);
    const std::size_t len = size - 1;
    const std::size_t split = len == 0 ? 0 : bytes[0] % (len + 1);
    run(sy::HttpParser::Kind::request, data, len, split);
    run(sy::HttpParser::Kind::response, data, len, split);
    return 0;
}
