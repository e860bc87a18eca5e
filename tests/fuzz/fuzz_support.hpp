// Shared by the fuzz targets: a parser handler that keeps the first head it sees.
#pragma once

#include <string_view>

#include "parser/http_parser.hpp"

namespace fuzz {

struct HeadCatcher final : sy::HttpParser::Handler {
    explicit HeadCatcher(sy::HttpParser::AfterHead after = sy::HttpParser::AfterHead::proceed) : after_head(after) {}
    sy::MessageHead head;
    bool have_head = false;
    sy::HttpParser::AfterHead after_head;
    sy::HttpParser::AfterHead on_head(sy::MessageHead& h) override {
        head = h;
        have_head = true;
        return after_head;
    }
    void on_body(std::string_view) override {}
    void on_message_end() override {}
};

}  // namespace fuzz
