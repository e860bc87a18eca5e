// The one wrapper around llhttp (Debian's 8.1). Strict: no lenient flags, plus the checks
// llhttp leaves to us (docs/architecture.md, "Parsing"): obs-fold, whitespace before the
// colon, header-section size and field-count limits.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <llhttp.h>

#include "parser/message.hpp"

namespace sy {

enum class ParseError {
    none,
    bad_message,       // malformed syntax or ambiguous framing: 400 (request) / 502 (response)
    header_too_large,  // head over limits.max_header_bytes: 431
    too_many_headers,  // over limits.max_headers field lines: 431
    h2_preface,        // "PRI * HTTP/2.0": an h2 prior-knowledge preface; never forwarded
    version,           // a request in a major version other than 1 ("GET / HTTP/2.0"): 505
    unexpected_eof,    // the peer closed in the middle of a message
};

// The status the proxy answers a client with for a request-side parse error.
int error_status(ParseError e);

class HttpParser {
public:
    enum class Kind { request, response };
    struct Limits {
        std::size_t max_header_bytes = 32 * 1024;
        std::size_t max_headers = 100;
    };

    enum class AfterHead { proceed, pause };

    // Receives a message's parts. Called only from inside feed()/finish(); must not
    // destroy the parser.
    class Handler {
    public:
        virtual ~Handler() = default;
        // The head is complete and valid. Return pause to stop feed() right after it.
        virtual AfterHead on_head(MessageHead& head) = 0;
        // Body bytes with transfer coding removed; a view into the buffer given to feed().
        virtual void on_body(std::string_view data) = 0;
        // End of the message (also after a 1xx response head). feed() always stops here.
        virtual void on_message_end() = 0;
    };

    enum class Status {
        need_more,  // every byte was consumed; feed more
        paused,     // stopped after on_head(pause) or on_message_end(); see `consumed`
        upgrade,    // stopped at the end of a message with llhttp's upgrade flag (request
                    // with Upgrade + Connection: upgrade, or a 101 response); on_message_end
                    // was called; `consumed` ends at the first byte after the message
        error,
    };
    struct Result {
        Status status = Status::need_more;
        std::size_t consumed = 0;
        ParseError error = ParseError::none;
        const char* reason = "";  // short human-readable reason for logs, never sent
    };

    HttpParser(Kind kind, Handler& handler, Limits limits);
    HttpParser(const HttpParser&) = delete;
    HttpParser& operator=(const HttpParser&) = delete;

    // Parses as much of data[0..len) as allowed. After `paused` call resume(), after
    // `upgrade` call resume_after_upgrade() (to go on as HTTP), then feed the bytes from
    // `consumed` on again. After `error` the parser is dead until reset().
    Result feed(const char* data, std::size_t len);
    void resume();
    void resume_after_upgrade();

    // Response parsers: the next response answers a HEAD request, so it has no body.
    void set_response_to_head(bool yes);

    // The peer closed. Completes a close-delimited response (on_message_end is called);
    // returns error unexpected_eof when a message was in progress, need_more otherwise.
    Result finish();

    // True from the first byte of a message until its end.
    bool in_message() const;

    // Forget everything; ready for a new first message.
    void reset();

    // Limits for the next message head (a reload changed them between two requests).
    void set_limits(Limits limits) { limits_ = limits; }

private:
    // The llhttp callbacks, defined in http_parser.cpp; they reach `this` through
    // llhttp_t::data.
    struct Callbacks;
    friend struct Callbacks;

    // Scans raw head bytes for what llhttp does not report (obs-fold, head size) and
    // returns the offset of the first offending byte, or `len` when there is none.
    std::size_t scan_head(const char* data, std::size_t len);
    void restart_head_scan();
    // Records a CR not followed by LF at `at`; returns `at` (scan_head's result).
    std::size_t bare_cr(std::size_t at);
    // Checks the CRLF after chunk data from `p` up to feed_end_; false on a mismatch.
    bool check_chunk_crlf(const char* p);
    // Reads a chunk-size line from data[0..len) into chunk_line_buf_; when it is complete
    // (a false `done` otherwise), checks it and gives llhttp its canonical form.
    struct LineStep {
        std::size_t used = 0;
        bool done = false;
        const char* error = nullptr;
    };
    LineStep take_chunk_line(const char* data, std::size_t len);
    void start_llhttp();
    static const llhttp_settings_t& settings();
    Result fail(ParseError error, const char* reason, std::size_t consumed);

    Kind kind_;
    Handler& handler_;
    Limits limits_;
    llhttp_t parser_{};
    MessageHead head_;

    // Raw head scan (scan_head): runs ahead of llhttp over the head bytes only.
    bool scanning_head_ = true;
    std::size_t head_bytes_ = 0;
    bool start_line_seen_ = false;  // a byte other than CR/LF began the start line
    bool in_start_line_ = true;
    std::size_t line_length_ = 0;   // bytes of the current line, CR not counted
    bool pending_cr_ = false;       // the last byte scanned was a CR: the next must be LF
    ParseError scan_error_ = ParseError::none;
    const char* scan_reason_ = "";

    // Message state, as seen from llhttp's callbacks.
    bool in_message_ = false;
    bool head_complete_ = false;
    bool in_field_name_ = false;
    std::size_t trailer_bytes_ = 0;
    int status_ = 0;
    BodyFraming framing_ = BodyFraming::none;
    bool response_to_head_ = false;
    bool upgrade_by_pause_ = false;  // a 101 without llhttp's upgrade flag stopped the parse
    bool finishing_ = false;
    bool finished_ = false;

    // Chunk data must be followed by CRLF; llhttp 8.1 skips any two bytes there.
    std::size_t chunk_crlf_left_ = 0;
    const char* feed_end_ = nullptr;

    // Chunk-size lines are read by the wrapper (parser/chunk_line.hpp): llhttp is paused
    // where one begins and fed the canonical line once it is complete.
    bool chunk_line_next_ = false;   // the next body byte begins a chunk-size line
    bool internal_pause_ = false;    // llhttp paused for the wrapper, not for the handler
    bool last_chunk_ = false;        // the size-0 chunk was read: trailers follow
    std::string chunk_line_buf_;

    bool dead_ = false;
    ParseError error_ = ParseError::none;
    const char* error_reason_ = "";
    ParseError pending_error_ = ParseError::none;  // set by a callback that failed
    const char* pending_reason_ = "";
};

}  // namespace sy
