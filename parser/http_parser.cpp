// The one wrapper around llhttp 8.1 (see docs/architecture.md, "Parsing" for what it
// checks and what it leaves to this file).
//
// How a message flows:
//   feed() -> scan_head() over the head bytes (obs-fold, head size), then llhttp_execute
//   -> Callbacks assemble head_ -> on_headers_complete calls Handler::on_head
//   -> on_body -> on_message_complete calls Handler::on_message_end and stops llhttp
//   (HPE_PAUSED, or HPE_PAUSED_UPGRADE which llhttp raises itself for upgrades).
// Every callback is noexcept: nothing thrown may cross llhttp's C frames.
#include "parser/http_parser.hpp"

#include <cstring>

#include "parser/chunk_line.hpp"
#include "parser/tokens.hpp"

namespace sy {
namespace {

void trim_in_place(std::string& s) {
    std::size_t begin = 0;
    while (begin < s.size() && is_ows(s[begin])) ++begin;
    std::size_t end = s.size();
    while (end > begin && is_ows(s[end - 1])) --end;
    if (end != s.size()) s.erase(end);
    if (begin != 0) s.erase(0, begin);
}

// RFC 9110 §7.6.1: a connection option names a field meant for the next hop only, and "a
// sender MUST NOT send a connection option corresponding to a field that is intended for all
// recipients of the content". The proxy removes every field Connection names, so a message
// naming its Content-Length would go on with its body but without its length, and the next
// hop would read the body as the next message (request smuggling, or a response desync); a
// request naming Host would reach the backend without the authority it was routed by. Such a
// message is refused: why, or nullptr.
const char* misnamed_connection_option(const HeaderList& headers, bool request) {
    for (const HeaderField& field : headers) {
        if (field.id != FieldId::connection) continue;
        if (list_has_token(field.value, "Content-Length")) return "Connection names Content-Length";
        if (request && list_has_token(field.value, "Host")) return "Connection names Host";
    }
    return nullptr;
}

// RFC 9112 §6.3 rule 1: these responses never have content, whatever their fields say.
bool response_has_no_body(int status) {
    return status / 100 == 1 || status == 204 || status == 304;
}

}  // namespace

int error_status(ParseError e) {
    switch (e) {
        case ParseError::none: return 200;
        case ParseError::header_too_large:
        case ParseError::too_many_headers: return 431;
        case ParseError::version: return 505;
        case ParseError::bad_message:
        case ParseError::h2_preface:
        case ParseError::unexpected_eof: return 400;
    }
    return 400;
}

struct HttpParser::Callbacks {
    static HttpParser& self(llhttp_t* p) { return *static_cast<HttpParser*>(p->data); }

    // Records why a callback refused the message; llhttp then stops with an error.
    static int refuse(HttpParser& s, ParseError error, const char* reason) {
        s.pending_error_ = error;
        s.pending_reason_ = reason;
        llhttp_set_error_reason(&s.parser_, reason);
        return HPE_USER;
    }

    // Trampolines: llhttp's C callbacks -> the functions below, exceptions stopped here.
    template <int (*Fn)(HttpParser&)>
    static int notify(llhttp_t* p) noexcept {
        HttpParser& s = self(p);
        try {
            return Fn(s);
        } catch (...) {
            return refuse(s, ParseError::bad_message, "exception in parser callback");
        }
    }
    template <int (*Fn)(HttpParser&, const char*, std::size_t)>
    static int data(llhttp_t* p, const char* at, std::size_t len) noexcept {
        HttpParser& s = self(p);
        try {
            return Fn(s, at, len);
        } catch (...) {
            return refuse(s, ParseError::bad_message, "exception in parser callback");
        }
    }

    static int message_begin(HttpParser& s) {
        s.head_ = MessageHead{};
        s.head_.headers.reserve(16);  // one allocation for a typical head, not five
        s.in_message_ = true;
        s.head_complete_ = false;
        s.in_field_name_ = false;
        s.trailer_bytes_ = 0;
        s.status_ = 0;
        s.framing_ = BodyFraming::none;
        s.upgrade_by_pause_ = false;
        s.chunk_crlf_left_ = 0;
        s.chunk_line_next_ = false;
        s.internal_pause_ = false;
        s.last_chunk_ = false;
        s.chunk_line_buf_.clear();
        s.finished_ = false;
        return 0;
    }

    static int method(HttpParser& s, const char* at, std::size_t len) {
        s.head_.method.append(at, len);
        return 0;
    }
    static int url(HttpParser& s, const char* at, std::size_t len) {
        s.head_.target.append(at, len);
        return 0;
    }
    static int status(HttpParser& s, const char* at, std::size_t len) {
        s.head_.reason.append(at, len);
        return 0;
    }

    // Trailer fields (after a chunked body) are parsed by llhttp with the same callbacks;
    // they are dropped, only counted against the head size limit.
    static int count_trailer(HttpParser& s, std::size_t len) {
        s.trailer_bytes_ += len;
        if (s.trailer_bytes_ > s.limits_.max_header_bytes) {
            return refuse(s, ParseError::header_too_large, "trailer section too large");
        }
        return 0;
    }

    static int header_field(HttpParser& s, const char* at, std::size_t len) {
        if (s.head_complete_) return count_trailer(s, len);
        if (!s.in_field_name_) {
            s.head_.headers.emplace_back();
            s.in_field_name_ = true;
        }
        s.head_.headers.back().name.append(at, len);
        return 0;
    }
    static int header_field_complete(HttpParser& s) {
        const bool had_name = s.in_field_name_;
        s.in_field_name_ = false;
        if (s.head_complete_) return 0;
        // llhttp 8.1 reports ": a" as a field with an empty name.
        if (!had_name || s.head_.headers.back().name.empty()) {
            return refuse(s, ParseError::bad_message, "empty field name");
        }
        // RFC 9112 §5.1: no whitespace between field name and colon; llhttp 8.1 keeps it
        // as part of the name ("Transfer-Encoding : chunked" smuggling).
        const std::string& name = s.head_.headers.back().name;
        if (is_ows(name.back())) {
            return refuse(s, ParseError::bad_message, "whitespace before colon in field");
        }
        // RFC 9110 §5.1: field-name = token; llhttp 8.1 lets e.g. "X Y" through.
        for (char c : name) {
            if (!is_tchar(c)) return refuse(s, ParseError::bad_message, "invalid character in field name");
        }
        if (s.head_.headers.size() > s.limits_.max_headers) {
            return refuse(s, ParseError::too_many_headers, "too many header fields");
        }
        s.head_.headers.back().id = field_id(name);
        return 0;
    }
    static int header_value(HttpParser& s, const char* at, std::size_t len) {
        if (s.head_complete_) return count_trailer(s, len);
        if (s.head_.headers.empty()) return 0;
        s.head_.headers.back().value.append(at, len);
        return 0;
    }
    static int header_value_complete(HttpParser& s) {
        if (!s.head_complete_ && !s.head_.headers.empty()) {
            trim_in_place(s.head_.headers.back().value);
        }
        return 0;
    }

    static int headers_complete(HttpParser& s) {
        llhttp_t& p = s.parser_;
        s.head_complete_ = true;
        s.scanning_head_ = false;
        MessageHead& head = s.head_;
        head.http_major = p.http_major;
        head.http_minor = p.http_minor;

        const bool response = s.kind_ == Kind::response;
        if (response) {
            head.status = p.status_code;
            s.status_ = head.status;
            // Setting F_SKIPBODY is what returning 1 from this callback does; setting it
            // here lets this callback still return HPE_PAUSED.
            if (s.response_to_head_ || response_has_no_body(head.status)) p.flags |= F_SKIPBODY;
        } else {
            if (head.method.empty()) {
                head.method = llhttp_method_name(static_cast<llhttp_method_t>(p.method));
            }
            // RFC 9110 §15.6.6: an HTTP/1.1 server answers another major version with 505
            // (the h2 preface was caught before this).
            if (p.http_major != 1) {
                return refuse(s, ParseError::version, "HTTP major version not supported");
            }
            // RFC 9112 §6.3 rule 4; llhttp would refuse it only after this callback.
            if ((p.flags & F_TRANSFER_ENCODING) && !(p.flags & F_CHUNKED)) {
                return refuse(s, ParseError::bad_message,
                              "Request has invalid `Transfer-Encoding`");
            }
        }

        if (const char* why = misnamed_connection_option(head.headers, !response)) {
            return refuse(s, ParseError::bad_message, why);
        }

        if (p.flags & F_SKIPBODY) {
            head.framing = BodyFraming::none;
        } else if (p.flags & F_CHUNKED) {
            head.framing = BodyFraming::chunked;
        } else if (p.flags & F_CONTENT_LENGTH) {
            head.framing = BodyFraming::content_length;
            head.content_length = p.content_length;
        } else {
            head.framing = response ? BodyFraming::until_close : BodyFraming::none;
        }
        s.framing_ = head.framing;
        head.keep_alive = llhttp_should_keep_alive(&p) != 0;
        head.upgrade = p.upgrade != 0 || (response && head.status == 101);

        const AfterHead after = s.handler_.on_head(head);
        if (head.framing == BodyFraming::chunked) {
            // Stop llhttp before the first chunk-size line: the wrapper reads it.
            s.chunk_line_next_ = true;
            s.internal_pause_ = after != AfterHead::pause;
            return HPE_PAUSED;
        }
        return after == AfterHead::pause ? HPE_PAUSED : 0;
    }

    static int body(HttpParser& s, const char* at, std::size_t len) {
        s.handler_.on_body(std::string_view(at, len));
        // llhttp has already subtracted this span: 0 left means the chunk's data ended
        // here, and the next two bytes must be its CRLF (RFC 9112 §7.1).
        if (s.framing_ == BodyFraming::chunked && s.parser_.content_length == 0) {
            s.chunk_crlf_left_ = 2;
            return s.check_chunk_crlf(at + len) ? 0
                                                 : refuse(s, ParseError::bad_message,
                                                          "chunk data not followed by CRLF");
        }
        return 0;
    }

    static int chunk_complete(HttpParser& s) {
        if (s.chunk_crlf_left_ != 0) {
            return refuse(s, ParseError::bad_message, "chunk data not followed by CRLF");
        }
        if (s.last_chunk_) return 0;  // the message ends here (after any trailers)
        s.chunk_line_next_ = true;
        s.internal_pause_ = true;
        return HPE_PAUSED;
    }

    static int message_complete(HttpParser& s) {
        s.in_message_ = false;
        s.restart_head_scan();
        const bool final_response = s.kind_ == Kind::response && s.status_ / 100 != 1;
        if (final_response) s.response_to_head_ = false;
        s.handler_.on_message_end();
        if (s.finishing_) return 0;
        // With the upgrade flag llhttp stops by itself with HPE_PAUSED_UPGRADE right
        // after this callback; a 101 without it would go on as HTTP, so stop it here.
        if (s.parser_.upgrade) return 0;
        if (s.kind_ == Kind::response && s.status_ == 101) s.upgrade_by_pause_ = true;
        return HPE_PAUSED;
    }
};

bool HttpParser::check_chunk_crlf(const char* p) {
    static constexpr char kCrlf[] = "\r\n";
    while (chunk_crlf_left_ > 0 && p < feed_end_) {
        if (*p != kCrlf[2 - chunk_crlf_left_]) return false;
        ++p;
        --chunk_crlf_left_;
    }
    return true;
}

// One set of callbacks for every parser (llhttp keeps a pointer to it): built once.
const llhttp_settings_t& HttpParser::settings() {
    static const llhttp_settings_t shared = [] {
        llhttp_settings_t st;
        llhttp_settings_init(&st);
        st.on_message_begin = &Callbacks::notify<&Callbacks::message_begin>;
        st.on_method = &Callbacks::data<&Callbacks::method>;
        st.on_url = &Callbacks::data<&Callbacks::url>;
        st.on_status = &Callbacks::data<&Callbacks::status>;
        st.on_header_field = &Callbacks::data<&Callbacks::header_field>;
        st.on_header_field_complete = &Callbacks::notify<&Callbacks::header_field_complete>;
        st.on_header_value = &Callbacks::data<&Callbacks::header_value>;
        st.on_header_value_complete = &Callbacks::notify<&Callbacks::header_value_complete>;
        st.on_headers_complete = &Callbacks::notify<&Callbacks::headers_complete>;
        st.on_body = &Callbacks::data<&Callbacks::body>;
        st.on_chunk_complete = &Callbacks::notify<&Callbacks::chunk_complete>;
        st.on_message_complete = &Callbacks::notify<&Callbacks::message_complete>;
        return st;
    }();
    return shared;
}

HttpParser::HttpParser(Kind kind, Handler& handler, Limits limits)
    : kind_(kind), handler_(handler), limits_(limits) {
    start_llhttp();
}

void HttpParser::start_llhttp() {
    llhttp_init(&parser_, kind_ == Kind::request ? HTTP_REQUEST : HTTP_RESPONSE, &settings());
    parser_.data = this;
    // RFC 9110 §2.5: a request in a higher minor version of HTTP/1 is handled as 1.1;
    // strict llhttp refuses anything but 1.0 and 1.1. The major version is checked in
    // on_headers_complete (505).
    if (kind_ == Kind::request) parser_.lenient_flags |= LENIENT_VERSION;
}

std::size_t HttpParser::bare_cr(std::size_t at) {
    scan_error_ = ParseError::bad_message;
    scan_reason_ = "bare CR in header section";
    return at;
}

void HttpParser::restart_head_scan() {
    scanning_head_ = true;
    pending_cr_ = false;
    head_bytes_ = 0;
    start_line_seen_ = false;
    in_start_line_ = true;
    line_length_ = 0;
}

// Counts head bytes (start line, fields, final CRLF; also CRLFs before the start line)
// and finds obs-fold (RFC 9112 §5.2: a field line starting with SP or HTAB). Lines end
// at LF: llhttp rejects a CR that is not followed by LF.
// Line by line with memchr (the head is scanned once more by llhttp; this pass must stay
// cheap): only the first byte of each header line and the line ends are looked at.
std::size_t HttpParser::scan_head(const char* data, std::size_t len) {
    // Bytes [0, room) fit under the limit; the byte at `room`, reached before the head
    // ends, is one too many.
    const std::size_t room =
        limits_.max_header_bytes > head_bytes_ ? limits_.max_header_bytes - head_bytes_ : 0;
    const std::size_t n = len < room ? len : room;
    std::size_t i = 0;
    while (i < n) {
        const char c = data[i];
        // RFC 9112 §2.2: a CR is only allowed right before LF. llhttp 8.1 takes "X: \rY"
        // as an empty value and drops the Y.
        if (pending_cr_) {
            pending_cr_ = false;
            if (c != '\n') return bare_cr(i);
        }
        if (!start_line_seen_) {
            if (c == '\r' || c == '\n') {
                pending_cr_ = c == '\r';
                ++i;
                continue;
            }
            start_line_seen_ = true;
        }
        if (!in_start_line_ && line_length_ == 0) {
            // The first byte of a header line: an empty line ends the head; SP/HTAB is
            // obs-fold (RFC 9112 §5.2), which llhttp would accept.
            if (c == '\r') {
                pending_cr_ = true;
                ++i;
                continue;
            }
            if (c == '\n') {
                head_bytes_ += i + 1;
                scanning_head_ = false;
                return len;
            }
            if (is_ows(c)) {
                scan_error_ = ParseError::bad_message;
                scan_reason_ = "obsolete line folding in header";
                return i;
            }
        }
        const auto* nl = static_cast<const char*>(std::memchr(data + i, '\n', n - i));
        const char* line_end = nl != nullptr ? nl : data + n;
        for (const char* p = data + i;
             (p = static_cast<const char*>(std::memchr(p, '\r', static_cast<std::size_t>(line_end - p)))) != nullptr;
             ++p) {
            if (p + 1 != line_end) return bare_cr(static_cast<std::size_t>(p - data));
            pending_cr_ = nl == nullptr;  // CRLF, or a CR whose LF comes in the next feed()
            break;
        }
        if (nl == nullptr) {
            line_length_ = 1;  // the line goes on in the next feed()
            i = n;
            break;
        }
        i = static_cast<std::size_t>(nl - data) + 1;
        in_start_line_ = false;
        line_length_ = 0;
    }
    head_bytes_ += i;
    if (n < len) {
        ++head_bytes_;
        scan_error_ = ParseError::header_too_large;
        scan_reason_ = "header section too large";
        return n;
    }
    return len;
}

HttpParser::Result HttpParser::fail(ParseError error, const char* reason, std::size_t consumed) {
    dead_ = true;
    error_ = error;
    error_reason_ = reason;
    return Result{Status::error, consumed, error, reason};
}

HttpParser::Result HttpParser::feed(const char* data, std::size_t len) {
    if (dead_) return Result{Status::error, 0, error_, error_reason_};
    // Not resumed yet: llhttp would answer with a stale error position.
    switch (llhttp_get_errno(&parser_)) {
        case HPE_PAUSED:
            return Result{upgrade_by_pause_ ? Status::upgrade : Status::paused, 0};
        case HPE_PAUSED_UPGRADE:
            return Result{Status::upgrade, 0};
        default:
            break;
    }

    std::size_t off = 0;
    while (true) {
        if (chunk_line_next_) {
            const LineStep step = take_chunk_line(data + off, len - off);
            if (step.error != nullptr) return fail(ParseError::bad_message, step.error, off + step.used);
            off += step.used;
            if (!step.done) return Result{Status::need_more, len};
        }

        feed_end_ = data + len;
        if (chunk_crlf_left_ > 0 && !check_chunk_crlf(data + off)) {
            return fail(ParseError::bad_message, "chunk data not followed by CRLF", off);
        }

        std::size_t limit = len;
        scan_error_ = ParseError::none;
        if (scanning_head_) limit = off + scan_head(data + off, len - off);

        pending_error_ = ParseError::none;
        const llhttp_errno_t err = llhttp_execute(&parser_, data + off, limit - off);
        const char* pos = llhttp_get_error_pos(&parser_);
        const std::size_t at = (pos != nullptr && pos >= data && pos <= data + len)
                                   ? static_cast<std::size_t>(pos - data)
                                   : off;
        switch (err) {
            case HPE_OK:
                if (limit < len && scan_error_ != ParseError::none) {
                    return fail(scan_error_, scan_reason_, limit);
                }
                return Result{Status::need_more, len};
            case HPE_PAUSED:
                if (internal_pause_) {  // a chunk-size line begins at `at`
                    internal_pause_ = false;
                    llhttp_resume(&parser_);
                    off = at;
                    continue;
                }
                return Result{upgrade_by_pause_ ? Status::upgrade : Status::paused, at};
            case HPE_PAUSED_UPGRADE:
                return Result{Status::upgrade, at};
            case HPE_PAUSED_H2_UPGRADE:
                return fail(ParseError::h2_preface, "HTTP/2 connection preface", at);
            default:
                if (pending_error_ != ParseError::none) return fail(pending_error_, pending_reason_, at);
                return fail(ParseError::bad_message, llhttp_get_error_reason(&parser_), at);
        }
    }
}

HttpParser::LineStep HttpParser::take_chunk_line(const char* data, std::size_t len) {
    const void* nl = std::memchr(data, '\n', len);
    const std::size_t take = nl != nullptr ? static_cast<std::size_t>(static_cast<const char*>(nl) - data) + 1 : len;
    if (chunk_line_buf_.size() + take > kMaxChunkLine) {
        return LineStep{take, false, "chunk size line too long"};
    }
    chunk_line_buf_.append(data, take);
    if (nl == nullptr) return LineStep{take, false, nullptr};

    std::string_view line(chunk_line_buf_);
    line.remove_suffix(1);  // LF
    if (line.empty() || line.back() != '\r') return LineStep{take, false, "chunk size line not ended by CRLF"};
    line.remove_suffix(1);
    const ChunkLine parsed = parse_chunk_line(line);
    chunk_line_buf_.clear();
    if (!parsed.ok) return LineStep{take, false, parsed.reason};

    chunk_line_next_ = false;
    last_chunk_ = parsed.size == 0;
    char canonical[24];
    const std::size_t n = format_chunk_line(parsed.size, canonical);
    feed_end_ = canonical + n;
    const llhttp_errno_t err = llhttp_execute(&parser_, canonical, n);
    if (err != HPE_OK) return LineStep{take, false, llhttp_get_error_reason(&parser_)};
    return LineStep{take, true, nullptr};
}

void HttpParser::resume() {
    if (llhttp_get_errno(&parser_) == HPE_PAUSED && !upgrade_by_pause_) llhttp_resume(&parser_);
}

void HttpParser::resume_after_upgrade() {
    if (llhttp_get_errno(&parser_) == HPE_PAUSED_UPGRADE) {
        llhttp_resume_after_upgrade(&parser_);
    } else if (llhttp_get_errno(&parser_) == HPE_PAUSED && upgrade_by_pause_) {
        llhttp_resume(&parser_);
    }
    upgrade_by_pause_ = false;
}

void HttpParser::set_response_to_head(bool yes) { response_to_head_ = yes; }

// Between messages llhttp may still be paused right after on_message_complete, before
// it marks the connection safe to close; in_message_ is the authority there.
HttpParser::Result HttpParser::finish() {
    if (dead_) return Result{Status::error, 0, error_, error_reason_};
    if (finished_ || !in_message_) {
        finished_ = true;
        return Result{};
    }
    finished_ = true;
    finishing_ = true;
    pending_error_ = ParseError::none;
    llhttp_errno_t err = HPE_OK;
    if (llhttp_get_errno(&parser_) == HPE_PAUSED) {
        // Paused right after the head: let llhttp take the steps that need no bytes (a
        // bodyless message completes here, a close-delimited body starts).
        llhttp_resume(&parser_);
        static constexpr char kNothing = 0;
        feed_end_ = &kNothing;
        err = llhttp_execute(&parser_, &kNothing, 0);
        if (err == HPE_PAUSED_UPGRADE) err = HPE_OK;  // the message ended
    }
    if (err == HPE_OK && in_message_) err = llhttp_finish(&parser_);
    finishing_ = false;
    if (err == HPE_INVALID_EOF_STATE || (err == HPE_OK && in_message_)) {
        return fail(ParseError::unexpected_eof, "connection closed in the middle of a message", 0);
    }
    if (err != HPE_OK) {
        if (pending_error_ != ParseError::none) return fail(pending_error_, pending_reason_, 0);
        return fail(ParseError::bad_message, llhttp_get_error_reason(&parser_), 0);
    }
    return Result{};
}

bool HttpParser::in_message() const { return in_message_; }

void HttpParser::reset() {
    start_llhttp();
    head_ = MessageHead{};
    restart_head_scan();
    scan_error_ = ParseError::none;
    scan_reason_ = "";
    in_message_ = false;
    head_complete_ = false;
    in_field_name_ = false;
    trailer_bytes_ = 0;
    status_ = 0;
    framing_ = BodyFraming::none;
    response_to_head_ = false;
    upgrade_by_pause_ = false;
    finishing_ = false;
    finished_ = false;
    chunk_crlf_left_ = 0;
    feed_end_ = nullptr;
    chunk_line_next_ = false;
    internal_pause_ = false;
    last_chunk_ = false;
    chunk_line_buf_.clear();
    dead_ = false;
    error_ = ParseError::none;
    error_reason_ = "";
    pending_error_ = ParseError::none;
    pending_reason_ = "";
}

}  // namespace sy
