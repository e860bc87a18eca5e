#include "proxy/ops/admin.hpp"

#include <memory>

#include "parser/http_parser.hpp"
#include "parser/serialize.hpp"
#include "proxy/log.hpp"
#include "proxy/ops/stats.hpp"
#include "proxy/net.hpp"
#include "proxy/stream_writer.hpp"
#include "proxy/uv_util.hpp"

namespace sy {

namespace {

// One admin connection: reads one request head, answers it, closes. A connection that
// has not been answered and written within kTimeout is closed, so a silent client can
// neither hold a descriptor for long nor delay shutdown (the main loop waits for it).
class AdminConn final : HttpParser::Handler, WriterOwner {
public:
    static constexpr std::uint64_t kTimeout = 5000;  // ms

    explicit AdminConn(uv_loop_t* loop)
        : timer_(new uv_timer_t),
          writer_(reinterpret_cast<uv_stream_t*>(&tcp_), *this),
          parser_(HttpParser::Kind::request, *this, HttpParser::Limits{8192, 50}) {
        uv_tcp_init(loop, &tcp_);
        tcp_.data = this;
        uv_timer_init(loop, timer_);
        timer_->data = this;
    }

    void accept(uv_stream_t* server) {
        uv_timer_start(timer_, [](uv_timer_t* t) { static_cast<AdminConn*>(t->data)->close(); }, kTimeout, 0);
        if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&tcp_)) != 0 ||
            uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &AdminConn::on_alloc, &AdminConn::on_read) != 0) {
            close();
        }
    }

private:
    static void on_alloc(uv_handle_t*, std::size_t, uv_buf_t* buf) {
        static thread_local char buffer[8192];
        *buf = uv_buf_init(buffer, sizeof buffer);
    }

    static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
        auto* self = static_cast<AdminConn*>(stream->data);
        if (self->closing_ || self->answered_ || nread == 0) return;
        if (nread < 0) {
            self->close();
            return;
        }
        HttpParser::Result r = self->parser_.feed(buf->base, static_cast<std::size_t>(nread));
        if (r.status == HttpParser::Status::error) self->answer(make_proxy_response(error_status(r.error), true));
    }

    HttpParser::AfterHead on_head(MessageHead& head) override {
        std::string_view path = head.target;
        if (auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
        const bool is_head = head.method == "HEAD";
        if (head.method != "GET" && !is_head) {
            answer(make_proxy_response(405, true, {{"Allow", "GET, HEAD"}}));
        } else if (path == "/metrics") {
            std::string body = g_stats.registry.render();
            answer(make_proxy_response(200, true, {{"Content-Type", "text/plain; version=0.0.4"}}, body, is_head));
        } else if (path == "/healthz") {
            answer(make_proxy_response(200, true, {}, "ok\n", is_head));
        } else {
            answer(make_proxy_response(404, true, {}, {}, is_head));
        }
        return HttpParser::AfterHead::pause;
    }
    void on_body(std::string_view) override {}
    void on_message_end() override {}

    void answer(const std::string& response) {
        answered_ = true;
        uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
        writer_.write(response);
        if (writer_.queued() == 0) close();
    }

    void on_writer_drained(StreamWriter&) override { close(); }
    void on_writer_failed(StreamWriter&, int) override { close(); }

    void close() {
        if (closing_) return;
        closing_ = true;
        close_and_free(timer_);
        uv_close(reinterpret_cast<uv_handle_t*>(&tcp_),
                 [](uv_handle_t* h) { delete static_cast<AdminConn*>(h->data); });
    }

    uv_tcp_t tcp_{};
    uv_timer_t* timer_;
    StreamWriter writer_;
    HttpParser parser_;
    bool answered_ = false;
    bool closing_ = false;
};

}  // namespace

bool AdminServer::start(std::string* error) {
    sockaddr_storage address{};
    if (!resolve_address(config_.address, &address, error)) return false;
    int fd = open_listener(address, false, error);
    if (fd < 0) return false;
    if (!listen_on(fd, error)) return false;
    log_info("admin listening on %s", local_address(fd).c_str());
    return true;
}

bool AdminServer::adopt(int fd, std::string* error) {
    if (!listen_on(fd, error)) return false;
    log_info("admin: took over %s", local_address(fd).c_str());
    return true;
}

int AdminServer::fd() const {
    int fd = -1;
    if (!started_ || uv_fileno(reinterpret_cast<const uv_handle_t*>(&tcp_), &fd) != 0) return -1;
    return fd;
}

bool AdminServer::listen_on(int fd, std::string* error) {
    uv_tcp_init(loop_, &tcp_);
    tcp_.data = this;
    started_ = true;  // the handle exists: retire() closes it
    uv_tcp_open(&tcp_, fd);
    int r = uv_listen(reinterpret_cast<uv_stream_t*>(&tcp_), 64, &AdminServer::on_connection);
    if (r != 0) {
        *error = std::string("admin listen: ") + uv_strerror(r);
        return false;
    }
    return true;
}

void AdminServer::retire(std::unique_ptr<AdminServer> admin) {
    if (!admin) return;
    AdminServer* raw = admin.release();
    if (!raw->started_) {
        delete raw;
        return;
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&raw->tcp_), [](uv_handle_t* h) { delete static_cast<AdminServer*>(h->data); });
}

void AdminServer::on_connection(uv_stream_t* server, int status) {
    if (status < 0) return;
    auto* conn = new AdminConn(server->loop);
    conn->accept(server);
}

}  // namespace sy
