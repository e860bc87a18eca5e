// sy_load WebSocket-framed scenarios, for a proxy that terminates WebSocket (the proxy is the
// WebSocket server and carries message payloads to a plain TCP service, as websockify does),
// and the services behind it:
//
//   sy_load ws-services --listen HOST:PORT
//       PORT    WebSocket server (for a forwarded upgrade, i.e. a raw tunnel):
//               /sink  verifies every masked client frame's payload and answers every MiB
//                      with a binary frame holding the 8-byte LE count of payload bytes verified
//               /echo  answers every data frame with an unmasked frame of the same payload
//       PORT+1  TCP sink: verifies the bytes, 8-byte LE count of bytes verified every MiB
//       PORT+2  TCP echo: sends every byte back
//   sy_load ws-stream --target ADDR [--tunnels N] [--msg BYTES] [--duration S | --count MiB]
//       N connections to ws://ADDR/sink, each sending binary messages of BYTES (default
//       65536; a power of two) as fast as the peer takes them; counted when the sink's
//       acknowledgements (binary frames, any fragmentation) come back.
//   sy_load ws-echo --target ADDR [--conns N] [--msg BYTES] [--depth D] [--duration S | --count N]
//       N connections to ws://ADDR/echo, D binary messages of BYTES in flight on each; a
//       round trip counts when BYTES of payload (any framing) have come back and match.
//   both: --cpu-pid PID, --svc-pid PID: utime+stime (+ reaped children) of that process tree
//         over the measured interval, printed as cpu_s / svc_cpu_s; the client's own as
//         client_cpu_s; the whole machine's busy time (/proc/stat, all CPUs) as host_busy_s.
//
// The payload of stream message k is the pattern from offset (k * BYTES) % 1 MiB, so every
// client frame (header, random mask, masked payload) is computed once and written from a ring;
// a sink checks byte s of the payload stream against pattern_at(s % 1 MiB).
#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "common.hpp"
#include "sy_load.hpp"
#include "ws.hpp"

namespace syload {
namespace {

constexpr std::uint64_t kMiB = 1024 * 1024;
constexpr std::uint64_t kRing = kMiB;  // the stream payload repeats every kRing bytes
char g_io[256 * 1024];

// ---- masks, the ring, masked comparison ------------------------------------------------------
std::uint64_t g_rng = 0x243F6A8885A308D3ull;
std::uint32_t rand32() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  std::uint32_t v = static_cast<std::uint32_t>(g_rng >> 16);
  return v ? v : 0x5A5A5A5Au;  // never the all-zero mask: the proxy must really unmask
}

// true if p[0..n) is the payload stream from offset `off`
bool ring_matches(std::uint64_t off, const char* p, std::size_t n) {
  while (n > 0) {
    std::uint64_t r = off % kRing;
    std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n, kRing - r));
    if (!pattern_matches(r, p, k)) return false;
    off += k;
    p += k;
    n -= k;
  }
  return true;
}

std::uint64_t mask_word(const unsigned char mask[4], std::size_t phase) {
  unsigned char m[8];
  for (std::size_t i = 0; i < 8; ++i) m[i] = mask[(phase + i) & 3];
  std::uint64_t w;
  std::memcpy(&w, m, 8);
  return w;
}

// true if data[i] ^ mask[(phase + i) % 4] is the payload stream from offset `off`
bool masked_ring_matches(std::uint64_t off, const char* data, std::size_t n, const unsigned char mask[4], std::size_t phase) {
  while (n > 0) {
    std::uint64_t r = off % kRing;
    std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>({n, kRing - r, kMaxChunk}));
    const char* e = pattern_at(r);
    std::uint64_t m = mask_word(mask, phase);
    std::size_t i = 0;
    for (; i + 8 <= k; i += 8) {
      std::uint64_t a, b;
      std::memcpy(&a, data + i, 8);
      std::memcpy(&b, e + i, 8);
      if ((a ^ m) != b) return false;
    }
    for (; i < k; ++i)
      if ((static_cast<unsigned char>(data[i]) ^ mask[(phase + i) & 3]) != static_cast<unsigned char>(e[i])) return false;
    off += k;
    data += k;
    n -= k;
    phase = (phase + k) & 3;
  }
  return true;
}

void mask_into(const char* in, char* out, std::size_t n, const unsigned char mask[4], std::size_t phase) {
  std::uint64_t m = mask_word(mask, phase);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t a;
    std::memcpy(&a, in + i, 8);
    a ^= m;
    std::memcpy(out + i, &a, 8);
  }
  for (; i < n; ++i) out[i] = static_cast<char>(static_cast<unsigned char>(in[i]) ^ mask[(phase + i) & 3]);
}

// Appends a frame header (FIN set when fin) and, for a client frame, the mask.
void put_header(std::string& out, int opcode, std::uint64_t len, const unsigned char* mask, bool fin = true) {
  unsigned char h[14];
  std::size_t i = 0;
  h[i++] = static_cast<unsigned char>((fin ? 0x80 : 0) | opcode);
  unsigned char mbit = mask ? 0x80 : 0;
  if (len < 126) {
    h[i++] = static_cast<unsigned char>(mbit | len);
  } else if (len < 65536) {
    h[i++] = mbit | 126;
    h[i++] = static_cast<unsigned char>(len >> 8);
    h[i++] = static_cast<unsigned char>(len);
  } else {
    h[i++] = mbit | 127;
    for (int s = 56; s >= 0; s -= 8) h[i++] = static_cast<unsigned char>(len >> s);
  }
  if (mask) {
    std::memcpy(h + i, mask, 4);
    i += 4;
  }
  out.append(reinterpret_cast<char*>(h), i);
}

// A complete frame; masked with a fresh mask when `client`.
void put_frame(std::string& out, int opcode, const char* p, std::size_t n, bool client, bool fin = true) {
  if (!client) {
    put_header(out, opcode, n, nullptr, fin);
    out.append(p, n);
    return;
  }
  std::uint32_t m32 = rand32();
  unsigned char mask[4];
  std::memcpy(mask, &m32, 4);
  put_header(out, opcode, n, mask, fin);
  std::size_t at = out.size();
  out.resize(at + n);
  mask_into(p, out.data() + at, n, mask, 0);
}

void le64(char b[8], std::uint64_t v) {
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
}

// ---- frame decoder ----------------------------------------------------------------------------
struct FrameHead {
  bool fin = false;
  int opcode = 0;
  bool masked = false;
  unsigned char mask[4] = {0, 0, 0, 0};
  std::uint64_t len = 0;
};

struct FrameSink {
  virtual ~FrameSink() = default;
  // Data-frame payload bytes [pos, pos+n) of the frame, still masked if h.masked. false: stop.
  virtual bool on_payload(const FrameHead& h, std::uint64_t pos, const char* p, std::size_t n) = 0;
  virtual bool on_frame_end(const FrameHead& h) = 0;
  // A complete control frame, payload unmasked.
  virtual bool on_control(const FrameHead& h, const std::string& payload) = 0;
};

class FrameDecoder {
 public:
  explicit FrameDecoder(bool expect_masked) : expect_masked_(expect_masked) {}
  // false: a protocol error (error()) or a callback asked to stop
  bool feed(const char* p, std::size_t n, FrameSink& s) {
    while (n > 0) {
      if (!in_payload_) {
        while (hlen_ < need() && n > 0) {
          hbuf_[hlen_++] = static_cast<unsigned char>(*p++);
          --n;
        }
        if (hlen_ < need()) return true;
        if (!take_header()) return false;
        if (h_.len == 0 && !finish(s)) return false;
        continue;
      }
      std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n, h_.len - pos_));
      if (h_.opcode >= 8) {
        ctl_.append(p, k);
      } else if (!s.on_payload(h_, pos_, p, k)) {
        return false;
      }
      pos_ += k;
      p += k;
      n -= k;
      if (pos_ == h_.len && !finish(s)) return false;
    }
    return true;
  }
  const std::string& error() const { return error_; }

 private:
  std::size_t need() const {
    if (hlen_ < 2) return 2;
    unsigned l7 = hbuf_[1] & 0x7f;
    return 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((hbuf_[1] & 0x80) ? 4 : 0);
  }
  bool take_header() {
    h_ = FrameHead{};
    h_.fin = hbuf_[0] & 0x80;
    h_.opcode = hbuf_[0] & 0x0f;
    h_.masked = hbuf_[1] & 0x80;
    unsigned l7 = hbuf_[1] & 0x7f;
    std::size_t i = 2;
    if (l7 == 126) {
      h_.len = (static_cast<std::uint64_t>(hbuf_[2]) << 8) | hbuf_[3];
      i = 4;
    } else if (l7 == 127) {
      for (int k = 0; k < 8; ++k) h_.len = (h_.len << 8) | hbuf_[2 + k];
      i = 10;
    } else {
      h_.len = l7;
    }
    if (h_.masked) std::memcpy(h_.mask, hbuf_ + i, 4);
    hlen_ = 0;
    pos_ = 0;
    ctl_.clear();
    in_payload_ = true;
    if (hbuf_[0] & 0x70) return bad("RSV bits set");
    if (h_.masked != expect_masked_) return bad(expect_masked_ ? "unmasked client frame" : "masked server frame");
    if (h_.len >> 63) return bad("64-bit length with the top bit set");
    bool known = h_.opcode <= 2 || (h_.opcode >= 8 && h_.opcode <= 10);
    if (!known) return bad("unknown opcode " + std::to_string(h_.opcode));
    if (h_.opcode >= 8 && (h_.len > 125 || !h_.fin)) return bad("bad control frame");
    if (h_.opcode == 1) return bad("text frame (binary expected)");
    return true;
  }
  bool finish(FrameSink& s) {
    in_payload_ = false;
    if (h_.opcode >= 8) {
      if (h_.masked) mask_into(ctl_.data(), ctl_.data(), ctl_.size(), h_.mask, 0);
      return s.on_control(h_, ctl_);
    }
    return s.on_frame_end(h_);
  }
  bool bad(const std::string& what) {
    error_ = what;
    return false;
  }

  bool expect_masked_;
  unsigned char hbuf_[14] = {};
  std::size_t hlen_ = 0;
  bool in_payload_ = false;
  FrameHead h_;
  std::uint64_t pos_ = 0;
  std::string ctl_;
  std::string error_;
};

// ---- CPU time of a process tree ------------------------------------------------------------------
void tree_pids(int pid, std::vector<int>& out) {
  out.push_back(pid);
  std::string task = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(task.c_str());
  if (!d) return;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(task + "/" + e->d_name + "/children");
    int c;
    while (f >> c) tree_pids(c, out);
  }
  closedir(d);
}

// utime + stime of the tree, plus the reaped children's (cutime + cstime), in clock ticks
std::uint64_t tree_ticks(int pid) {
  if (pid <= 0) return 0;
  std::vector<int> pids;
  tree_pids(pid, pids);
  std::uint64_t sum = 0;
  for (int p : pids) {
    std::ifstream f("/proc/" + std::to_string(p) + "/stat");
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto rp = s.rfind(')');
    if (rp == std::string::npos) continue;
    std::vector<std::string> fields;
    std::size_t i = rp + 2;
    while (i < s.size() && fields.size() < 15) {
      std::size_t j = s.find(' ', i);
      if (j == std::string::npos) j = s.size();
      fields.push_back(s.substr(i, j - i));
      i = j + 1;
    }
    if (fields.size() < 15) continue;
    for (int k = 11; k <= 14; ++k) sum += std::strtoull(fields[static_cast<std::size_t>(k)].c_str(), nullptr, 10);
  }
  return sum;
}

// busy time of the whole machine (every CPU, every process and interrupt), in clock ticks
std::uint64_t host_busy_ticks() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  std::uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  f >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  return user + nice + system + irq + softirq + steal;
}

double self_cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

struct CpuClock {
  int proxy = 0, svc = 0;
  std::uint64_t p0 = 0, s0 = 0, h0 = 0;
  double c0 = 0;
  double proxy_s = 0, svc_s = 0, client_s = 0, host_s = 0;
  bool started = false;
  void start() {
    started = true;
    p0 = tree_ticks(proxy);
    s0 = tree_ticks(svc);
    c0 = self_cpu_s();
    h0 = host_busy_ticks();
  }
  void stop() {
    if (!started) return;
    double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
    proxy_s = static_cast<double>(tree_ticks(proxy) - p0) / hz;
    svc_s = static_cast<double>(tree_ticks(svc) - s0) / hz;
    client_s = self_cpu_s() - c0;
    host_s = static_cast<double>(host_busy_ticks() - h0) / hz;
  }
};

// ---- the client -------------------------------------------------------------------------------------
struct Driver {
  const Options& o;
  Addr addr;
  Loop loop;
  Stats stats;
  CpuClock cpu;
  bool measuring = false, stopping = false;
  std::uint64_t t_start = 0, t_stop = 0, t_last = 0, issued = 0;
  std::vector<Handler*> graveyard;
  std::string ring;          // stream: every client frame of one payload ring, back to back
  std::size_t frame_len = 0;  // stream: bytes of one frame in `ring`

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
    cpu.start();
    measuring = true;
    t_start = now_ns();
    t_last = t_start;
    t_stop = t_start + static_cast<std::uint64_t>(o.duration * 1e9);
  }
  void reap() {
    for (Handler* h : graveyard) delete h;
    graveyard.clear();
  }
};

void build_ring(Driver& d) {
  std::size_t m = d.o.msg;
  std::size_t frames = static_cast<std::size_t>(kRing / m);
  d.ring.clear();
  for (std::size_t k = 0; k < frames; ++k) put_frame(d.ring, 2, pattern_at(k * m), m, true);
  d.frame_len = d.ring.size() / frames;
}

std::string header_value(std::string_view head, std::string_view name) {
  std::size_t pos = 0;
  while ((pos = head.find("\r\n", pos)) != std::string_view::npos) {
    pos += 2;
    if (head.size() - pos < name.size() + 1) break;
    bool eq = true;
    for (std::size_t i = 0; i < name.size() && eq; ++i)
      eq = std::tolower(static_cast<unsigned char>(head[pos + i])) == std::tolower(static_cast<unsigned char>(name[i]));
    if (!eq || head[pos + name.size()] != ':') continue;
    std::size_t b = pos + name.size() + 1, e = head.find("\r\n", b);
    std::string v(head.substr(b, e - b));
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(0, 1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
    return v;
  }
  return {};
}

class WsClient final : public Handler, FrameSink {
 public:
  WsClient(Driver& d, bool stream, std::uint64_t quota_frames)
      : d_(d), stream_(stream), quota_frames_(quota_frames), decoder_(false), sent_at_(static_cast<std::size_t>(std::max(1, d.o.depth))) {}

  bool start() {
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
  bool open() const { return open_; }
  bool closed() const { return closed_; }
  bool done() const { return done_; }
  bool verified() const { return open_ && recv_off_ == send_off_; }

  void begin() {
    if (stream_) {
      want_writable_ = true;
      update_interest();
    } else {
      for (int i = 0; i < d_.o.depth; ++i) send_one();
    }
  }

  void finish() {  // a close frame (1000), then the socket closes
    if (closed_) return;
    static const char code[2] = {0x03, static_cast<char>(0xe8)};
    std::string f;
    put_frame(f, 8, code, 2, true);
    if (out_.empty()) (void)!write(fd_, f.data(), f.size());
    close_conn();
  }

  void on_event(std::uint32_t ev) override {
    if (closed_) return;
    if (connecting_) {
      if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) return fail(std::string("connect: ") + std::strerror(err));
      connecting_ = false;
      on_connected();
      if (closed_) return;
    }
    if (ev & EPOLLOUT) {
      if (!flush()) return;
      if (want_writable_ && out_.empty()) stream_write();
      if (closed_) return;
    }
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable();
    if (!closed_) update_interest();
  }

 private:
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
  void update_interest() {
    if (closed_) return;
    std::uint32_t ev = EPOLLIN;
    if (connecting_ || !out_.empty() || want_writable_) ev |= EPOLLOUT;
    if (ev != interest_) {
      interest_ = ev;
      d_.loop.mod(fd_, this, ev);
    }
  }
  void send(const char* p, std::size_t n) {
    if (out_.empty()) {
      ssize_t w = write(fd_, p, n);
      if (w == static_cast<ssize_t>(n)) return;
      if (w < 0) {
        if (errno != EAGAIN) return fail(std::string("write: ") + std::strerror(errno));
        w = 0;
      }
      p += w;
      n -= static_cast<std::size_t>(w);
    }
    out_.append(p, n);
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

  void on_connected() {
    key_ = random_ws_key();
    std::string req = std::string("GET ") + (stream_ ? "/sink" : "/echo") +
                      " HTTP/1.1\r\nHost: bench.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key_ +
                      "\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n";
    upgrading_ = true;
    send(req.data(), req.size());
  }

  void on_readable() {
    for (int round = 0; round < 4 && !closed_; ++round) {
      ssize_t n = read(fd_, g_io, sizeof g_io);
      if (n == 0) return fail(upgrading_ ? "EOF before the 101" : "unexpected EOF");
      if (n < 0) {
        if (errno != EAGAIN) fail(std::string("read: ") + std::strerror(errno));
        return;
      }
      if (upgrading_) {
        head_.append(g_io, static_cast<std::size_t>(n));
        Head h;
        int rc = parse_head(head_, true, h);
        if (rc == 0) continue;
        if (rc < 0 || h.status != 101)
          return fail("upgrade: expected 101, got " + head_.substr(0, std::min<std::size_t>(head_.find('\r'), 60)));
        if (!h.upgrade_websocket || !h.conn_upgrade || h.ws_accept != ws_accept_for(key_))
          return fail("upgrade: bad 101 (Upgrade/Connection/Sec-WebSocket-Accept)");
        std::string proto = header_value(std::string_view(head_).substr(0, h.head_len), "sec-websocket-protocol");
        if (!proto.empty() && proto != "binary") return fail("upgrade: subprotocol " + proto + " was not offered");
        if (!header_value(std::string_view(head_).substr(0, h.head_len), "sec-websocket-extensions").empty())
          return fail("upgrade: an extension was not offered");
        upgrading_ = false;
        open_ = true;
        std::string rest = head_.substr(h.head_len);
        head_.clear();
        head_.shrink_to_fit();
        if (!rest.empty() && !decoder_.feed(rest.data(), rest.size(), *this) && !closed_) fail("frames: " + decoder_.error());
      } else if (!decoder_.feed(g_io, static_cast<std::size_t>(n), *this)) {
        if (!closed_) fail("frames: " + decoder_.error());
        return;
      }
      if (static_cast<std::size_t>(n) < sizeof g_io) return;
    }
  }

  // ---- FrameSink
  bool on_payload(const FrameHead&, std::uint64_t, const char* p, std::size_t n) override {
    if (stream_) return on_acks(p, n);
    if (recv_off_ + n > send_off_ || !pattern_matches(recv_off_, p, n)) {
      fail("echo: echoed payload differs from the payload sent");
      return false;
    }
    d_.stats.bytes_verified += n;
    std::uint64_t msg = d_.o.msg, before = recv_off_ / msg;
    recv_off_ += n;
    std::uint64_t now = 0;
    for (std::uint64_t k = before; k < recv_off_ / msg; ++k) {
      if (!now) now = now_ns();
      ++d_.stats.units;
      d_.t_last = now;
      d_.stats.lat_ns.push_back(now - sent_at_[k % sent_at_.size()]);
      send_one();
      if (closed_) return false;
    }
    return true;
  }
  bool on_frame_end(const FrameHead&) override { return true; }
  bool on_control(const FrameHead& h, const std::string& payload) override {
    if (h.opcode == 9) {  // ping
      std::string f;
      put_frame(f, 10, payload.data(), payload.size(), true);
      send(f.data(), f.size());
      return !closed_;
    }
    if (h.opcode == 10) return true;
    int code = payload.size() >= 2 ? (static_cast<unsigned char>(payload[0]) << 8 | static_cast<unsigned char>(payload[1])) : 0;
    fail("the server sent close " + std::to_string(code) + (payload.size() > 2 ? " " + payload.substr(2) : ""));
    return false;
  }

  // ---- stream
  std::uint64_t payload_started() const {
    std::uint64_t frames = (fsent_ + d_.frame_len - 1) / d_.frame_len;
    return frames * d_.o.msg;
  }
  void stream_write() {
    const std::uint64_t per_ring = kRing / d_.o.msg;
    for (int i = 0; i < 16; ++i) {
      std::uint64_t limit_frames = quota_frames_;
      if (!limit_frames) {
        if (d_.stopping || now_ns() >= d_.t_stop) {  // after the stop time, finish the current MiB
          d_.stopping = true;
          std::uint64_t started = (fsent_ + d_.frame_len - 1) / d_.frame_len;
          limit_frames = std::max<std::uint64_t>(per_ring, (started + per_ring - 1) / per_ring * per_ring);
        } else {
          limit_frames = ~0ull / d_.frame_len;
        }
      }
      std::uint64_t limit = limit_frames * d_.frame_len;
      if (fsent_ >= limit) {
        want_writable_ = false;
        limit_payload_ = limit_frames * d_.o.msg;
        if (acked_ == limit_payload_) done_ = true;
        return;
      }
      std::size_t pos = static_cast<std::size_t>(fsent_ % d_.ring.size());
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(d_.ring.size() - pos, limit - fsent_));
      ssize_t w = write(fd_, d_.ring.data() + pos, n);
      if (w < 0) {
        if (errno != EAGAIN) fail(std::string("write: ") + std::strerror(errno));
        return;
      }
      fsent_ += static_cast<std::uint64_t>(w);
      if (static_cast<std::size_t>(w) < n) return;
    }
  }
  bool on_acks(const char* p, std::size_t n) {
    ack_.append(p, n);
    std::size_t i = 0;
    for (; i + 8 <= ack_.size(); i += 8) {
      std::uint64_t v = 0;
      for (int k = 7; k >= 0; --k) v = (v << 8) | static_cast<unsigned char>(ack_[i + static_cast<std::size_t>(k)]);
      if (v % kMiB != 0 || v > payload_started() || v <= acked_) {
        fail(v == 0x2144414221444142ull ? "stream: the sink saw bytes that differ from the payload sent" : "stream: bad ack");
        return false;
      }
      if (d_.measuring) {
        d_.stats.bytes_verified += v - acked_;
        d_.stats.units += (v - acked_) / kMiB;
        d_.t_last = now_ns();
      }
      acked_ = v;
      if (!want_writable_ && limit_payload_ && acked_ == limit_payload_) done_ = true;
    }
    ack_.erase(0, i);
    return true;
  }

  // ---- echo
  void send_one() {
    if (!d_.may_issue()) return;
    sent_at_[(send_off_ / d_.o.msg) % sent_at_.size()] = now_ns();
    std::string f;
    put_frame(f, 2, pattern_at(send_off_), d_.o.msg, true);
    send_off_ += d_.o.msg;
    send(f.data(), f.size());
  }

  Driver& d_;
  bool stream_;
  std::uint64_t quota_frames_;
  FrameDecoder decoder_;
  std::vector<std::uint64_t> sent_at_;
  int fd_ = -1;
  std::uint32_t interest_ = 0;
  bool connecting_ = false, upgrading_ = false, open_ = false, closed_ = false, done_ = false, want_writable_ = false;
  std::string key_, head_, out_, ack_;
  std::size_t out_off_ = 0;
  std::uint64_t fsent_ = 0, acked_ = 0, limit_payload_ = 0;
  std::uint64_t send_off_ = 0, recv_off_ = 0;
};

std::vector<WsClient*> open_all(Driver& d, int n, bool stream, std::uint64_t quota_frames, std::uint64_t hard) {
  std::vector<WsClient*> all;
  for (int i = 0; i < n; ++i) {
    auto* c = new WsClient(d, stream, quota_frames);
    if (!c->start()) {
      delete c;
      break;
    }
    all.push_back(c);
  }
  for (;;) {
    int open = 0;
    for (auto* c : all)
      if (!c->closed() && c->open()) ++open;
    if (open == n || d.stats.errors) break;
    d.loop.poll(20);
    if (now_ns() > hard) {
      d.stats.error("open: timed out with " + std::to_string(open) + " connections open");
      break;
    }
  }
  return all;
}

void print_result(Driver& d, const char* scenario, int conns) {
  double secs = static_cast<double>((d.t_last > d.t_start ? d.t_last : d.t_start + 1) - d.t_start) / 1e9;
  double rate = static_cast<double>(d.stats.units) / secs;
  double mbps = static_cast<double>(d.stats.bytes_verified) / secs / 1e6;
  auto& v = d.stats.lat_ns;
  double p50 = percentile_us(v, 0.50), p99 = percentile_us(v, 0.99), p999 = percentile_us(v, 0.999);
  std::string err = d.stats.first_error;
  for (auto& c : err)
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) c = '\'';
  std::printf(
      "{\"scenario\":\"%s\",\"label\":\"%s\",\"target\":\"%s\",\"conns\":%d,\"msg\":%zu,\"depth\":%d,\"seconds\":%.4f,"
      "\"units\":%llu,\"rate\":%.1f,\"MBps\":%.2f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"bytes_verified\":%llu,"
      "\"cpu_s\":%.2f,\"svc_cpu_s\":%.2f,\"client_cpu_s\":%.2f,\"host_busy_s\":%.2f,\"errors\":%llu,\"first_error\":\"%s\"}\n",
      scenario, d.o.label.c_str(), d.o.target.c_str(), conns, d.o.msg, d.o.depth, secs, static_cast<unsigned long long>(d.stats.units),
      rate, mbps, p50, p99, p999, static_cast<unsigned long long>(d.stats.bytes_verified), d.cpu.proxy_s, d.cpu.svc_s,
      d.cpu.client_s, d.cpu.host_s, static_cast<unsigned long long>(d.stats.errors), err.c_str());
  std::fflush(stdout);
}

std::uint64_t hard_deadline(const Options& o) {
  double s = o.count ? 600 : o.duration + 30;
  return now_ns() + static_cast<std::uint64_t>(s * 1e9);
}

int run_stream(Driver& d) {
  if (kRing % d.o.msg != 0) {
    std::fprintf(stderr, "sy_load ws-stream: --msg must divide 1 MiB\n");
    return 2;
  }
  build_ring(d);
  std::uint64_t hard = hard_deadline(d.o);
  // --count: MiB in all, split over the connections in whole MiB
  std::uint64_t quota = d.o.count ? std::max<std::uint64_t>(1, d.o.count / static_cast<std::uint64_t>(d.o.tunnels)) * (kRing / d.o.msg) : 0;
  auto conns = open_all(d, d.o.tunnels, true, quota, hard);
  if (!d.stats.errors) {
    d.start_measuring();
    for (auto* c : conns) c->begin();
    for (;;) {
      d.loop.poll(50);
      if (d.stats.errors) break;
      bool all = true;
      for (auto* c : conns)
        if (!c->done()) all = false;
      if (all) break;
      if (now_ns() > hard || (!d.o.count && now_ns() > d.t_stop + 10000000000ull)) {
        d.stats.error("stream: timed out waiting for the sink's acknowledgements");
        break;
      }
    }
  }
  d.cpu.stop();
  for (auto* c : conns) c->finish();
  print_result(d, "ws-stream", d.o.tunnels);
  d.reap();
  return d.stats.errors ? 1 : 0;
}

int run_echo(Driver& d) {
  std::uint64_t hard = hard_deadline(d.o);
  auto conns = open_all(d, d.o.conns, false, 0, hard);
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
        if (all) break;
        if (!d.o.count && now > d.t_stop + 5000000000ull) {
          d.stats.error("echo: messages still unanswered 5 s after the end");
          break;
        }
      }
      if (now > hard) {
        d.stats.error("echo: timed out");
        break;
      }
    }
  }
  d.cpu.stop();
  for (auto* c : conns) c->finish();
  print_result(d, "ws-echo", d.o.conns);
  d.reap();
  return d.stats.errors ? 1 : 0;
}

// ---- the services ------------------------------------------------------------------------------------------
enum class Svc { WsHandshake, WsSink, WsEcho, TcpSink, TcpEcho };

struct SvcStats {
  std::uint64_t upgrades = 0, ws_sink_bytes = 0, ws_echo_bytes = 0, tcp_sink_bytes = 0, tcp_echo_bytes = 0, errors = 0;
};
SvcStats g_svc;
std::vector<Handler*> g_dead;

class SvcConn final : public Handler, FrameSink {
 public:
  SvcConn(Loop& loop, int fd, Svc mode) : loop_(loop), fd_(fd), mode_(mode), decoder_(true) { loop_.add(fd_, this, EPOLLIN); }

  void on_event(std::uint32_t ev) override {
    if (dead_) return;
    if (ev & EPOLLOUT) {
      if (!flush()) return;
    }
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable();
    if (!dead_) update_interest();
  }

 private:
  void die() {
    if (dead_) return;
    dead_ = true;
    loop_.del(fd_);
    close(fd_);
    g_dead.push_back(this);
  }
  void update_interest() {
    bool echo = mode_ == Svc::WsEcho || mode_ == Svc::TcpEcho;
    std::uint32_t ev = (echo && !out_.empty() ? 0u : static_cast<std::uint32_t>(EPOLLIN)) | (out_.empty() ? 0u : static_cast<std::uint32_t>(EPOLLOUT));
    if (ev != interest_) {
      interest_ = ev;
      loop_.mod(fd_, this, ev);
    }
  }
  bool flush() {
    while (out_off_ < out_.size()) {
      ssize_t n = write(fd_, out_.data() + out_off_, out_.size() - out_off_);
      if (n > 0) {
        out_off_ += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EAGAIN) {
        return true;
      } else {
        die();
        return false;
      }
    }
    out_.clear();
    out_off_ = 0;
    if (close_after_flush_) {
      die();
      return false;
    }
    return true;
  }
  void queue(const char* p, std::size_t n) { out_.append(p, n); }

  void on_readable() {
    for (int round = 0; round < 4; ++round) {
      ssize_t n = read(fd_, g_io, sizeof g_io);
      if (n == 0 || (n < 0 && errno != EAGAIN)) {
        if (n == 0 && mode_ == Svc::TcpSink && sink_off_ % kMiB != 0) {  // a partial MiB: never acknowledged
          ++g_svc.errors;
          std::fprintf(stderr, "sy_load ws-services: TCP sink: EOF after %llu bytes (not whole MiB)\n",
                       static_cast<unsigned long long>(sink_off_));
        }
        die();
        return;
      }
      if (n < 0) break;
      if (!consume(g_io, static_cast<std::size_t>(n))) break;
      if (static_cast<std::size_t>(n) < sizeof g_io) break;
      if ((mode_ == Svc::TcpEcho || mode_ == Svc::WsEcho) && !out_.empty()) break;
    }
    if (!dead_) flush();
  }

  // false: stop reading now (closing, or a reply is queued behind a protocol error)
  bool consume(const char* p, std::size_t n) {
    switch (mode_) {
      case Svc::TcpEcho:
        g_svc.tcp_echo_bytes += n;
        queue(p, n);
        return true;
      case Svc::TcpSink:
        return tcp_sink(p, n);
      case Svc::WsSink:
      case Svc::WsEcho:
        if (closing_) return true;
        if (!decoder_.feed(p, n, *this)) {
          if (!closing_) {
            ++g_svc.errors;
            std::fprintf(stderr, "sy_load ws-services: %s\n", decoder_.error().c_str());
            static const char proto[2] = {0x03, static_cast<char>(0xea)};  // 1002
            put_frame(out_, 8, proto, 2, false);
            closing_ = close_after_flush_ = true;
          }
          return false;
        }
        return true;
      case Svc::WsHandshake:
        break;
    }
    in_.append(p, n);
    Head h;
    int rc = parse_head(in_, false, h);
    if (rc == 0) return true;
    Svc m = h.path == "/sink" ? Svc::WsSink : h.path == "/echo" ? Svc::WsEcho : Svc::WsHandshake;
    if (rc < 0 || !h.upgrade_websocket || h.ws_key.size() != 24 || m == Svc::WsHandshake) {
      ++g_svc.errors;
      std::fprintf(stderr, "sy_load ws-services: not a WebSocket upgrade to /sink or /echo: %.60s\n", in_.c_str());
      static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      queue(bad, sizeof bad - 1);
      close_after_flush_ = true;
      return false;
    }
    ++g_svc.upgrades;
    std::string r = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ";
    r += ws_accept_for(h.ws_key);
    r += "\r\n";
    std::string offered = header_value(std::string_view(in_).substr(0, h.head_len), "sec-websocket-protocol");
    if (offered.find("binary") != std::string::npos) r += "Sec-WebSocket-Protocol: binary\r\n";
    r += "\r\n";
    queue(r.data(), r.size());
    mode_ = m;
    std::string rest = in_.substr(h.head_len);
    in_.clear();
    in_.shrink_to_fit();
    return rest.empty() || consume(rest.data(), rest.size());
  }

  void ack(std::uint64_t before, bool framed) {
    if (sink_off_ / kMiB == before / kMiB) return;
    char b[8];
    le64(b, sink_off_ / kMiB * kMiB);
    if (framed) put_frame(out_, 2, b, 8, false);
    else queue(b, 8);
  }
  void sink_mismatch(bool framed) {
    ++g_svc.errors;
    std::fprintf(stderr, "sy_load ws-services: %s sink: bytes differ from the payload sent, at offset %llu\n", framed ? "WebSocket" : "TCP",
                 static_cast<unsigned long long>(sink_off_));
    if (framed) put_frame(out_, 2, "BAD!BAD!", 8, false);
    else queue("BAD!BAD!", 8);
    closing_ = close_after_flush_ = true;
  }
  bool tcp_sink(const char* p, std::size_t n) {
    if (!ring_matches(sink_off_, p, n)) {
      sink_mismatch(false);
      return false;
    }
    std::uint64_t before = sink_off_;
    sink_off_ += n;
    g_svc.tcp_sink_bytes += n;
    ack(before, false);
    return true;
  }

  // ---- FrameSink (WebSocket services)
  bool on_payload(const FrameHead& h, std::uint64_t pos, const char* p, std::size_t n) override {
    if (mode_ == Svc::WsSink) {
      if (!masked_ring_matches(sink_off_, p, n, h.mask, static_cast<std::size_t>(pos & 3))) {
        sink_mismatch(true);
        return false;
      }
      std::uint64_t before = sink_off_;
      sink_off_ += n;
      g_svc.ws_sink_bytes += n;
      ack(before, true);
      return true;
    }
    std::size_t at = frame_.size();
    frame_.resize(at + n);
    mask_into(p, frame_.data() + at, n, h.mask, static_cast<std::size_t>(pos & 3));
    return true;
  }
  bool on_frame_end(const FrameHead& h) override {
    if (mode_ == Svc::WsEcho) {
      g_svc.ws_echo_bytes += frame_.size();
      put_frame(out_, h.opcode, frame_.data(), frame_.size(), false, h.fin);
      frame_.clear();
    }
    return true;
  }
  bool on_control(const FrameHead& h, const std::string& payload) override {
    if (h.opcode == 9) {
      put_frame(out_, 10, payload.data(), payload.size(), false);
      return true;
    }
    if (h.opcode == 10) return true;
    put_frame(out_, 8, payload.data(), std::min<std::size_t>(payload.size(), 2), false);  // close: same code
    closing_ = close_after_flush_ = true;
    return false;
  }

  Loop& loop_;
  int fd_;
  Svc mode_;
  FrameDecoder decoder_;
  std::uint32_t interest_ = EPOLLIN;
  bool dead_ = false, closing_ = false, close_after_flush_ = false;
  std::string in_, out_, frame_;
  std::size_t out_off_ = 0;
  std::uint64_t sink_off_ = 0;
};

class SvcAcceptor final : public Handler {
 public:
  SvcAcceptor(Loop& loop, int fd, Svc mode) : loop_(loop), fd_(fd), mode_(mode) { loop_.add(fd_, this, EPOLLIN); }
  void on_event(std::uint32_t) override {
    for (int i = 0; i < 64; ++i) {
      int c = accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0) return;
      set_nodelay(c);
      new SvcConn(loop_, c, mode_);
    }
  }

 private:
  Loop& loop_;
  int fd_;
  Svc mode_;
};

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

}  // namespace

int run_ws_services(const Options& o) {
  Addr a;
  if (!parse_addr(o.listen, a) || a.port == 0 || a.port > 65533) {
    std::fprintf(stderr, "sy_load ws-services: bad --listen (PORT, PORT+1, PORT+2 are used)\n");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  Loop loop;
  std::vector<SvcAcceptor*> acceptors;
  const Svc modes[3] = {Svc::WsHandshake, Svc::TcpSink, Svc::TcpEcho};
  for (int i = 0; i < 3; ++i) {
    Addr ai = a;
    ai.port = a.port + i;
    int fd = listen_tcp(ai);
    if (fd < 0) {
      std::fprintf(stderr, "sy_load ws-services: cannot listen on %s:%d: %s\n", ai.host.c_str(), ai.port, std::strerror(errno));
      return 1;
    }
    acceptors.push_back(new SvcAcceptor(loop, fd, modes[i]));
  }
  std::printf("sy_load ws-services: WebSocket %s:%d (/sink, /echo), TCP sink :%d, TCP echo :%d\n", a.host.c_str(), a.port, a.port + 1,
              a.port + 2);
  std::fflush(stdout);
  std::uint64_t end = o.duration > 0 ? now_ns() + static_cast<std::uint64_t>(o.duration * 1e9) : 0;
  while (!g_stop && (end == 0 || now_ns() < end)) {
    loop.poll(200);
    for (Handler* h : g_dead) delete h;
    g_dead.clear();
  }
  std::printf(
      "{\"role\":\"ws-services\",\"upgrades\":%llu,\"ws_sink_bytes\":%llu,\"ws_echo_bytes\":%llu,\"tcp_sink_bytes\":%llu,"
      "\"tcp_echo_bytes\":%llu,\"errors\":%llu}\n",
      static_cast<unsigned long long>(g_svc.upgrades), static_cast<unsigned long long>(g_svc.ws_sink_bytes),
      static_cast<unsigned long long>(g_svc.ws_echo_bytes), static_cast<unsigned long long>(g_svc.tcp_sink_bytes),
      static_cast<unsigned long long>(g_svc.tcp_echo_bytes), static_cast<unsigned long long>(g_svc.errors));
  return 0;
}

int run_ws_client(const Options& o, const WsOptions& w) {
  std::signal(SIGPIPE, SIG_IGN);
  Driver d(o);
  d.cpu.proxy = w.cpu_pid;
  d.cpu.svc = w.svc_pid;
  if (!parse_addr(o.target, d.addr)) {
    std::fprintf(stderr, "sy_load: bad --target\n");
    return 2;
  }
  if (o.cmd == "ws-stream") return run_stream(d);
  return run_echo(d);
}

}  // namespace syload
