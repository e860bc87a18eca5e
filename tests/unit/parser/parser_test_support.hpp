// Shared helpers for the parser unit tests: a recording Handler and a driver that feeds
// input in pieces the way the proxy does (resume after every stop, feed the rest).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "parser/http_parser.hpp"

namespace sy::test {

struct Recorder : HttpParser::Handler {
    std::vector<MessageHead> heads;
    std::vector<std::string> bodies;
    std::string log;  // H = head, B = body bytes, E = message end
    bool pause_on_head = false;

    HttpParser::AfterHead on_head(MessageHead& head) override {
        heads.push_back(head);
        bodies.emplace_back();
        log += 'H';
        return pause_on_head ? HttpParser::AfterHead::pause : HttpParser::AfterHead::proceed;
    }
    void on_body(std::string_view data) override {
        bodies.back().append(data);
        if (log.empty() || log.back() != 'B') log += 'B';
    }
    void on_message_end() override { log += 'E'; }
};

struct DriveResult {
    HttpParser::Result last;
    std::vector<std::string> stops;  // "paused@N" / "upgrade@N" relative to the whole input
    std::size_t upgrades = 0;
};

// Feeds `input` cut at `cuts` (sorted offsets). Pauses are resumed at once; upgrades
// stop the drive (stop_at_upgrade) or are declined with resume_after_upgrade.
inline DriveResult drive(HttpParser& parser, std::string_view input,
                         const std::vector<std::size_t>& cuts, bool stop_at_upgrade = false) {
    DriveResult out;
    std::size_t begin = 0;
    std::vector<std::size_t> ends = cuts;
    ends.push_back(input.size());
    for (std::size_t end : ends) {
        while (begin < end) {
            HttpParser::Result r = parser.feed(input.data() + begin, end - begin);
            out.last = r;
            if (r.status == HttpParser::Status::error) return out;
            if (r.status == HttpParser::Status::need_more) {
                begin = end;
                break;
            }
            begin += r.consumed;
            if (r.status == HttpParser::Status::paused) {
                out.stops.push_back("paused@" + std::to_string(begin));
                parser.resume();
            } else {
                out.stops.push_back("upgrade@" + std::to_string(begin));
                ++out.upgrades;
                if (stop_at_upgrade) return out;
                parser.resume_after_upgrade();
            }
        }
    }
    return out;
}

// A comparable text form of a head.
inline std::string describe(const MessageHead& h) {
    std::string s = h.method + "|" + h.target + "|" + std::to_string(h.status) + "|" + h.reason + "|" +
                    std::to_string(h.http_major) + "." + std::to_string(h.http_minor) +
                    "|ka=" + std::to_string(h.keep_alive) + "|up=" + std::to_string(h.upgrade) +
                    "|framing=" + std::to_string(static_cast<int>(h.framing)) +
                    "|cl=" + std::to_string(h.content_length);
    for (const HeaderField& f : h.headers) s += "\n" + f.name + ": [" + f.value + "]";
    return s;
}

inline std::vector<std::size_t> every_byte(std::size_t n) {
    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i < n; ++i) cuts.push_back(i);
    return cuts;
}

}  // namespace sy::test
