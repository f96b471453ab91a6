// server/http_guard.h — the HTTP layer's defences, so that an open server on a laptop is safe to leave running.
// cpp-httplib parses requests; this layer owns each connection around it:
//   - connections: a global cap and a per-client (peer address) cap, answered at once with 503 / 429 and
//     Retry-After instead of queueing behind slow clients; an elastic worker pool so that a refused or a quick
//     request never waits for a thread held by a slow one;
//   - deadlines: the request line and headers must arrive within header_timeout_s, the body within
//     body_timeout_s (a total, not per read, so a client trickling one byte a second is cut off), headers are capped
//     in bytes, an idle keep-alive connection closes after idle_timeout_s;
//   - request checks before any body byte is read (check_request_head): a Host allow-list against DNS rebinding,
//     Origin checks and JSON-only content types against cross-site requests (CSRF), an immediate 413 for an
//     announced oversize body, 400 for conflicting or malformed Content-Length (request smuggling), and a budget
//     of body bytes in flight so that many concurrent large bodies cannot exhaust memory.
// defines: GuardOptions, HeadCheck, check_request_head, host_allowed, origin_allowed, is_loopback_host,
//          GuardedHttpServer
#pragma once
#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace baleine::server {

struct GuardOptions {
  int max_connections = 128;             // served at once; more get an immediate 503
  int max_connections_per_client = 48;   // per peer address; more get an immediate 429
  double header_timeout_s = 10;          // request line + headers, from the first byte
  double body_timeout_s = 30;            // the whole body, from the end of the headers
  double idle_timeout_s = 5;             // keep-alive: wait for the next request
  double write_timeout_s = 30;           // one write to a client that does not read
  int keep_alive_max = 100;              // requests per connection
  size_t max_header_bytes = 64 << 10;    // request line + headers
  size_t max_body_bytes = 4 << 20;       // one body (announced or chunked)
  size_t body_budget_bytes = 16 << 20;   // bodies being received and handled at once (announced sizes); more wait
  double budget_wait_s = 30;             // ...unread, this long at most (then 503 with Retry-After)
  // Host header allow-list (host names without port; "*" allows any). Empty: when bound to a loopback address,
  // only localhost names and loopback addresses; otherwise any.
  std::vector<std::string> allowed_hosts;
  bool loopback_bind = true;
  // Origins allowed to make state-changing (POST/PUT/PATCH/DELETE) requests besides the server's own origin
  // ("*" allows any), usually the --cors origin.
  std::vector<std::string> allowed_origins;
};

// A refusal decided from the request line and headers alone.
struct HeadCheck {
  int status = 0;             // 0: accepted
  std::string message, code;  // OpenAI error body fields
  int retry_after = 0;
};

bool is_loopback_host(const std::string& host);  // "127.0.0.1", "::1", "localhost", "[::1]"...
// host: a Host header value ("example.com:8080", "[::1]:80").
bool host_allowed(const std::string& host_header, const GuardOptions& o);
// origin: an Origin header value; host_header: the request's Host (the server's own origin).
bool origin_allowed(const std::string& origin, const std::string& host_header, const GuardOptions& o);
// Everything decidable before the body: Host, Origin, Content-Type, Content-Length / Transfer-Encoding.
// reserved_body_bytes: what a body admitted now will count against the budget.
HeadCheck check_request_head(const std::string& method, const httplib::Headers& headers, const GuardOptions& o,
                             size_t& reserved_body_bytes);

// httplib::Server with the connection handling above. Refusals decided in check_request_head are answered by the
// guard's own pre-routing handler, before any body byte is read, and the connection is closed after them.
class GuardedHttpServer : public httplib::Server {
 public:
  explicit GuardedHttpServer(GuardOptions o);
  ~GuardedHttpServer() override;
  const GuardOptions& options() const { return opt_; }
  // After bind_to_port: the library listens with a backlog of 5, so a burst of connections waited for SYN
  // retransmits (1 s, 3 s...) before being accepted at all, and /health with them. Listening again widens it.
  void widen_backlog(int backlog = 1024);
  struct Stats {
    int64_t open = 0, refused_busy = 0, refused_client = 0, timed_out = 0;
  };
  Stats stats() const;

 private:
  bool process_and_close_socket(socket_t sock) override;
  // The refusal decided for the request being handled on this thread, if any (each is taken once).
  static std::optional<HeadCheck> take_refusal();
  bool admit(const std::string& peer, HeadCheck& refusal);
  void release(const std::string& peer);

  GuardOptions opt_;
  mutable std::mutex mu_;
  std::map<std::string, int> per_client_;
  int open_ = 0;
  bool acquire_body_budget(size_t bytes, double timeout_s);
  void release_body_budget(size_t bytes);
  std::mutex budget_mu_;
  std::condition_variable budget_cv_;
  size_t body_bytes_in_flight_ = 0;
  std::atomic<int64_t> refused_busy_{0}, refused_client_{0}, timed_out_{0};
};

}  // namespace baleine::server
