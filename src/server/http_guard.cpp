#include "server/http_guard.h"

#include "server/anthropic_api.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <thread>

#include "server/openai_api.h"

namespace baleine::server {

namespace {

using Clock = std::chrono::steady_clock;

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// "example.com:8080" -> "example.com"; "[::1]:80" -> "::1"; "::1" stays (a bare IPv6 address has no port).
std::string host_name(const std::string& authority) {
  std::string a = trim(authority);
  if (!a.empty() && a[0] == '[') {
    const size_t close = a.find(']');
    return lower(close == std::string::npos ? a.substr(1) : a.substr(1, close - 1));
  }
  const size_t colon = a.find(':');
  if (colon != std::string::npos && a.find(':', colon + 1) == std::string::npos) a = a.substr(0, colon);
  if (!a.empty() && a.back() == '.') a.pop_back();  // "localhost." is localhost
  return lower(a);
}

bool name_matches(const std::string& name, const std::string& pattern) {
  const std::string p = lower(pattern);
  if (p == "*") return true;
  if (!p.empty() && p[0] == '.')  // ".example.com": the domain and its subdomains
    return name == p.substr(1) || (name.size() > p.size() && name.compare(name.size() - p.size(), p.size(), p) == 0);
  return name == p;
}

bool is_json_content_type(const std::string& v) {
  std::string t = lower(trim(v.substr(0, v.find(';'))));
  return t == "application/json" || (t.rfind("application/", 0) == 0 && t.size() > 5 && t.compare(t.size() - 5, 5, "+json") == 0);
}

HeadCheck refuse(int status, std::string message, std::string code, int retry_after = 0) {
  return HeadCheck{status, std::move(message), std::move(code), retry_after};
}

// The refusal in the error shape of the API the client speaks: Anthropic's under /anthropic (its SDKs read
// error.type), OpenAI's elsewhere. A connection refused before its request line is read gets OpenAI's.
std::string error_json(const HeadCheck& c, const std::string& path = "") {
  const char* type = c.status == 429 ? "rate_limit_error" : c.status >= 500 ? "server_error" : "invalid_request_error";
  const ApiError e(c.status, c.message, type, "", c.code);
  return path.rfind("/anthropic/", 0) == 0 ? anthropic_error_body(e) : error_body(e);
}

std::string peer_address(int sock) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getpeername(sock, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char buf[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
  } else if (ss.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof buf);
    if (std::strncmp(buf, "::ffff:", 7) == 0) return buf + 7;  // IPv4-mapped: one client, one name
  }
  return buf;
}

void ip_and_port(const sockaddr_storage& ss, std::string& ip, int& port) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    port = ntohs(a->sin6_port);
  }
  ip = buf;
}

int ms_until(Clock::time_point t) {  // rounded up, so a wait never ends before t
  const auto d = std::chrono::ceil<std::chrono::milliseconds>(t - Clock::now()).count();
  return d <= 0 ? 0 : int(std::min<int64_t>(d, 1 << 30));
}

// A socket stream whose reads share one deadline per phase (headers, then body) instead of a timeout per read, and
// whose header phase is capped in bytes. Reads are buffered: httplib reads headers one byte at a time.
class DeadlineStream final : public httplib::Stream {
 public:
  DeadlineStream(int sock, const GuardOptions& o) : sock_(sock), opt_(o) {}

  // Waits for the first byte of a request (keep-alive idle wait); false when none came.
  bool wait_request(double idle_s) {
    if (pos_ < len_) return true;
    return poll_fd(POLLIN, int(idle_s * 1000)) > 0;
  }
  void begin_headers() {
    deadline_ = Clock::now() + std::chrono::milliseconds(int64_t(opt_.header_timeout_s * 1000));
    header_phase_ = true;
    header_bytes_ = 0;
  }
  void begin_body() {
    deadline_ = Clock::now() + std::chrono::milliseconds(int64_t(opt_.body_timeout_s * 1000));
    header_phase_ = false;
  }
  bool timed_out() const { return timed_out_; }

  bool is_readable() const override { return pos_ < len_ || poll_fd(POLLIN, ms_until(deadline_)) > 0; }
  bool is_writable() const override {
    if (poll_fd(POLLOUT, int(opt_.write_timeout_s * 1000)) <= 0) return false;
    // A peer that closed: readable with nothing to read (what httplib's is_socket_alive checks).
    pollfd p{sock_, POLLIN, 0};
    if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLERR | POLLHUP | POLLNVAL))) return false;
    if (p.revents & POLLIN) {
      char c;
      if (::recv(sock_, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0) return false;
    }
    return true;
  }
  ssize_t read(char* ptr, size_t size) override {
    if (size == 0) return 0;
    if (pos_ == len_) {
      if (header_phase_ && header_bytes_ >= opt_.max_header_bytes) return -1;
      const int wait = ms_until(deadline_);
      const int ready = wait == 0 ? 0 : poll_fd(POLLIN, wait);
      if (ready <= 0) {
        timed_out_ = timed_out_ || ready == 0;  // the phase's deadline passed (not an error on the socket)
        return -1;
      }
      const ssize_t n = ::recv(sock_, buf_, sizeof buf_, 0);
      if (n <= 0) return n < 0 ? -1 : 0;
      pos_ = 0;
      len_ = size_t(n);
    }
    const size_t n = std::min(size, len_ - pos_);
    std::memcpy(ptr, buf_ + pos_, n);
    pos_ += n;
    if (header_phase_) header_bytes_ += n;
    return ssize_t(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    if (!is_writable()) return -1;
    return ::send(sock_, ptr, size, MSG_NOSIGNAL);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getpeername(sock_, reinterpret_cast<sockaddr*>(&ss), &len) == 0) ip_and_port(ss, ip, port);
    if (ip.rfind("::ffff:", 0) == 0) ip = ip.substr(7);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getsockname(sock_, reinterpret_cast<sockaddr*>(&ss), &len) == 0) ip_and_port(ss, ip, port);
  }
  socket_t socket() const override { return sock_; }

 private:
  int poll_fd(short events, int timeout_ms) const {
    pollfd p{sock_, events, 0};
    int r;
    do r = ::poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r > 0 && (p.revents & (POLLERR | POLLNVAL))) return -1;
    return r;
  }

  int sock_;
  const GuardOptions& opt_;
  char buf_[4096];
  size_t pos_ = 0, len_ = 0, header_bytes_ = 0;
  bool header_phase_ = true, timed_out_ = false;
  Clock::time_point deadline_ = Clock::now();
};

// Worker threads made on demand (up to a cap) and retired when idle, so a quick request never waits for a thread
// that a slow client holds; httplib's own pool has a fixed size.
class ElasticPool final : public httplib::TaskQueue {
 public:
  ElasticPool(size_t max_threads, size_t keep_idle) : max_(max_threads), keep_idle_(keep_idle) {}
  void enqueue(std::function<void()> fn) override {
    std::lock_guard<std::mutex> lk(mu_);
    jobs_.push_back(std::move(fn));
    if (jobs_.size() > idle_ && live_ < max_) {
      ++live_;
      std::thread([this] { work(); }).detach();
    } else {
      cv_.notify_one();
    }
  }
  void shutdown() override {
    std::unique_lock<std::mutex> lk(mu_);
    stop_ = true;
    cv_.notify_all();
    done_.wait(lk, [&] { return live_ == 0; });
  }

 private:
  void work() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      ++idle_;
      const bool woke = cv_.wait_for(lk, std::chrono::seconds(30), [&] { return stop_ || !jobs_.empty(); });
      --idle_;
      if (jobs_.empty() && (stop_ || (!woke && live_ > keep_idle_))) break;
      if (jobs_.empty()) continue;
      auto fn = std::move(jobs_.front());
      jobs_.pop_front();
      lk.unlock();
      fn();
      lk.lock();
    }
    --live_;
    done_.notify_all();  // under the lock: shutdown() cannot return (and destroy us) before we released it
  }

  std::mutex mu_;
  std::condition_variable cv_, done_;
  std::deque<std::function<void()>> jobs_;
  size_t max_, keep_idle_, live_ = 0, idle_ = 0;
  bool stop_ = false;
};

// What the connection loop and the handlers of one thread share about the request in progress.
struct RequestState {
  std::optional<HeadCheck> refusal;
  size_t reserved = 0;
  bool close = false;
};
thread_local RequestState* t_request = nullptr;

// Reads and drops what a refused client still sends, briefly (closing a socket with unread input resets the
// connection, and the client may lose the answer).
void drain(int sock) {
  char buf[4096];
  const auto until = Clock::now() + std::chrono::milliseconds(200);
  for (size_t total = 0; total < (1 << 20);) {
    pollfd q{sock, POLLIN, 0};
    if (::poll(&q, 1, ms_until(until)) <= 0) break;
    const ssize_t n = ::recv(sock, buf, sizeof buf, 0);
    if (n <= 0) break;
    total += size_t(n);
  }
}

// Answers a connection refused before reading anything, then lets the client finish sending (so that closing does
// not reset the connection before it read the answer).
void refuse_connection(int sock, const HeadCheck& c) {
  const std::string body = error_json(c);
  const std::string head = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nRetry-After: {}\r\n"
      "Connection: close\r\n\r\n",
      c.status, c.status == 429 ? "Too Many Requests" : "Service Unavailable", body.size(), std::max(1, c.retry_after));
  const std::string msg = head + body;
  pollfd p{sock, POLLOUT, 0};
  if (::poll(&p, 1, 1000) > 0) (void)::send(sock, msg.data(), msg.size(), MSG_NOSIGNAL);
  ::shutdown(sock, SHUT_WR);
  drain(sock);
}

}  // namespace

bool is_loopback_host(const std::string& host) {
  const std::string h = host_name(host);
  if (h == "localhost" || h == "::1" || h == "0:0:0:0:0:0:0:1") return true;
  if (h.size() > 10 && h.compare(h.size() - 10, 10, ".localhost") == 0) return true;  // RFC 6761
  in_addr a{};
  return inet_pton(AF_INET, h.c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

bool host_allowed(const std::string& host_header, const GuardOptions& o) {
  const std::string name = host_name(host_header);
  for (const auto& p : o.allowed_hosts)
    if (name_matches(name, p)) return true;
  if (o.loopback_bind) return is_loopback_host(name);
  return o.allowed_hosts.empty();
}

bool origin_allowed(const std::string& origin, const std::string& host_header, const GuardOptions& o) {
  for (const auto& a : o.allowed_origins)
    if (a == "*" || lower(a) == lower(origin)) return true;
  const std::string lo = lower(trim(origin));
  const size_t sep = lo.find("://");
  if (lo == "null" || sep == std::string::npos) return false;
  std::string authority = lo.substr(sep + 3);
  if (const size_t slash = authority.find('/'); slash != std::string::npos) authority.resize(slash);
  // Same origin: the page was served by this server under the name the request is addressed to.
  return !host_header.empty() && authority == lower(trim(host_header));
}

HeadCheck check_request_head(const std::string& method, const httplib::Headers& headers, const GuardOptions& o,
                             size_t& reserved_body_bytes) {
  reserved_body_bytes = 0;
  auto all = [&](const char* name) {
    std::vector<std::string> v;
    for (auto [it, end] = headers.equal_range(name); it != end; ++it) v.push_back(it->second);
    return v;
  };
  const auto hosts = all("Host");
  if (hosts.size() > 1) return refuse(400, "the request has more than one Host header", "invalid_host");
  const std::string host = hosts.empty() ? "" : hosts[0];
  if (!host.empty() && !host_allowed(host, o))
    return refuse(403,
                  fmt::format("Host '{}' is not allowed: this server answers only the names it was started for (a "
                              "protection against DNS rebinding); start it with --allowed-host NAME to add one",
                              host.substr(0, 200)),
                  "host_not_allowed");
  const bool changes_state = method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE";
  if (changes_state) {
    const auto origins = all("Origin");
    for (const auto& origin : origins)
      if (!origin_allowed(origin, host, o))
        return refuse(403,
                      fmt::format("cross-origin request from '{}' refused: a web page on another site may not use "
                                  "this server (start it with --cors ORIGIN to allow one)",
                                  origin.substr(0, 200)),
                      "origin_not_allowed");
  }
  // Body framing: one unambiguous length, or chunked alone (anything else is how requests are smuggled past a proxy).
  const auto lengths = all("Content-Length");
  const auto encodings = all("Transfer-Encoding");
  uint64_t length = 0;
  for (const auto& v : lengths) {
    const std::string t = trim(v);
    if (t.empty() || t.size() > 19 || !std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return refuse(400, fmt::format("invalid Content-Length '{}'", v.substr(0, 40)), "invalid_content_length");
    const uint64_t x = std::stoull(t);
    if (&v != &lengths[0] && x != length)
      return refuse(400, "the request has conflicting Content-Length headers", "invalid_content_length");
    length = x;
  }
  const bool chunked = !encodings.empty();
  if (chunked) {
    if (!lengths.empty()) return refuse(400, "the request has both Content-Length and Transfer-Encoding", "invalid_content_length");
    if (encodings.size() > 1 || lower(trim(encodings[0])) != "chunked")
      return refuse(400, "only 'Transfer-Encoding: chunked' is supported", "invalid_transfer_encoding");
  }
  if (length > o.max_body_bytes)
    return refuse(413, fmt::format("the request body has {} bytes; the limit is {}", length, o.max_body_bytes),
                  "request_too_large");
  if (length > 0 || chunked) {
    const auto types = all("Content-Type");
    if (types.size() != 1 || !is_json_content_type(types[0]))
      return refuse(415,
                    fmt::format("Content-Type must be application/json (got '{}')",
                                types.empty() ? std::string("none") : types[0].substr(0, 100)),
                    "unsupported_media_type");
    reserved_body_bytes = chunked ? o.max_body_bytes : size_t(length);
  }
  return {};
}

GuardedHttpServer::GuardedHttpServer(GuardOptions o) : opt_(std::move(o)) {
  // Refusals get workers too (they are quick), so the pool may exceed the connection cap.
  new_task_queue = [n = size_t(opt_.max_connections)] { return new ElasticPool(n + 64, 8); };
  set_payload_max_length(opt_.max_body_bytes);
  set_keep_alive_max_count(size_t(opt_.keep_alive_max));
  set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    auto r = take_refusal();
    if (!r) return HandlerResponse::Unhandled;
    res.status = r->status;
    if (r->retry_after > 0) res.set_header("Retry-After", std::to_string(r->retry_after));
    res.set_content(error_json(*r, req.path), "application/json");
    return HandlerResponse::Handled;
  });
}

GuardedHttpServer::~GuardedHttpServer() = default;

bool GuardedHttpServer::acquire_body_budget(size_t bytes, double timeout_s) {
  std::unique_lock<std::mutex> lk(budget_mu_);
  // A body alone may exceed the budget (it is within max_body_bytes); beside others it waits its turn.
  const bool ok = budget_cv_.wait_for(lk, std::chrono::milliseconds(int64_t(timeout_s * 1000)), [&] {
    return body_bytes_in_flight_ == 0 || body_bytes_in_flight_ + bytes <= opt_.body_budget_bytes;
  });
  if (ok) body_bytes_in_flight_ += bytes;
  return ok;
}

void GuardedHttpServer::release_body_budget(size_t bytes) {
  {
    std::lock_guard<std::mutex> lk(budget_mu_);
    body_bytes_in_flight_ -= bytes;
  }
  budget_cv_.notify_all();
}

void GuardedHttpServer::widen_backlog(int backlog) {
  if (svr_sock_ != INVALID_SOCKET) ::listen(svr_sock_, backlog);
}

std::optional<HeadCheck> GuardedHttpServer::take_refusal() {
  if (!t_request || !t_request->refusal) return std::nullopt;
  auto r = std::move(t_request->refusal);
  t_request->refusal.reset();
  return r;
}

GuardedHttpServer::Stats GuardedHttpServer::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return {open_, refused_busy_.load(), refused_client_.load(), timed_out_.load()};
}

bool GuardedHttpServer::admit(const std::string& peer, HeadCheck& refusal) {
  std::lock_guard<std::mutex> lk(mu_);
  if (open_ >= opt_.max_connections) {
    refusal = refuse(503, fmt::format("the server is serving {} connections, its limit; retry shortly", open_),
                     "too_many_connections", 1);
    ++refused_busy_;
    return false;
  }
  int& mine = per_client_[peer];
  if (mine >= opt_.max_connections_per_client) {
    refusal = refuse(429, fmt::format("this client has {} connections open, the limit per client; retry shortly", mine),
                     "too_many_connections", 1);
    ++refused_client_;
    if (mine == 0) per_client_.erase(peer);
    return false;
  }
  ++mine;
  ++open_;
  return true;
}

void GuardedHttpServer::release(const std::string& peer) {
  std::lock_guard<std::mutex> lk(mu_);
  --open_;
  if (auto it = per_client_.find(peer); it != per_client_.end() && --it->second <= 0) per_client_.erase(it);
}

bool GuardedHttpServer::process_and_close_socket(socket_t sock) {
  const std::string peer = peer_address(sock);
  HeadCheck refusal;
  if (!admit(peer, refusal)) {
    refuse_connection(sock, refusal);
    ::close(sock);
    return true;
  }
  DeadlineStream strm(sock, opt_);
  RequestState state;
  t_request = &state;
  bool ok = true;
  for (int left = opt_.keep_alive_max; left > 0 && svr_sock_ != INVALID_SOCKET; --left) {
    if (!strm.wait_request(opt_.idle_timeout_s)) break;
    strm.begin_headers();
    state = RequestState{};
    bool closed = false;
    ok = process_request(strm, left == 1, closed, [&](httplib::Request& req) {
      size_t reserve = 0;
      HeadCheck c = check_request_head(req.method, req.headers, opt_, reserve);
      if (c.status == 0 && reserve > 0) {
        // Back-pressure: the body is not read until the budget has room for it (the client's TCP window fills
        // meanwhile); only a wait past the body deadline is refused.
        if (acquire_body_budget(reserve, opt_.budget_wait_s)) state.reserved = reserve;
        else c = refuse(503, "the server is receiving too many large requests at once; retry shortly", "server_busy", 1);
      }
      if (c.status != 0) {
        state.refusal = std::move(c);
        state.close = true;  // the unread body must not be parsed as the next request
        req.headers.erase("Connection");
        req.headers.emplace("Connection", "close");
      }
      strm.begin_body();
    });
    if (state.reserved) release_body_budget(state.reserved);
    state.reserved = 0;
    if (state.close) {  // refused before its body: let the client finish sending so it reads the answer
      ::shutdown(sock, SHUT_WR);
      drain(sock);
    }
    if (strm.timed_out()) {
      ++timed_out_;
      break;
    }
    if (!ok || closed || state.close) break;
  }
  t_request = nullptr;
  release(peer);
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ok;
}

}  // namespace baleine::server
