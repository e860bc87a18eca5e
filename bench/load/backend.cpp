// sy_load backend: HTTP/1.1 keep-alive server with a verified body, and a raw "upgrade"
// endpoint (correct 101 + Sec-WebSocket-Accept, then raw bytes, no WebSocket framing):
//   /plain/<n>/<seq>  200 with n pattern bytes starting at offset seq*7919
//   /echo             upgrade, then echo every byte
//   /sink             upgrade, then verify the pattern; every MiB, an 8-byte LE ack of the
//                     bytes verified so far; "BAD!BAD!" and close on a mismatch
//   /source           upgrade, then send the pattern as fast as the peer reads
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common.hpp"
#include "sy_load.hpp"

namespace syload {
namespace {

constexpr std::uint64_t kMiB = 1024 * 1024;
char g_read_buf[256 * 1024];

struct BackendStats {
  std::uint64_t requests = 0, upgrades = 0, sink_bytes = 0, source_bytes = 0, echo_bytes = 0, errors = 0;
};
BackendStats g_stats;

class BConn final : public Handler {
 public:
  BConn(Loop& loop, int fd) : loop_(loop), fd_(fd) { loop_.add(fd_, this, EPOLLIN); }

  void on_event(std::uint32_t ev) override {
    if (ev & EPOLLOUT) {
      if (!flush()) return;
      if (mode_ == Mode::Source && out_.empty() && !source()) return;
    }
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable();
  }

 private:
  enum class Mode { Http, Echo, Sink, Source };

  void update_interest() {
    bool want_out = !out_.empty() || mode_ == Mode::Source;
    bool want_in = !(mode_ == Mode::Echo && !out_.empty());  // echo: backpressure
    std::uint32_t ev = (want_in ? EPOLLIN : 0u) | (want_out ? EPOLLOUT : 0u);
    if (ev != interest_) {
      interest_ = ev;
      loop_.mod(fd_, this, ev);
    }
  }

  void die() {
    loop_.del(fd_);
    close(fd_);
    delete this;
  }

  // Writes queued output; false if the connection died.
  bool flush() {
    while (out_off_ < out_.size()) {
      ssize_t n = write(fd_, out_.data() + out_off_, out_.size() - out_off_);
      if (n > 0) {
        out_off_ += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EAGAIN) {
        break;
      } else {
        die();
        return false;
      }
    }
    if (out_off_ == out_.size()) {
      out_.clear();
      out_off_ = 0;
      if (close_after_flush_) {
        die();
        return false;
      }
    }
    update_interest();
    return true;
  }

  void queue(const char* p, std::size_t n) {
    if (out_.empty()) {
      ssize_t w = write(fd_, p, n);
      if (w == static_cast<ssize_t>(n)) return;
      if (w < 0) {
        if (errno != EAGAIN) {
          close_after_flush_ = true;  // dies at next flush
          w = 0;
        } else {
          w = 0;
        }
      }
      p += w;
      n -= static_cast<std::size_t>(w);
    }
    out_.append(p, n);
  }

  bool source() {
    for (;;) {
      ssize_t n = write(fd_, pattern_at(source_off_), kMaxChunk);
      if (n > 0) {
        source_off_ += static_cast<std::uint64_t>(n);
        g_stats.source_bytes += static_cast<std::uint64_t>(n);
      } else if (n < 0 && errno == EAGAIN) {
        return true;
      } else {
        die();
        return false;
      }
    }
  }

  void on_readable() {
    for (int round = 0; round < 4; ++round) {
      ssize_t n = read(fd_, g_read_buf, sizeof g_read_buf);
      if (n == 0 || (n < 0 && errno != EAGAIN)) {
        die();
        return;
      }
      if (n < 0) break;
      if (!consume(g_read_buf, static_cast<std::size_t>(n))) return;
      if (static_cast<std::size_t>(n) < sizeof g_read_buf) break;
      if (mode_ == Mode::Echo && !out_.empty()) break;
    }
    if (!flush()) return;
    if (mode_ == Mode::Source && out_.empty()) source();
  }

  // false if the connection died
  bool consume(const char* p, std::size_t n) {
    switch (mode_) {
      case Mode::Echo:
        g_stats.echo_bytes += n;
        queue(p, n);
        return true;
      case Mode::Source:
        return true;  // ignore
      case Mode::Sink:
        return sink(p, n);
      case Mode::Http:
        break;
    }
    in_.append(p, n);
    for (;;) {
      Head h;
      int rc = parse_head(in_, false, h);
      if (rc == 0) return true;
      if (rc < 0) {
        ++g_stats.errors;
        static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        queue(bad, sizeof bad - 1);
        close_after_flush_ = true;
        in_.clear();
        return true;
      }
      std::size_t body = h.content_length > 0 ? static_cast<std::size_t>(h.content_length) : 0;
      if (in_.size() < h.head_len + body) return true;
      if (in_.size() == h.head_len + body) {
        in_.clear();
      } else {
        in_.erase(0, h.head_len + body);
      }
      if (!respond(h)) return true;
      if (mode_ != Mode::Http) {
        std::string leftover;
        leftover.swap(in_);
        if (!leftover.empty()) return consume(leftover.data(), leftover.size());
        return true;
      }
    }
  }

  bool sink(const char* p, std::size_t n) {
    if (!pattern_matches(sink_off_, p, n)) {
      ++g_stats.errors;
      queue("BAD!BAD!", 8);
      close_after_flush_ = true;
      return true;
    }
    std::uint64_t before = sink_off_ / kMiB;
    sink_off_ += n;
    g_stats.sink_bytes += n;
    if (sink_off_ / kMiB != before) {
      std::uint64_t v = (sink_off_ / kMiB) * kMiB;
      char b[8];
      for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
      queue(b, 8);
    }
    return true;
  }

  // false: stop parsing (closing)
  bool respond(const Head& h) {
    ++g_stats.requests;
    if (h.upgrade_websocket) {
      Mode m = h.path == "/echo" ? Mode::Echo : h.path == "/sink" ? Mode::Sink : h.path == "/source" ? Mode::Source : Mode::Http;
      if (m == Mode::Http || h.ws_key.size() != 24) {
        ++g_stats.errors;
        static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        queue(bad, sizeof bad - 1);
        close_after_flush_ = true;
        return false;
      }
      ++g_stats.upgrades;
      std::string r = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ";
      r += ws_accept_for(h.ws_key);
      r += "\r\n\r\n";
      queue(r.data(), r.size());
      mode_ = m;
      return true;
    }
    // /plain/<n>/<seq>
    std::size_t len = 0;
    std::uint64_t seq = 0;
    if (h.path.rfind("/plain/", 0) == 0) {
      char* end = nullptr;
      len = std::strtoul(h.path.c_str() + 7, &end, 10);
      if (end && *end == '/') seq = std::strtoull(end + 1, nullptr, 10);
      if (len > kMaxChunk) len = kMaxChunk;
    } else {
      static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
      queue(nf, sizeof nf - 1);
      return true;
    }
    char head[160];
    int hn = std::snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n", len,
                           h.conn_close ? "Connection: close\r\n" : "");
    out_tmp_.assign(head, static_cast<std::size_t>(hn));
    out_tmp_.append(pattern_at(seq * 7919), len);
    queue(out_tmp_.data(), out_tmp_.size());
    if (h.conn_close) {
      close_after_flush_ = true;
      return false;
    }
    return true;
  }

  Loop& loop_;
  int fd_;
  std::uint32_t interest_ = EPOLLIN;
  Mode mode_ = Mode::Http;
  std::string in_, out_, out_tmp_;
  std::size_t out_off_ = 0;
  bool close_after_flush_ = false;
  std::uint64_t sink_off_ = 0, source_off_ = 0;
};

class Acceptor final : public Handler {
 public:
  Acceptor(Loop& loop, int fd) : loop_(loop), fd_(fd) { loop_.add(fd_, this, EPOLLIN); }
  void on_event(std::uint32_t) override {
    for (int i = 0; i < 64; ++i) {
      int c = accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0) return;
      set_nodelay(c);
      new BConn(loop_, c);
    }
  }

 private:
  Loop& loop_;
  int fd_;
};

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

}  // namespace

int run_backend(const Options& o) {
  Addr a;
  if (!parse_addr(o.listen, a)) {
    std::fprintf(stderr, "sy_load backend: bad --listen\n");
    return 2;
  }
  int fd = listen_tcp(a);
  if (fd < 0) {
    std::fprintf(stderr, "sy_load backend: cannot listen on %s: %s\n", o.listen.c_str(), std::strerror(errno));
    return 1;
  }
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  Loop loop;
  Acceptor acc(loop, fd);
  std::printf("sy_load backend: listening on %s\n", o.listen.c_str());
  std::fflush(stdout);
  std::uint64_t end = o.duration > 0 ? now_ns() + static_cast<std::uint64_t>(o.duration * 1e9) : 0;
  while (!g_stop && (end == 0 || now_ns() < end)) loop.poll(200);
  std::printf(
      "{\"role\":\"backend\",\"requests\":%llu,\"upgrades\":%llu,\"echo_bytes\":%llu,\"sink_bytes\":%llu,\"source_bytes\":%llu,"
      "\"errors\":%llu}\n",
      static_cast<unsigned long long>(g_stats.requests), static_cast<unsigned long long>(g_stats.upgrades),
      static_cast<unsigned long long>(g_stats.echo_bytes), static_cast<unsigned long long>(g_stats.sink_bytes),
      static_cast<unsigned long long>(g_stats.source_bytes), static_cast<unsigned long long>(g_stats.errors));
  return 0;
}

}  // namespace syload
