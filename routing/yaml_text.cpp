#include "routing/yaml_text.hpp"

#include <cstdint>
#include <cstdio>
#include <sstream>
#include <vector>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

namespace sy {
namespace {

// Finds where a second YAML document starts, without building it. yaml-cpp 0.7's LoadAll
// never returns on some malformed inputs (its parser keeps yielding empty documents
// without consuming a byte: found by fuzz_config_loader), so the documents are counted
// here, and at most two are asked for.
class DocumentCounter final : public YAML::EventHandler {
public:
    void OnDocumentStart(const YAML::Mark& mark) override { starts_.push_back(mark); }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}

    // The start of the second document, if the text has one.
    static std::optional<YAML::Mark> second_document(const std::string& text) {
        std::istringstream in(text);
        YAML::Parser parser(in);
        DocumentCounter counter;
        if (!parser.HandleNextDocument(counter) || !parser.HandleNextDocument(counter)) return std::nullopt;
        return counter.starts_.size() > 1 ? counter.starts_[1] : YAML::Mark::null_mark();
    }

private:
    std::vector<YAML::Mark> starts_;
};

}  // namespace

// YAML 1.2 §5.1: a stream is Unicode (here: UTF-8) of printable characters: TAB, LF, CR
// and everything from U+0020 except DEL, the C1 controls but NEL, surrogates, U+FFFE and
// U+FFFF. yaml-cpp 0.7 misreads other bytes (a configuration full of keys read as
// "empty"), so they are refused here with their position (column in characters).
std::optional<ConfigError> check_yaml_text(std::string_view text, const std::string& file) {
    int line = 1;
    int column = 1;
    std::size_t i = 0;
    if (text.substr(0, 3) == "\xEF\xBB\xBF") i = 3;  // a UTF-8 byte order mark
    while (i < text.size()) {
        const auto b = static_cast<unsigned char>(text[i]);
        std::uint32_t cp = b;
        std::size_t n = 1;
        if (b >= 0x80) {
            std::uint32_t min = 0;
            if (b >= 0xC2 && b <= 0xDF) n = 2, cp = b & 0x1F, min = 0x80;
            else if (b >= 0xE0 && b <= 0xEF) n = 3, cp = b & 0x0F, min = 0x800;
            else if (b >= 0xF0 && b <= 0xF4) n = 4, cp = b & 0x07, min = 0x10000;
            else n = 0;
            for (std::size_t k = 1; n != 0 && k < n; ++k) {
                const auto c = i + k < text.size() ? static_cast<unsigned char>(text[i + k]) : 0;
                if ((c & 0xC0) != 0x80) n = 0;
                else cp = cp << 6 | (c & 0x3F);
            }
            if (n == 0 || cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
                char hex[8];
                std::snprintf(hex, sizeof hex, "0x%02X", b);
                return ConfigError{file, line, column, std::string("invalid UTF-8 (byte ") + hex + ")"};
            }
        }
        const bool printable = cp == '\t' || cp == '\n' || cp == '\r' || (cp >= 0x20 && cp != 0x7F && !(cp >= 0x80 && cp <= 0x9F && cp != 0x85) && cp != 0xFFFE && cp != 0xFFFF);
        if (!printable) {
            char hex[16];
            std::snprintf(hex, sizeof hex, "U+%04X", static_cast<unsigned>(cp));
            return ConfigError{file, line, column, std::string("control character ") + hex + " is not allowed in YAML"};
        }
        if (cp == '\n') {
            ++line;
            column = 1;
        } else {
            ++column;
        }
        i += n;
    }
    return std::nullopt;
}

std::optional<YAML::Mark> second_yaml_document(const std::string& text) {
    return DocumentCounter::second_document(text);
}

}  // namespace sy
