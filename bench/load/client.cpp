// sy_load client scenarios. Each one verifies every byte it receives and prints one JSON line.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common.hpp"
#include "sy_load.hpp"

namespace syload {
namespace {

constexpr std::uint64_t kMiB = 1024 * 1024;
char g_buf[256 * 1024];

// The scenario driver: loop, stats, the clock, how many units may still be issued.
struct Driver {
  const Options& o;
  Addr addr;
  Loop loop;
  Stats stats;
  bool measuring = false;
  bool stopping = false;      // no new units
  std::uint64_t t_start = 0, t_stop = 0, t_last = 0;
  std::uint64_t issued = 0;
  std::uint64_t reconnects = 0;
  std::vector<Handler*> graveyard;

  explicit Driver(const Options& opt) : o(opt) {}

  bool may_issue() {
    if (stopping || !measuring) return false;
    if (o.count > 0) {
      if (issued >= o.count) return false;
      ++issued;
      return true;
    }
    if (now_ns() >= t_stop) {
      stopping = true;
      return false;
    }
    ++issued;
    return true;
  }
  void start_measuring() {
    measuring = true;
    t_start = now_ns();
    t_last = t_start;
    t_stop = t_start + static_cast<std::uint64_t>(o.duration * 1e9);
  }
  void completed(std::uint64_t t0, std::uint64_t now) {
    ++stats.units;
    t_last = now;
    if (t0) stats.lat_ns.push_back(now - t0);
  }
  void reap() {
    for (Handler* h : graveyard) delete h;
    graveyard.clear();
  }
};

// A client connection: connect, optionally upgrade (GET path + Upgrade: websocket, verify the
// 101 and its Sec-WebSocket-Accept), then hand bytes to the scenario.
class Conn : public Handler {
 public:
  Conn(Driver& d, bool upgrade, std::string path) : d_(d), upgrade_(upgrade), path_(std::move(path)) {}
  ~Conn() override = default;

  bool start() {
    t_connect_ = now_ns();
    bool pending = false;
    fd_ = connect_tcp(d_.addr, pending);
    if (fd_ < 0) {
      d_.stats.error(std::string("connect: ") + std::strerror(errno));
      return false;
    }
    connecting_ = pending;
    interest_ = EPOLLIN | EPOLLOUT;
    d_.loop.add(fd_, this, interest_);
    if (!pending) on_connected();
    return true;
  }

  void on_event(std::uint32_t ev) override {
    if (closed_) return;
    if (connecting_) {
      if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        fail(std::string("connect: ") + std::strerror(err));
        return;
      }
      connecting_ = false;
      on_connected();
      if (closed_) return;
    }
    if (ev & EPOLLOUT) {
      if (!flush()) return;
      if (want_writable_ && out_.empty()) on_writable();
      if (closed_) return;
    }
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable();
    if (!closed_) update_interest();
  }

  bool closed() const { return closed_; }

 protected:
  virtual void on_open() = 0;  // connected (and upgraded)
  virtual void on_data(const char* p, std::size_t n) = 0;
  virtual void on_eof() { fail("unexpected EOF"); }
  virtual void on_writable() {}

  void fail(const std::string& what) {
    d_.stats.error(what);
    close_conn();
  }
  void close_conn() {
    if (closed_) return;
    closed_ = true;
    close(fd_);
    d_.graveyard.push_back(this);
  }

  void send(const char* p, std::size_t n) {
    if (out_.empty()) {
      ssize_t w = write(fd_, p, n);
      if (w == static_cast<ssize_t>(n)) return;
      if (w < 0) {
        if (errno != EAGAIN) {
          fail(std::string("write: ") + std::strerror(errno));
          return;
        }
        w = 0;
      }
      p += w;
      n -= static_cast<std::size_t>(w);
    }
    out_.append(p, n);
    update_interest();
  }

  // Writes as much of [p, p+n) as the kernel takes now; returns bytes written (-1: closed).
  ssize_t write_some(const char* p, std::size_t n) {
    ssize_t w = write(fd_, p, n);
    if (w < 0) {
      if (errno == EAGAIN) return 0;
      fail(std::string("write: ") + std::strerror(errno));
      return -1;
    }
    return w;
  }

  void update_interest() {
    if (closed_) return;
    std::uint32_t ev = EPOLLIN;
    if (connecting_ || !out_.empty() || want_writable_) ev |= EPOLLOUT;
    if (ev != interest_) {
      interest_ = ev;
      d_.loop.mod(fd_, this, ev);
    }
  }

  Driver& d_;
  bool want_writable_ = false;
  std::uint64_t t_connect_ = 0, t_open_ = 0;

 private:
  void on_connected() {
    if (!upgrade_) {
      t_open_ = now_ns();
      update_interest();
      on_open();
      return;
    }
    key_ = random_ws_key();
    std::string req = "GET " + path_ +
                      " HTTP/1.1\r\nHost: bench.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key_ +
                      "\r\nSec-WebSocket-Version: 13\r\n\r\n";
    upgrading_ = true;
    send(req.data(), req.size());
    update_interest();
  }

  bool flush() {
    while (!out_.empty()) {
      ssize_t w = write(fd_, out_.data() + out_off_, out_.size() - out_off_);
      if (w < 0) {
        if (errno == EAGAIN) return true;
        fail(std::string("write: ") + std::strerror(errno));
        return false;
      }
      out_off_ += static_cast<std::size_t>(w);
      if (out_off_ == out_.size()) {
        out_.clear();
        out_off_ = 0;
      }
    }
    return true;
  }

  void on_readable() {
    for (int round = 0; round < 4 && !closed_; ++round) {
      ssize_t n = read(fd_, g_buf, sizeof g_buf);
      if (n == 0) {
        on_eof();
        return;
      }
      if (n < 0) {
        if (errno != EAGAIN) fail(std::string("read: ") + std::strerror(errno));
        return;
      }
      if (upgrading_) {
        head_.append(g_buf, static_cast<std::size_t>(n));
        Head h;
        int rc = parse_head(head_, true, h);
        if (rc == 0) continue;
        if (rc < 0 || h.status != 101) {
          fail("upgrade: expected 101, got " + head_.substr(0, std::min<std::size_t>(head_.find('\r'), 60)));
          return;
        }
        if (!h.upgrade_websocket || !h.conn_upgrade || h.ws_accept != ws_accept_for(key_)) {
          fail("upgrade: bad 101 (Upgrade/Connection/Sec-WebSocket-Accept)");
          return;
        }
        upgrading_ = false;
        t_open_ = now_ns();
        std::string rest = head_.substr(h.head_len);
        head_.clear();
        head_.shrink_to_fit();
        on_open();
        if (!rest.empty() && !closed_) on_data(rest.data(), rest.size());
      } else {
        on_data(g_buf, static_cast<std::size_t>(n));
      }
      if (static_cast<std::size_t>(n) < sizeof g_buf) return;
    }
  }

  bool upgrade_;
  std::string path_;
  std::string key_;
  std::string head_;
  int fd_ = -1;
  bool connecting_ = false, upgrading_ = false, closed_ = false;
  std::uint32_t interest_ = 0;
  std::string out_;
  std::size_t out_off_ = 0;
};

// ---- http -----------------------------------------------------------------------------------
class HttpConn final : public Conn {
 public:
  HttpConn(Driver& d, int id) : Conn(d, false, ""), id_(id) {}
  bool idle() const { return !busy_; }
  void kick() {
    if (!busy_) next();
  }

 protected:
  void on_open() override { next(); }
  void on_eof() override {
    if (busy_) fail("http: EOF in the middle of a response");
    else close_conn();
    // replaced by the driver loop
  }
  void on_data(const char* p, std::size_t n) override {
    in_.append(p, n);
    while (busy_ && !closed()) {
      if (!have_head_) {
        int rc = parse_head(in_, true, head_);
        if (rc == 0) return;
        if (rc < 0 || head_.status != 200) {
          fail("http: bad response head: " + in_.substr(0, std::min<std::size_t>(in_.find('\r'), 60)));
          return;
        }
        have_head_ = true;
        pos_ = head_.head_len;
      }
      std::size_t body_end;
      if (head_.chunked) {
        if (!dechunk(body_end)) return;
      } else {
        if (head_.content_length < 0) {
          fail("http: response without Content-Length");
          return;
        }
        body_end = pos_ + static_cast<std::size_t>(head_.content_length);
        if (in_.size() < body_end) return;
        body_.assign(in_, pos_, static_cast<std::size_t>(head_.content_length));
      }
      if (body_.size() != d_.o.body || !pattern_matches(seq_ * 7919, body_.data(), body_.size())) {
        fail("http: body mismatch");
        return;
      }
      d_.stats.bytes_verified += body_.size();
      std::uint64_t now = now_ns();
      d_.completed(t0_, now);
      in_.erase(0, body_end);
      busy_ = false;
      have_head_ = false;
      if (head_.conn_close) {
        if (!in_.empty()) fail("http: bytes after a Connection: close response");
        else close_conn();
        return;
      }
      next();
    }
  }

 private:
  // Decodes a chunked body from in_[pos_..]; true when complete (body_ filled).
  bool dechunk(std::size_t& end) {
    body_.clear();
    std::size_t p = pos_;
    for (;;) {
      auto eol = in_.find("\r\n", p);
      if (eol == std::string::npos) return false;
      std::size_t size = std::strtoul(in_.c_str() + p, nullptr, 16);
      p = eol + 2;
      if (size == 0) {
        // no trailers expected: the final CRLF
        if (in_.size() < p + 2) return false;
        end = p + 2;
        return true;
      }
      if (in_.size() < p + size + 2) return false;
      body_.append(in_, p, size);
      p += size + 2;
    }
  }

  void next() {
    if (!d_.may_issue()) return;
    seq_ = static_cast<std::uint64_t>(id_) * 1000003u + ++n_;
    char req[128];
    int len = std::snprintf(req, sizeof req, "GET /plain/%zu/%llu HTTP/1.1\r\nHost: bench.test\r\n\r\n", d_.o.body,
                            static_cast<unsigned long long>(seq_));
    busy_ = true;
    t0_ = now_ns();
    send(req, static_cast<std::size_t>(len));
  }

  int id_;
  std::uint64_t n_ = 0, seq_ = 0, t0_ = 0;
  bool busy_ = false, have_head_ = false;
  Head head_;
  std::size_t pos_ = 0;
  std::string in_, body_;
};

// ---- handshakes -------------------------------------------------------------------------------
class HsConn final : public Conn {
 public:
  explicit HsConn(Driver& d) : Conn(d, true, "/echo") {}

 protected:
  void on_open() override {
    d_.completed(t_connect_, t_open_);
    close_conn();
  }
  void on_data(const char*, std::size_t) override { fail("handshake: bytes after the 101"); }
};

// ---- echo (also idle) -------------------------------------------------------------------------
class EchoConn final : public Conn {
 public:
  EchoConn(Driver& d, bool idle) : Conn(d, true, "/echo"), idle_(idle), sent_at_(static_cast<std::size_t>(std::max(1, d.o.depth))) {}
  bool open() const { return open_; }
  bool verified() const { return open_ && recv_off_ == send_off_; }
  void begin() {
    for (int i = 0; i < d_.o.depth; ++i) send_one();
  }

 protected:
  void on_open() override {
    open_ = true;
    if (idle_) {  // one small message proves the tunnel works
      send(pattern_at(0), 16);
      send_off_ = 16;
    }
  }
  void on_data(const char* p, std::size_t n) override {
    if (recv_off_ + n > send_off_ || !pattern_matches(recv_off_, p, n)) {
      fail("echo: echoed bytes differ from the bytes sent");
      return;
    }
    d_.stats.bytes_verified += n;
    if (idle_) {
      recv_off_ += n;
      return;
    }
    std::uint64_t msg = d_.o.msg;
    std::uint64_t before = recv_off_ / msg;
    recv_off_ += n;
    std::uint64_t now = 0;
    for (std::uint64_t k = before; k < recv_off_ / msg; ++k) {
      if (!now) now = now_ns();
      d_.completed(sent_at_[k % sent_at_.size()], now);
      send_one();
    }
  }

 private:
  void send_one() {
    if (!d_.may_issue()) return;
    sent_at_[(send_off_ / d_.o.msg) % sent_at_.size()] = now_ns();
    std::uint64_t off = send_off_;
    send_off_ += d_.o.msg;
    send(pattern_at(off), d_.o.msg);
  }

  bool idle_;
  bool open_ = false;
  std::vector<std::uint64_t> sent_at_;
  std::uint64_t send_off_ = 0, recv_off_ = 0;
};

// ---- stream ---------------------------------------------------------------------------------------
class StreamConn final : public Conn {
 public:
  StreamConn(Driver& d, bool up, std::uint64_t quota)
      : Conn(d, true, up ? "/sink" : "/source"), up_(up), quota_(quota) {}
  bool open() const { return open_; }
  bool done() const { return done_; }
  void begin() {
    if (up_) {
      want_writable_ = true;
      update_interest();
    }
  }
  std::uint64_t sent() const { return sent_; }

 protected:
  void on_open() override { open_ = true; }
  void on_writable() override {
    for (int i = 0; i < 16; ++i) {
      std::uint64_t limit = quota_;
      if (!limit) {
        // duration mode: after the stop time, finish the current MiB
        if (d_.stopping || now_ns() >= d_.t_stop) {
          d_.stopping = true;
          limit = (sent_ + kMiB - 1) / kMiB * kMiB;
        } else {
          limit = ~0ull;
        }
      }
      if (sent_ >= limit) {
        want_writable_ = false;
        if (acked_ == sent_) {
          done_ = true;
          close_conn();
        }
        return;
      }
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kMaxChunk, limit - sent_));
      ssize_t w = write_some(pattern_at(sent_), n);
      if (w <= 0) return;
      sent_ += static_cast<std::uint64_t>(w);
    }
  }
  void on_data(const char* p, std::size_t n) override {
    if (up_) {
      ack_.append(p, n);
      while (ack_.size() >= 8) {
        std::uint64_t v = 0;
        for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(ack_[static_cast<std::size_t>(i)]);
        ack_.erase(0, 8);
        if (v % kMiB != 0 || v > sent_ || v <= acked_) {
          fail("stream: backend reports a mismatch (or a bad ack)");
          return;
        }
        d_.stats.bytes_verified += v - acked_;
        d_.stats.units += (v - acked_) / kMiB;
        d_.t_last = now_ns();
        acked_ = v;
        if (!want_writable_ && acked_ == sent_) {
          done_ = true;
          close_conn();
          return;
        }
      }
      return;
    }
    if (done_) return;
    if (quota_) n = static_cast<std::size_t>(std::min<std::uint64_t>(n, quota_ - recv_));
    if (!pattern_matches(recv_, p, n)) {
      fail("stream: received bytes differ from the pattern");
      return;
    }
    std::uint64_t before = recv_ / kMiB;
    recv_ += n;
    d_.stats.bytes_verified += n;
    d_.stats.units += recv_ / kMiB - before;
    d_.t_last = now_ns();
    if ((quota_ && recv_ >= quota_) || (!quota_ && d_.measuring && d_.t_last >= d_.t_stop)) {
      done_ = true;
      close_conn();
    }
  }

 private:
  bool up_;
  std::uint64_t quota_;
  bool open_ = false, done_ = false;
  std::uint64_t sent_ = 0, acked_ = 0, recv_ = 0;
  std::string ack_;
};

// ---- output -------------------------------------------------------------------------------------------
void print_result(Driver& d, const char* scenario, const std::string& extra) {
  double secs = static_cast<double>((d.t_last > d.t_start ? d.t_last : d.t_start + 1) - d.t_start) / 1e9;
  double rate = static_cast<double>(d.stats.units) / secs;
  double mbps = static_cast<double>(d.stats.bytes_verified) / secs / 1e6;
  auto& v = d.stats.lat_ns;
  double p50 = percentile_us(v, 0.50), p99 = percentile_us(v, 0.99), p999 = percentile_us(v, 0.999);
  std::string err = d.stats.first_error;
  for (auto& c : err)
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) c = '\'';
  std::printf(
      "{\"scenario\":\"%s\",\"label\":\"%s\",\"target\":\"%s\",\"conns\":%d,\"seconds\":%.4f,\"units\":%llu,\"rate\":%.1f,"
      "\"MBps\":%.2f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"bytes_verified\":%llu,\"errors\":%llu,"
      "\"reconnects\":%llu%s,\"first_error\":\"%s\"}\n",
      scenario, d.o.label.c_str(), d.o.target.c_str(), d.o.conns, secs, static_cast<unsigned long long>(d.stats.units), rate,
      mbps, p50, p99, p999, static_cast<unsigned long long>(d.stats.bytes_verified),
      static_cast<unsigned long long>(d.stats.errors), static_cast<unsigned long long>(d.reconnects), extra.c_str(), err.c_str());
  std::fflush(stdout);
}

std::uint64_t hard_deadline(const Options& o) {
  // setup + measurement + grace; callgrind (--count) runs may be slow
  double s = o.count ? 600 : o.duration + 30;
  return now_ns() + static_cast<std::uint64_t>(s * 1e9);
}

int run_http(Driver& d) {
  std::vector<HttpConn*> conns;
  d.start_measuring();
  for (int i = 0; i < d.o.conns; ++i) {
    auto* c = new HttpConn(d, i);
    if (c->start()) conns.push_back(c);
  }
  std::uint64_t hard = hard_deadline(d.o);
  int next_id = d.o.conns;
  for (;;) {
    d.loop.poll(50);
    // connections the server closed (Connection: close / keep-alive limits): replace them
    for (auto& c : conns) {
      if (c && c->closed()) {
        c = nullptr;
        if (d.stats.errors == 0 && !d.stopping && (d.o.count == 0 || d.issued < d.o.count)) {
          auto* n = new HttpConn(d, next_id++);
          ++d.reconnects;
          if (n->start()) c = n;
        }
      }
    }
    d.reap();
    bool busy = false;
    for (auto* c : conns)
      if (c && !c->idle()) busy = true;
    if (d.stats.errors > 0) break;
    if (!busy && (d.stopping || (d.o.count && d.issued >= d.o.count) || now_ns() >= d.t_stop)) {
      bool any_open = false;
      for (auto* c : conns)
        if (c) any_open = true;
      if (d.o.count && d.issued < d.o.count && any_open) {
        for (auto* c : conns)
          if (c) c->kick();
        continue;
      }
      break;
    }
    if (now_ns() > hard) {
      d.stats.error("http: timed out");
      break;
    }
  }
  print_result(d, "http", ",\"body\":" + std::to_string(d.o.body));
  return d.stats.errors ? 1 : 0;
}

int run_handshakes(Driver& d) {
  d.start_measuring();
  std::uint64_t hard = hard_deadline(d.o);
  int inflight = 0;
  std::vector<HsConn*> live;
  for (;;) {
    live.erase(std::remove_if(live.begin(), live.end(), [](HsConn* c) { return c->closed(); }), live.end());
    inflight = static_cast<int>(live.size());
    while (inflight < d.o.conns && d.stats.errors == 0 && d.may_issue()) {
      auto* c = new HsConn(d);
      if (!c->start()) {
        delete c;
        break;
      }
      live.push_back(c);
      ++inflight;
    }
    if (live.empty() && (d.stopping || d.stats.errors || (d.o.count && d.issued >= d.o.count))) break;
    d.loop.poll(50);
    live.erase(std::remove_if(live.begin(), live.end(), [](HsConn* c) { return c->closed(); }), live.end());
    d.reap();
    if (now_ns() >= d.t_stop && !d.o.count) d.stopping = true;
    if (now_ns() > hard) {
      d.stats.error("handshakes: timed out");
      break;
    }
  }
  print_result(d, "handshakes", "");
  return d.stats.errors ? 1 : 0;
}

// Opens n tunnels of type T; returns when all are open, or on an error / the hard deadline.
template <class T, class Make>
std::vector<T*> open_tunnels(Driver& d, int n, int concurrency, Make make, std::uint64_t hard) {
  std::vector<T*> all;
  int started = 0;
  for (;;) {
    int pending = 0, open = 0;
    for (auto* c : all) {
      if (c->closed()) continue;
      if (c->open()) ++open;
      else ++pending;
    }
    if (open == n || d.stats.errors) break;
    while (started < n && pending < concurrency) {
      T* c = make();
      if (!c->start()) {
        delete c;
        return all;
      }
      all.push_back(c);
      ++started;
      ++pending;
    }
    d.loop.poll(20);
    if (now_ns() > hard) {
      d.stats.error("open: timed out with " + std::to_string(open) + " tunnels open");
      break;
    }
  }
  return all;
}

int run_echo(Driver& d) {
  std::uint64_t hard = hard_deadline(d.o);
  auto conns = open_tunnels<EchoConn>(d, d.o.conns, d.o.conns, [&] { return new EchoConn(d, false); }, hard);
  if (!d.stats.errors) {
    d.start_measuring();
    for (auto* c : conns) c->begin();
    for (;;) {
      d.loop.poll(50);
      if (d.stats.errors) break;
      std::uint64_t now = now_ns();
      bool stop = d.o.count ? d.issued >= d.o.count : now >= d.t_stop;
      if (stop) {
        d.stopping = true;
        bool all = true;
        for (auto* c : conns)
          if (!c->closed() && !c->verified()) all = false;
        if (all || (!d.o.count && now > d.t_stop + 2000000000ull)) break;
      }
      if (now > hard) {
        d.stats.error("echo: timed out");
        break;
      }
    }
  }
  print_result(d, "echo", ",\"msg\":" + std::to_string(d.o.msg) + ",\"depth\":" + std::to_string(d.o.depth));
  return d.stats.errors ? 1 : 0;
}

int run_stream(Driver& d) {
  bool up = d.o.direction == "up";
  std::uint64_t hard = hard_deadline(d.o);
  std::uint64_t quota = d.o.count ? d.o.count * kMiB / static_cast<std::uint64_t>(d.o.tunnels) : 0;
  auto conns = open_tunnels<StreamConn>(d, d.o.tunnels, d.o.tunnels, [&] { return new StreamConn(d, up, quota); }, hard);
  if (!d.stats.errors) {
    d.start_measuring();
    // a down stream has been flowing since the 101: restart the count here
    d.stats.bytes_verified = 0;
    d.stats.units = 0;
    for (auto* c : conns) c->begin();
    for (;;) {
      d.loop.poll(50);
      if (d.stats.errors) break;
      bool all = true;
      for (auto* c : conns)
        if (!c->done()) all = false;
      if (all) break;
      if (now_ns() > hard || (!d.o.count && now_ns() > d.t_stop + 5000000000ull)) {
        d.stats.error("stream: timed out");
        break;
      }
    }
  }
  print_result(d, "stream", ",\"tunnels\":" + std::to_string(d.o.tunnels) + ",\"direction\":\"" + d.o.direction + "\"");
  return d.stats.errors ? 1 : 0;
}

int run_idle(Driver& d) {
  std::uint64_t hard = now_ns() + static_cast<std::uint64_t>(120e9);
  d.start_measuring();
  auto conns = open_tunnels<EchoConn>(d, d.o.tunnels, d.o.concurrency, [&] { return new EchoConn(d, true); }, hard);
  // wait for every tunnel's probe message to come back
  for (;;) {
    bool all = true;
    for (auto* c : conns)
      if (!c->closed() && !c->verified()) all = false;
    if (all || d.stats.errors || now_ns() > hard) break;
    d.loop.poll(20);
  }
  int open = 0;
  for (auto* c : conns)
    if (!c->closed() && c->verified()) ++open;
  d.stats.units = static_cast<std::uint64_t>(open);
  d.t_last = now_ns();
  print_result(d, "idle", ",\"tunnels\":" + std::to_string(d.o.tunnels) + ",\"open\":" + std::to_string(open) + ",\"ready\":true");
  // hold them open while the caller samples the proxy's memory
  std::uint64_t end = now_ns() + static_cast<std::uint64_t>(d.o.hold * 1e9);
  while (now_ns() < end) {
    d.loop.poll(100);
    d.reap();
  }
  return open == d.o.tunnels ? 0 : 1;
}

}  // namespace

int run_client(const Options& o) {
  std::signal(SIGPIPE, SIG_IGN);
  Driver d(o);
  if (!parse_addr(o.target, d.addr)) {
    std::fprintf(stderr, "sy_load: bad --target\n");
    return 2;
  }
  if (o.cmd == "http") return run_http(d);
  if (o.cmd == "handshakes") return run_handshakes(d);
  if (o.cmd == "echo") return run_echo(d);
  if (o.cmd == "stream") return run_stream(d);
  if (o.cmd == "idle") return run_idle(d);
  std::fprintf(stderr, "sy_load: unknown command %s\n", o.cmd.c_str());
  return 2;
}

}  // namespace syload
