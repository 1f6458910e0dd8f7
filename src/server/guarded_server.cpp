#include "server/guarded_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "server/openai_protocol.h"

namespace whale::server {

namespace {

using Clock = std::chrono::steady_clock;

bool wait_fd(int fd, short events, std::chrono::milliseconds timeout) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int r = ::poll(&p, 1, int(std::max<int64_t>(0, timeout.count())));
    if (r < 0 && errno == EINTR) continue;
    return r > 0 && (p.revents & (events | POLLHUP | POLLERR));
  }
}

bool peer_alive(int fd) {
  if (!wait_fd(fd, POLLIN, std::chrono::milliseconds(0))) return true;  // nothing pending
  char c;
  return ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;  // 0: orderly close; <0: reset
}

void address_of(int fd, bool peer, std::string& ip, int& port) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  const int r = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                     : ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (r != 0) return;
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf));
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf));
    port = ntohs(a->sin6_port);
  }
  ip = buf;
}

// A socket stream whose reads fail once the current request's deadline has passed. After a
// read failed that way, writes are refused too: the library would answer "400" for the
// truncated request, and we answer 408 ourselves instead.
class DeadlineStream final : public httplib::Stream {
 public:
  DeadlineStream(int fd, const ConnectionLimits& l) : fd_(fd), limits_(l) {}

  void begin_request() {
    deadline_ = Clock::now() + limits_.request_timeout;
    has_deadline_ = true;
    timed_out_ = false;
    too_large_ = false;
    wrote_ = false;
    request_bytes_ = 0;
  }
  void lift_deadline() { has_deadline_ = false; }
  bool timed_out() const { return timed_out_; }
  bool too_large() const { return too_large_; }
  bool wrote() const { return wrote_; }
  bool buffered() const { return off_ < len_; }

  bool is_readable() const override { return buffered() || wait_fd(fd_, POLLIN, read_wait()); }
  bool is_writable() const override {
    return wait_fd(fd_, POLLOUT, limits_.io_timeout) && peer_alive(fd_);
  }

  ssize_t read(char* ptr, size_t size) override {
    if (!buffered()) {
      if (!wait_fd(fd_, POLLIN, read_wait())) {
        // poll() may wake a little before the deadline (millisecond rounding): a read that
        // failed while the request deadline was running counts as that deadline.
        if (has_deadline_ && read_wait() < limits_.io_timeout) timed_out_ = true;
        return -1;
      }
      ssize_t n;
      do n = ::recv(fd_, buf_, sizeof(buf_), 0);
      while (n < 0 && errno == EINTR);
      if (n <= 0) return n;
      off_ = 0;
      len_ = size_t(n);
    }
    const size_t k = std::min(size, len_ - off_);
    if (has_deadline_ && (request_bytes_ += k) > limits_.request_max_bytes) {
      too_large_ = true;
      return -1;
    }
    std::memcpy(ptr, buf_ + off_, k);
    off_ += k;
    return ssize_t(k);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (timed_out_ || too_large_) return -1;
    size_t done = 0;
    while (done < size) {
      if (!wait_fd(fd_, POLLOUT, limits_.io_timeout)) return -1;
      const ssize_t n = ::send(fd_, ptr + done, size - done, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return -1;
      done += size_t(n);
    }
    wrote_ = true;
    return ssize_t(size);
  }

  // Raw write that ignores the timed-out state (for our own 408).
  void write_raw(const std::string& s) {
    timed_out_ = too_large_ = false;
    write(s.data(), s.size());
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { address_of(fd_, true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address_of(fd_, false, ip, port); }
  socket_t socket() const override { return fd_; }

 private:
  std::chrono::milliseconds read_wait() const {
    auto wait = limits_.io_timeout;
    if (has_deadline_) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline_ - Clock::now());
      wait = std::min(wait, std::max(left, std::chrono::milliseconds(0)));
    }
    return wait;
  }

  int fd_;
  const ConnectionLimits& limits_;
  Clock::time_point deadline_{};
  bool has_deadline_ = false, timed_out_ = false, too_large_ = false, wrote_ = false;
  size_t request_bytes_ = 0;
  char buf_[4096];
  size_t off_ = 0, len_ = 0;
};

// Closing a socket with unread input makes the kernel send a reset, and a client still
// sending (a slow-loris, an over-long body) may then lose our error response before reading
// it. So: end our side, read and discard for a moment, then close.
void lingering_close(int fd) {
  ::shutdown(fd, SHUT_WR);
  const auto until = Clock::now() + std::chrono::milliseconds(500);
  char buf[4096];
  size_t drained = 0;
  while (drained < (1u << 20)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    if (left.count() <= 0 || !wait_fd(fd, POLLIN, left)) break;
    const ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n <= 0) break;
    drained += size_t(n);
  }
  ::close(fd);
}

struct ConnectionState {
  DeadlineStream* stream = nullptr;
  bool close = false;
};
thread_local ConnectionState t_conn;

}  // namespace

void GuardedServer::request_read_done() {
  if (t_conn.stream) t_conn.stream->lift_deadline();
}

void GuardedServer::close_after_response(httplib::Response& res) {
  t_conn.close = true;
  res.set_header("Connection", "close");
}

bool GuardedServer::client_connected() { return !t_conn.stream || peer_alive(t_conn.stream->socket()); }

namespace {
void write_error(DeadlineStream& strm, int status, const char* reason, const ApiError& e) {
  const std::string body = e.body().dump();
  strm.write_raw(fmt::format("HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nConnection: close\r\n"
                             "Content-Length: {}\r\n\r\n{}", status, reason, body.size(), body));
}
}  // namespace

// Waits for the next request on a kept-alive connection, in short slices so stop() does not
// wait for idle clients.
bool GuardedServer::wait_idle(int sock) const {
  const auto until = Clock::now() + limits_.keep_alive_timeout;
  while (svr_sock_ != INVALID_SOCKET) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now());
    if (left.count() <= 0) return false;
    if (wait_fd(sock, POLLIN, std::min(left, std::chrono::milliseconds(100)))) return true;
  }
  return false;
}

void GuardedServer::set_listen_backlog(int n) {
  if (svr_sock_ != INVALID_SOCKET) ::listen(svr_sock_, n);
}

bool GuardedServer::process_and_close_socket(socket_t sock) {
  // Streamed tokens are small writes (an SSE event, split further by chunked encoding): with
  // Nagle's algorithm each one after the first waits for the client's (delayed) ACK, up to 40 ms.
  const int one = 1;
  setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  DeadlineStream strm(sock, limits_);
  bool ok = true;
  for (size_t n = 0; n < limits_.keep_alive_max && svr_sock_ != INVALID_SOCKET; ++n) {
    if (!strm.buffered() && !wait_idle(sock)) break;
    strm.begin_request();
    t_conn = ConnectionState{&strm, false};
    bool closed = false;
    ok = process_request(strm, n + 1 == limits_.keep_alive_max, closed, nullptr);
    const bool close = t_conn.close;
    t_conn = ConnectionState{};
    const int rejected = strm.wrote() ? 0 : strm.timed_out() ? 408 : strm.too_large() ? 431 : 0;
    if (rejected && on_rejected) {
      std::string ip;
      int port = 0;
      strm.get_remote_ip_and_port(ip, port);
      on_rejected(rejected, ip);
    }
    if (strm.timed_out() && !strm.wrote()) {
      write_error(strm, 408, "Request Timeout",
                  ApiError(408, "the request did not arrive in time (--timeout)", "", "request_timeout"));
      break;
    }
    if (strm.too_large() && !strm.wrote()) {
      write_error(strm, 431, "Request Header Fields Too Large",
                  ApiError(431, fmt::format("the request head exceeds {} bytes", limits_.request_max_bytes), "",
                           "request_too_large"));
      break;
    }
    if (!ok || closed || close) break;
  }
  lingering_close(sock);
  return ok;
}

}  // namespace whale::server
