// cpp-httplib's Server with connection handling that abusive clients cannot stall:
//  * a whole request (request line, headers, body) must arrive within `request_timeout`
//    of its first byte, however slowly it trickles in (slow-loris); a late one gets a 408
//    OpenAI-style JSON error and the connection is closed;
//  * a request may not exceed `request_max_bytes` before its handler takes over (httplib does
//    not bound the number of header lines, nor a line without an end) → 431 and close;
//  * idle keep-alive connections close after `keep_alive_timeout`, or at once on stop();
//  * a handler can ask for the connection to close after its response (e.g. when it did not
//    read a rejected body).
// httplib's own loop only bounds each recv(), so we replace its per-connection loop
// (process_and_close_socket is virtual for exactly this kind of override, as its SSL server does).
#pragma once

#include <httplib.h>

#include <chrono>
#include <functional>
#include <string>

namespace whale::server {

struct ConnectionLimits {
  std::chrono::milliseconds request_timeout{30000};   // first byte → last byte of a request
  std::chrono::milliseconds io_timeout{30000};        // longest single read/write stall
  std::chrono::milliseconds keep_alive_timeout{5000}; // idle time between requests
  size_t keep_alive_max = 100;                         // requests per connection
  size_t request_max_bytes = (8u << 20) + (64u << 10); // request line + headers (+ body, when
                                                       // the library reads it before a handler)
};

class GuardedServer : public httplib::Server {
 public:
  explicit GuardedServer(const ConnectionLimits& limits) : limits_(limits) {}

  // Told about requests the guard answers itself (408, 431), which never reach the logger.
  std::function<void(int status, const std::string& remote_addr)> on_rejected;

  // After bind: lets `n` connections wait for accept(). The library listens with a backlog of
  // 5, so a burst of clients connecting at once (a load test's start) lost SYNs and waited for
  // the kernel's 1 s retransmit. Linux takes a second listen() as a new backlog.
  void set_listen_backlog(int n);

  // Called by handlers on their own thread.
  static void request_read_done();        // the request is in: lift the request deadline
  static void close_after_response(httplib::Response& res);  // says so in the response too
  static bool client_connected();         // false once the peer has closed or reset

 private:
  bool process_and_close_socket(socket_t sock) override;
  bool wait_idle(int sock) const;
  ConnectionLimits limits_;
};

}  // namespace whale::server
