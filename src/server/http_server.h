// `whale serve`'s HTTP side: routes (OpenAI endpoints, /health, /metrics, the chat page at /),
// Bearer auth, body-size and time limits, one log line per request. The model work happens in
// the Scheduler; handlers only translate.
#pragma once

#include <memory>
#include <string>

#include "runtime/scheduler.h"
#include "text/chat.h"

namespace whale::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                 // 0: any free port (see HttpServer::port())
  std::string api_key;             // empty: no auth
  int timeout_s = 600;             // a request must arrive within this; longest read/write stall
  size_t max_body_bytes = 8 << 20;
  int http_threads = 64;           // connections served at once
  int64_t n_ctx = 4096;
  std::string model_name;
  std::string chat_template;       // template source ("" → the model's own)
};

class HttpServer {
 public:
  HttpServer(Scheduler& sched, const TextAssets& text, const ServerOptions& opts);
  ~HttpServer();
  // Binds the listening socket (throws whale::Error when it cannot) and returns the port.
  int bind();
  // Serves until stop() is called from another thread.
  void run();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace whale::server
