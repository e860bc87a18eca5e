// sy_load: shared pieces (event loop, sockets, the verification pattern, HTTP heads).
#pragma once

#include <sys/epoll.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace syload {

// ---- time -------------------------------------------------------------------------------
std::uint64_t now_ns();

// ---- the pattern ------------------------------------------------------------------------
// Every byte a scenario sends is pattern byte (stream offset % kPeriod). The period is prime,
// so a lost, duplicated or reordered chunk of any ordinary size shows up as a mismatch.
constexpr std::size_t kPeriod = 65521;
constexpr std::size_t kMaxChunk = 65536;
// pattern_at(off) points at kMaxChunk valid bytes that continue the pattern from `off`.
const char* pattern_at(std::uint64_t off);
// true if data[0..len) is the pattern starting at stream offset `off`.
bool pattern_matches(std::uint64_t off, const char* data, std::size_t len);

// ---- addresses and sockets ---------------------------------------------------------------
struct Addr {
  std::string host;
  int port = 0;
};
bool parse_addr(std::string_view text, Addr& out);
int listen_tcp(const Addr& a);                 // non-blocking listener, or -1
int connect_tcp(const Addr& a, bool& pending);  // non-blocking connect, or -1
void set_nodelay(int fd);

// ---- event loop ---------------------------------------------------------------------------
struct Handler {
  virtual ~Handler() = default;
  virtual void on_event(std::uint32_t events) = 0;
};

class Loop {
 public:
  Loop();
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;
  void add(int fd, Handler* h, std::uint32_t events);
  void mod(int fd, Handler* h, std::uint32_t events);
  void del(int fd);
  // Dispatches events for at most `timeout_ms`.
  void poll(int timeout_ms);

 private:
  int ep_;
  std::vector<epoll_event> events_;
};

// ---- HTTP heads ------------------------------------------------------------------------------
struct Head {
  int status = 0;            // responses
  std::string method, path;  // requests
  std::size_t head_len = 0;  // bytes up to and including the blank line
  long long content_length = -1;
  bool chunked = false;
  bool conn_close = false;
  bool upgrade_websocket = false;
  bool conn_upgrade = false;
  std::string ws_key, ws_accept;
};
// Parses a head at the start of buf. Returns 1 complete, 0 need more, -1 malformed.
int parse_head(std::string_view buf, bool response, Head& out);
std::string ws_accept_for(std::string_view key);
std::string random_ws_key();

// ---- results -----------------------------------------------------------------------------
struct Stats {
  std::vector<std::uint64_t> lat_ns;
  std::uint64_t units = 0;
  std::uint64_t bytes_verified = 0;
  std::uint64_t errors = 0;
  std::string first_error;
  void error(const std::string& what);
};
double percentile_us(std::vector<std::uint64_t>& v, double p);

}  // namespace syload
