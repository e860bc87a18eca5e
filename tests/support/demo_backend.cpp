// demo_backend: the backend of the README demo and of the integration tests.
//
//   demo_backend [--listen HOST:PORT]      (default 127.0.0.1:9000; port 0 = any)
//
// Prints "demo_backend: listening on HOST:PORT" (the real port) on stderr once bound, and
// exits with status 0 on SIGINT or SIGTERM.
//
// - Any path but /ws: 200 text/plain whose body is the request as it arrived: the request
//   line, every header field "Name: value" in order, an empty line, then the body bytes.
//   Keep-alive, pipelining, Content-Length and chunked request bodies are supported.
// - /ws with a valid RFC 6455 handshake: 101, then a WebSocket echo (demo_websocket.hpp).
//   Any other request to /ws: 400 and close.
#include <llhttp.h>
#include <uv.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "demo_websocket.hpp"

namespace {

struct Field {
    std::string name;
    std::string value;
};

// One request as llhttp delivered it.
struct Request {
    std::string method;
    std::string target;
    std::string version;  // "HTTP/1.1"
    std::vector<Field> fields;
    std::string body;
    bool head_method = false;
};

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i]))) {
            return false;
        }
    }
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

// True when one of the fields named `name` holds `token` in its comma list
// (RFC 9110 §5.6.1; case-insensitive, whitespace around commas ignored).
bool has_token(const std::vector<Field>& fields, std::string_view name, std::string_view token) {
    for (const Field& f : fields) {
        if (!iequals(f.name, name)) {
            continue;
        }
        std::string_view rest = f.value;
        while (!rest.empty()) {
            const std::size_t comma = rest.find(',');
            if (iequals(trim(rest.substr(0, comma)), token)) {
                return true;
            }
            rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        }
    }
    return false;
}

std::vector<const Field*> fields_named(const std::vector<Field>& fields, std::string_view name) {
    std::vector<const Field*> found;
    for (const Field& f : fields) {
        if (iequals(f.name, name)) {
            found.push_back(&f);
        }
    }
    return found;
}

std::string_view path_of(std::string_view target) {
    return target.substr(0, target.find('?'));
}

// Sec-WebSocket-Accept when `req` is a valid opening handshake (RFC 6455 §4.2.1), else
// nullopt.
std::optional<std::string> websocket_accept(const Request& req) {
    if (req.method != "GET" || req.version != "HTTP/1.1" ||
        !has_token(req.fields, "Upgrade", "websocket") ||
        !has_token(req.fields, "Connection", "upgrade")) {
        return std::nullopt;
    }
    const auto versions = fields_named(req.fields, "Sec-WebSocket-Version");
    const auto keys = fields_named(req.fields, "Sec-WebSocket-Key");
    if (versions.size() != 1 || trim(versions[0]->value) != "13" || keys.size() != 1) {
        return std::nullopt;
    }
    return demo::ws::accept_for_key(trim(keys[0]->value));
}

std::string echo_body(const Request& req) {
    std::string body = req.method + " " + req.target + " " + req.version + "\n";
    for (const Field& f : req.fields) {
        body += f.name + ": " + f.value + "\n";
    }
    body += "\n";
    body += req.body;
    return body;
}

std::string simple_response(int status, std::string_view reason, std::string_view body,
                            bool close) {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
    out += "Content-Type: text/plain\r\n";
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    if (close) {
        out += "Connection: close\r\n";
    }
    out += "\r\n";
    out += body;
    return out;
}

class Server;

// One client connection. Owned by Server::connections_; freed in the uv_close callback.
class Connection {
public:
    explicit Connection(Server& server);
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    uv_tcp_t* handle() { return &tcp_; }
    void start();
    // Closes the socket now (pending writes are cancelled). Safe to call twice.
    void close();

private:
    enum class Mode { http, websocket, closing };

    struct WriteRequest {
        uv_write_t req;
        std::string bytes;
    };

    static void on_alloc(uv_handle_t* handle, std::size_t suggested, uv_buf_t* buf);
    static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
    static void on_write(uv_write_t* req, int status);
    static void on_shutdown(uv_shutdown_t* req, int status);
    static void on_closed(uv_handle_t* handle);

    void on_bytes(std::string_view bytes);
    void parse_http(std::string_view bytes);
    void feed_websocket(std::string_view bytes);
    void write(std::string bytes);
    // Stops reading, lets queued writes finish, then closes.
    void finish();

    // llhttp callbacks: member functions bound as C callbacks by these trampolines.
    template <int (Connection::*Method)(std::string_view)>
    static int span_callback(llhttp_t* parser, const char* at, std::size_t len) {
        return (static_cast<Connection*>(parser->data)->*Method)(std::string_view(at, len));
    }
    template <int (Connection::*Method)()>
    static int event_callback(llhttp_t* parser) {
        return (static_cast<Connection*>(parser->data)->*Method)();
    }
    int on_message_begin();
    int on_url(std::string_view s) { request_.target += s; return 0; }
    int on_method(std::string_view s) { request_.method += s; return 0; }
    int on_version(std::string_view s) { request_.version += s; return 0; }
    int on_header_field(std::string_view s);
    int on_header_value(std::string_view s);
    int on_header_field_complete() { in_field_name_ = false; return 0; }
    int on_body(std::string_view s) { request_.body += s; return 0; }
    int on_message_complete();
    void respond(const Request& req, bool keep_alive);

    static llhttp_settings_t make_settings();

    Server& server_;
    uv_tcp_t tcp_{};
    uv_shutdown_t shutdown_{};
    llhttp_t parser_{};
    Mode mode_ = Mode::http;
    bool closed_ = false;
    Request request_;
    bool in_field_name_ = false;
    demo::ws::EchoSession websocket_;
    char read_buffer_[64 * 1024]{};

    friend class Server;
};

class Server {
public:
    explicit Server(uv_loop_t* loop) : loop_(loop) {}

    int listen(const std::string& host, int port);
    void stop();
    void forget(Connection* conn);

private:
    static void on_connection(uv_stream_t* server, int status);
    static void on_signal(uv_signal_t* handle, int signum);

    uv_loop_t* loop_;
    uv_tcp_t listener_{};
    uv_signal_t sigint_{};
    uv_signal_t sigterm_{};
    std::list<std::unique_ptr<Connection>> connections_;
    bool stopping_ = false;
};

Connection::Connection(Server& server) : server_(server) {
    static const llhttp_settings_t settings = make_settings();
    llhttp_init(&parser_, HTTP_REQUEST, &settings);
    parser_.data = this;
    tcp_.data = this;
}

llhttp_settings_t Connection::make_settings() {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = event_callback<&Connection::on_message_begin>;
    s.on_url = span_callback<&Connection::on_url>;
    s.on_method = span_callback<&Connection::on_method>;
    s.on_version = span_callback<&Connection::on_version>;
    s.on_header_field = span_callback<&Connection::on_header_field>;
    s.on_header_value = span_callback<&Connection::on_header_value>;
    s.on_header_field_complete = event_callback<&Connection::on_header_field_complete>;
    s.on_body = span_callback<&Connection::on_body>;
    s.on_message_complete = event_callback<&Connection::on_message_complete>;
    return s;
}

void Connection::start() {
    uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), on_alloc, on_read);
}

void Connection::on_alloc(uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
    auto* self = static_cast<Connection*>(handle->data);
    *buf = uv_buf_init(self->read_buffer_, sizeof self->read_buffer_);
}

void Connection::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto* self = static_cast<Connection*>(stream->data);
    if (nread < 0) {
        // EOF or error. A half-closed client still gets what is already queued.
        if (nread == UV_EOF) {
            self->finish();
        } else {
            self->close();
        }
        return;
    }
    self->on_bytes(std::string_view(buf->base, static_cast<std::size_t>(nread)));
}

void Connection::on_bytes(std::string_view bytes) {
    switch (mode_) {
    case Mode::http:
        parse_http(bytes);
        break;
    case Mode::websocket:
        feed_websocket(bytes);
        break;
    case Mode::closing:
        break;
    }
}

void Connection::parse_http(std::string_view bytes) {
    while (mode_ == Mode::http) {
        const llhttp_errno_t err = llhttp_execute(&parser_, bytes.data(), bytes.size());
        if (err == HPE_OK) {
            return;
        }
        if (err == HPE_PAUSED_UPGRADE) {
            // The request is complete and answered (on_message_complete); what follows it
            // is either WebSocket frames or, for an upgrade we declined, the next request.
            const char* rest = llhttp_get_error_pos(&parser_);
            bytes.remove_prefix(static_cast<std::size_t>(rest - bytes.data()));
            if (mode_ == Mode::websocket) {
                feed_websocket(bytes);
                return;
            }
            llhttp_resume_after_upgrade(&parser_);
            continue;
        }
        if (mode_ == Mode::http) {
            write(simple_response(400, "Bad Request",
                                  std::string(llhttp_errno_name(err)) + "\n", true));
            finish();
        }
        return;
    }
}

int Connection::on_message_begin() {
    request_ = Request{};
    in_field_name_ = false;
    return 0;
}

int Connection::on_header_field(std::string_view s) {
    if (!in_field_name_) {
        request_.fields.push_back(Field{});
        in_field_name_ = true;
    }
    request_.fields.back().name += s;
    return 0;
}

int Connection::on_header_value(std::string_view s) {
    request_.fields.back().value += s;
    return 0;
}

int Connection::on_message_complete() {
    request_.head_method = llhttp_get_method(&parser_) == HTTP_HEAD;
    if (request_.version.empty()) {
        request_.version = "HTTP/" + std::to_string(llhttp_get_http_major(&parser_)) + "." +
                           std::to_string(llhttp_get_http_minor(&parser_));
    } else {
        request_.version = "HTTP/" + request_.version;
    }
    respond(request_, llhttp_should_keep_alive(&parser_) != 0);
    // Stop parsing once the connection is closing: bytes behind the request are dropped.
    return mode_ == Mode::http || mode_ == Mode::websocket ? 0 : HPE_USER;
}

void Connection::respond(const Request& req, bool keep_alive) {
    if (path_of(req.target) == "/ws") {
        const auto accept = websocket_accept(req);
        if (!accept) {
            write(simple_response(400, "Bad Request", "not a valid WebSocket handshake\n", true));
            finish();
            return;
        }
        write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\nSec-WebSocket-Accept: " + *accept + "\r\n\r\n");
        mode_ = Mode::websocket;
        return;
    }

    const std::string body = echo_body(req);
    std::string out = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n";
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    if (!keep_alive) {
        out += "Connection: close\r\n";
    } else if (req.version == "HTTP/1.0") {
        out += "Connection: keep-alive\r\n";
    }
    out += "\r\n";
    if (!req.head_method) {
        out += body;
    }
    write(std::move(out));
    if (!keep_alive) {
        finish();
    }
}

void Connection::feed_websocket(std::string_view bytes) {
    std::string out;
    const bool alive = websocket_.feed(bytes, out);
    if (!out.empty()) {
        write(std::move(out));
    }
    if (!alive) {
        finish();
    }
}

void Connection::write(std::string bytes) {
    if (closed_) {
        return;
    }
    auto* w = new WriteRequest{uv_write_t{}, std::move(bytes)};
    w->req.data = w;
    uv_buf_t buf = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
    if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1, on_write) != 0) {
        delete w;
        close();
    }
}

void Connection::on_write(uv_write_t* req, int status) {
    auto* w = static_cast<WriteRequest*>(req->data);
    auto* self = static_cast<Connection*>(req->handle->data);
    delete w;
    if (status < 0 && status != UV_ECANCELED) {
        self->close();
    }
}

void Connection::finish() {
    if (mode_ == Mode::closing || closed_) {
        return;
    }
    mode_ = Mode::closing;
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
    // uv_shutdown runs after the queued writes; then the socket is closed.
    if (uv_shutdown(&shutdown_, reinterpret_cast<uv_stream_t*>(&tcp_), on_shutdown) != 0) {
        close();
    }
}

void Connection::on_shutdown(uv_shutdown_t* req, int) {
    static_cast<Connection*>(req->handle->data)->close();
}

void Connection::close() {
    if (closed_) {
        return;
    }
    closed_ = true;
    mode_ = Mode::closing;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_closed);
}

void Connection::on_closed(uv_handle_t* handle) {
    auto* self = static_cast<Connection*>(handle->data);
    self->server_.forget(self);  // deletes self
}

int Server::listen(const std::string& host, int port) {
    sockaddr_storage addr{};
    int rc = host.find(':') != std::string::npos
                 ? uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&addr))
                 : uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&addr));
    if (rc == 0) rc = uv_tcp_init(loop_, &listener_);
    listener_.data = this;
    if (rc == 0) rc = uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&addr), 0);
    if (rc == 0) {
        rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 128, on_connection);
    }
    if (rc != 0) {
        return rc;
    }

    sockaddr_storage bound{};
    int len = sizeof bound;
    uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&bound), &len);
    char ip[64] = {};
    int bound_port = 0;
    if (bound.ss_family == AF_INET6) {
        const auto* a6 = reinterpret_cast<const sockaddr_in6*>(&bound);
        uv_ip6_name(a6, ip, sizeof ip);
        bound_port = ntohs(a6->sin6_port);
        std::fprintf(stderr, "demo_backend: listening on [%s]:%d\n", ip, bound_port);
    } else {
        const auto* a4 = reinterpret_cast<const sockaddr_in*>(&bound);
        uv_ip4_name(a4, ip, sizeof ip);
        bound_port = ntohs(a4->sin_port);
        std::fprintf(stderr, "demo_backend: listening on %s:%d\n", ip, bound_port);
    }
    std::fflush(stderr);

    uv_signal_init(loop_, &sigint_);
    uv_signal_init(loop_, &sigterm_);
    sigint_.data = sigterm_.data = this;
    uv_signal_start(&sigint_, on_signal, SIGINT);
    uv_signal_start(&sigterm_, on_signal, SIGTERM);
    return 0;
}

void Server::on_connection(uv_stream_t* listener, int status) {
    auto* self = static_cast<Server*>(listener->data);
    if (status < 0 || self->stopping_) {
        return;
    }
    auto conn = std::make_unique<Connection>(*self);
    uv_tcp_init(self->loop_, conn->handle());
    Connection* raw = conn.get();
    self->connections_.push_back(std::move(conn));
    if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(raw->handle())) != 0) {
        raw->close();
        return;
    }
    uv_tcp_nodelay(raw->handle(), 1);
    raw->start();
}

void Server::on_signal(uv_signal_t* handle, int) {
    static_cast<Server*>(handle->data)->stop();
}

void Server::stop() {
    if (stopping_) {
        return;
    }
    stopping_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
    for (auto& conn : connections_) {
        conn->close();
    }
}

void Server::forget(Connection* conn) {
    connections_.remove_if([conn](const auto& owned) { return owned.get() == conn; });
}

bool parse_listen(std::string_view text, std::string& host, int& port) {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
        return false;
    }
    std::string_view h = text.substr(0, colon);
    if (h.size() >= 2 && h.front() == '[' && h.back() == ']') {
        h = h.substr(1, h.size() - 2);
    }
    const std::string p(text.substr(colon + 1));
    char* end = nullptr;
    const long value = std::strtol(p.c_str(), &end, 10);
    if (p.empty() || *end != '\0' || value < 0 || value > 65535) {
        return false;
    }
    host = std::string(h);
    port = static_cast<int>(value);
    return true;
}

void usage(std::FILE* to) {
    std::fprintf(to,
                 "usage: demo_backend [--listen HOST:PORT]\n"
                 "  HTTP echo (any path) and WebSocket echo (/ws); default 127.0.0.1:9000\n");
}

}  // namespace

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    int port = 9000;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--listen" && i + 1 < argc) {
            if (!parse_listen(argv[++i], host, port)) {
                std::fprintf(stderr, "demo_backend: bad address '%s' (want HOST:PORT)\n", argv[i]);
                return 1;
            }
        } else if (arg == "--help" || arg == "-h") {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 1;
        }
    }

    uv_loop_t* loop = uv_default_loop();
    {
        Server server(loop);
        if (const int rc = server.listen(host, port); rc != 0) {
            std::fprintf(stderr, "demo_backend: cannot listen on %s:%d: %s\n", host.c_str(), port,
                         uv_strerror(rc));
            return 1;
        }
        uv_run(loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(loop);
    return 0;
}
