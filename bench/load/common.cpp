#include "common.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/sha.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <stdexcept>

namespace syload {

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

namespace {
std::vector<char> make_pattern() {
  std::vector<char> p(kPeriod + kMaxChunk);
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  for (std::size_t i = 0; i < kPeriod; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = static_cast<char>(x >> 24);
  }
  for (std::size_t i = kPeriod; i < p.size(); ++i) p[i] = p[i - kPeriod];
  return p;
}
const std::vector<char>& pattern() {
  static const std::vector<char> p = make_pattern();
  return p;
}
}  // namespace

const char* pattern_at(std::uint64_t off) { return pattern().data() + off % kPeriod; }

bool pattern_matches(std::uint64_t off, const char* data, std::size_t len) {
  while (len > 0) {
    std::size_t n = std::min(len, kMaxChunk);
    if (std::memcmp(pattern_at(off), data, n) != 0) return false;
    off += n;
    data += n;
    len -= n;
  }
  return true;
}

bool parse_addr(std::string_view text, Addr& out) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return false;
  out.host = std::string(text.substr(0, colon));
  if (out.host.empty()) out.host = "127.0.0.1";
  out.port = std::atoi(std::string(text.substr(colon + 1)).c_str());
  return out.port >= 0 && out.port < 65536;
}

static bool to_sockaddr(const Addr& a, sockaddr_in& sa) {
  std::memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(a.port));
  return inet_pton(AF_INET, a.host.c_str(), &sa.sin_addr) == 1;
}

int listen_tcp(const Addr& a) {
  sockaddr_in sa{};
  if (!to_sockaddr(a, sa)) return -1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(fd, 4096) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int connect_tcp(const Addr& a, bool& pending) {
  sockaddr_in sa{};
  if (!to_sockaddr(a, sa)) return -1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  set_nodelay(fd);
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  if (rc == 0) {
    pending = false;
    return fd;
  }
  if (errno == EINPROGRESS) {
    pending = true;
    return fd;
  }
  close(fd);
  return -1;
}

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Loop::Loop() : ep_(epoll_create1(EPOLL_CLOEXEC)), events_(512) {
  if (ep_ < 0) throw std::runtime_error("epoll_create1 failed");
}
Loop::~Loop() { close(ep_); }

void Loop::add(int fd, Handler* h, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = h;
  epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
}
void Loop::mod(int fd, Handler* h, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = h;
  epoll_ctl(ep_, EPOLL_CTL_MOD, fd, &ev);
}
void Loop::del(int fd) { epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr); }

void Loop::poll(int timeout_ms) {
  int n = epoll_wait(ep_, events_.data(), static_cast<int>(events_.size()), timeout_ms);
  for (int i = 0; i < n; ++i) static_cast<Handler*>(events_[static_cast<std::size_t>(i)].data.ptr)->on_event(events_[static_cast<std::size_t>(i)].events);
}

// ---- heads -----------------------------------------------------------------------------------
static bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}
static bool icontains_token(std::string_view value, std::string_view token) {
  std::size_t i = 0;
  while (i < value.size()) {
    std::size_t j = value.find(',', i);
    if (j == std::string_view::npos) j = value.size();
    std::string_view t = value.substr(i, j - i);
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    if (ieq(t, token)) return true;
    i = j + 1;
  }
  return false;
}

int parse_head(std::string_view buf, bool response, Head& out) {
  auto end = buf.find("\r\n\r\n");
  if (end == std::string_view::npos) return buf.size() > 65536 ? -1 : 0;
  out = Head{};
  out.head_len = end + 4;
  std::string_view head = buf.substr(0, end + 2);
  auto eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  if (response) {
    if (line.size() < 12 || line.substr(0, 9) != "HTTP/1.1 ") return -1;
    out.status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  } else {
    auto sp1 = line.find(' ');
    auto sp2 = line.rfind(' ');
    if (sp1 == std::string_view::npos || sp2 == sp1) return -1;
    out.method = std::string(line.substr(0, sp1));
    out.path = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  }
  std::size_t pos = eol + 2;
  while (pos < head.size()) {
    auto e = head.find("\r\n", pos);
    std::string_view f = head.substr(pos, e - pos);
    pos = e + 2;
    auto colon = f.find(':');
    if (colon == std::string_view::npos) return -1;
    std::string_view name = f.substr(0, colon);
    std::string_view value = f.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (ieq(name, "content-length")) {
      out.content_length = std::atoll(std::string(value).c_str());
    } else if (ieq(name, "transfer-encoding")) {
      out.chunked = icontains_token(value, "chunked");
    } else if (ieq(name, "connection")) {
      if (icontains_token(value, "close")) out.conn_close = true;
      if (icontains_token(value, "upgrade")) out.conn_upgrade = true;
    } else if (ieq(name, "upgrade")) {
      out.upgrade_websocket = icontains_token(value, "websocket");
    } else if (ieq(name, "sec-websocket-key")) {
      out.ws_key = std::string(value);
    } else if (ieq(name, "sec-websocket-accept")) {
      out.ws_accept = std::string(value);
    }
  }
  return 1;
}

static std::string base64(const unsigned char* p, std::size_t n) {
  static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < n; i += 3) {
    unsigned v = static_cast<unsigned>(p[i]) << 16;
    if (i + 1 < n) v |= static_cast<unsigned>(p[i + 1]) << 8;
    if (i + 2 < n) v |= p[i + 2];
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += i + 1 < n ? tbl[(v >> 6) & 63] : '=';
    out += i + 2 < n ? tbl[v & 63] : '=';
  }
  return out;
}

std::string ws_accept_for(std::string_view key) {
  std::string s(key);
  s += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(s.data()), s.size(), md);
  return base64(md, sizeof md);
}

std::string random_ws_key() {
  static std::mt19937_64 rng(0x5eed);
  unsigned char b[16];
  for (auto& c : b) c = static_cast<unsigned char>(rng());
  return base64(b, sizeof b);
}

void Stats::error(const std::string& what) {
  if (errors++ == 0) first_error = what;
}

double percentile_us(std::vector<std::uint64_t>& v, double p) {
  if (v.empty()) return 0;
  std::size_t k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return static_cast<double>(v[k]) / 1000.0;
}

}  // namespace syload
