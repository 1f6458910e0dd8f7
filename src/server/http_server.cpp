#include "server/http_server.h"

#include <fmt/format.h>

#include <chrono>
#include <mutex>

#include "core/error.h"
#include "server/completions.h"
#include "server/guarded_server.h"
#include "server/metrics.h"
#include "server/openai_protocol.h"
#include "server/webui.h"

namespace whale::server {

namespace {

using Clock = std::chrono::steady_clock;

// Per-request facts for the log line, on the thread that serves the request.
struct RequestLog {
  Clock::time_point start;
  std::shared_ptr<std::string> detail;
};
thread_local RequestLog t_log;

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status();
  res.set_content(e.body().dump(), "application/json");
}

// Metric label for a path: known routes as is, anything else "other" (bounded cardinality).
std::string endpoint_label(const std::string& path) {
  for (const char* known : {"/", "/health", "/metrics", "/v1/models", "/models", "/v1/chat/completions",
                            "/chat/completions", "/v1/completions", "/completions"})
    if (path == known) return path;
  return "other";
}

}  // namespace

struct HttpServer::Impl {
  Scheduler& sched;
  const TextAssets& text;
  ServerOptions opts;
  Metrics metrics;
  Completions completions;
  GuardedServer http;
  std::mutex log_mu;

  Impl(Scheduler& s, const TextAssets& t, const ServerOptions& o)
      : sched(s), text(t), opts(o),
        completions(s, t, metrics, CompletionConfig{o.n_ctx, o.model_name, o.chat_template}),
        http(ConnectionLimits{.request_timeout = std::chrono::seconds(o.timeout_s),
                              .io_timeout = std::chrono::seconds(o.timeout_s),
                              .request_max_bytes = o.max_body_bytes + (64u << 10)}) {
    setup();
  }

  bool authorized(const httplib::Request& req) const {
    if (opts.api_key.empty()) return true;
    return req.get_header_value("Authorization") == "Bearer " + opts.api_key;
  }

  // POST handlers read the body themselves: auth first (an unauthorized body is never read),
  // then at most max_body_bytes.
  using BodyHandler = void (Completions::*)(const std::string&, httplib::Response&, std::shared_ptr<std::string>);
  void post(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader, BodyHandler h) {
    if (!authorized(req)) {
      GuardedServer::close_after_response(res);  // the body is left unread
      return send_error(res, ApiError(401, "Incorrect or missing API key: send 'Authorization: Bearer <key>'", "",
                                      "invalid_api_key"));
    }
    if (req.is_multipart_form_data()) {
      GuardedServer::close_after_response(res);
      return send_error(res, ApiError(415, "send the request as application/json, not multipart/form-data", "",
                                      "unsupported_media_type"));
    }
    std::string body;
    bool too_big = false;
    const bool ok = reader([&](const char* data, size_t n) {
      if (body.size() + n > opts.max_body_bytes) {
        too_big = true;
        return false;
      }
      body.append(data, n);
      return true;
    });
    if (!ok || too_big || res.status == 413) {
      GuardedServer::close_after_response(res);
      if (too_big || res.status == 413)
        return send_error(res, ApiError(413, fmt::format("the request body exceeds the limit of {} bytes",
                                                         opts.max_body_bytes), "", "request_too_large"));
      return send_error(res, ApiError(400, "the request body could not be read", "", "invalid_body"));
    }
    GuardedServer::request_read_done();
    try {
      (completions.*h)(body, res, t_log.detail);
    } catch (const ApiError& e) {
      send_error(res, e);
    } catch (const whale::Error& e) {
      send_error(res, ApiError(400, e.what(), "", "invalid_request"));
    } catch (const std::bad_alloc&) {
      send_error(res, ApiError(500, "out of memory", "", "out_of_memory"));
    }
  }

  void get(const httplib::Request& req, httplib::Response& res, bool needs_auth,
           const std::function<void(httplib::Response&)>& fill) {
    GuardedServer::request_read_done();
    if (needs_auth && !authorized(req))
      return send_error(res, ApiError(401, "Incorrect or missing API key: send 'Authorization: Bearer <key>'", "",
                                      "invalid_api_key"));
    fill(res);
  }

  void setup() {
    http.set_payload_max_length(opts.max_body_bytes);
    const int threads = std::max(4, opts.http_threads);
    http.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
    http.set_default_headers({{"Access-Control-Allow-Origin", "*"}});

    http.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
      t_log = RequestLog{Clock::now(), std::make_shared<std::string>()};
      return httplib::Server::HandlerResponse::Unhandled;
    });
    // Errors the library answers itself (unknown path, malformed request line, huge URI) get
    // OpenAI's JSON shape too.
    http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      // The library answers these before (or instead of) reading the request in full: what is
      // left on the connection cannot be trusted as the next request.
      GuardedServer::close_after_response(res);
      std::string msg;
      switch (res.status) {
        case 404: msg = fmt::format("no route for {} {}", req.method, req.path); break;
        case 400: msg = "malformed HTTP request"; break;
        case 413: msg = "the request body is too large"; break;
        case 414: msg = "the request URI is too long"; break;
        default: msg = fmt::format("HTTP error {}", res.status);
      }
      send_error(res, ApiError(res.status, msg, "", res.status == 404 ? "not_found" : ""));
      return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "internal error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      send_error(res, ApiError(500, what, "", "internal_error"));
    });
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      metrics.count_request(endpoint_label(req.path), res.status);
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t_log.start).count();
      const std::string detail = t_log.detail ? *t_log.detail : "";
      std::lock_guard lk(log_mu);
      fmt::print(stderr, "whale serve: {} {} {} {} {:.1f} ms{}{}\n", req.remote_addr, req.method, req.path,
                 res.status, ms, detail.empty() ? "" : " ", detail);
    });

    http.on_rejected = [this](int status, const std::string& remote) {
      metrics.count_request("other", status);
      std::lock_guard lk(log_mu);
      fmt::print(stderr, "whale serve: {} - - {} (request {})\n", remote, status,
                 status == 408 ? "too slow" : "head too large");
    };

    auto chat = [this](const httplib::Request& q, httplib::Response& s, const httplib::ContentReader& r) {
      post(q, s, r, &Completions::chat);
    };
    auto completion = [this](const httplib::Request& q, httplib::Response& s, const httplib::ContentReader& r) {
      post(q, s, r, &Completions::text);
    };
    http.Post("/v1/chat/completions", chat);
    http.Post("/chat/completions", chat);
    http.Post("/v1/completions", completion);
    http.Post("/completions", completion);

    auto models = [this](const httplib::Request& q, httplib::Response& s) {
      get(q, s, true, [this](httplib::Response& res) {
        nlohmann::ordered_json m;
        m["id"] = opts.model_name;
        m["object"] = "model";
        m["created"] = 0;
        m["owned_by"] = "whale";
        nlohmann::ordered_json meta;
        meta["n_ctx"] = opts.n_ctx;
        meta["n_vocab"] = text.tokenizer->n_vocab();
        m["meta"] = meta;
        nlohmann::ordered_json list;
        list["object"] = "list";
        list["data"] = nlohmann::ordered_json::array({m});
        res.set_content(list.dump(), "application/json");
      });
    };
    http.Get("/v1/models", models);
    http.Get("/models", models);
    http.Get("/health", [this](const httplib::Request& q, httplib::Response& s) {
      get(q, s, false, [](httplib::Response& res) { res.set_content(R"({"status":"ok"})", "application/json"); });
    });
    http.Get("/metrics", [this](const httplib::Request& q, httplib::Response& s) {
      get(q, s, true, [this](httplib::Response& res) {
        res.set_content(metrics.render(sched.stats()), "text/plain; version=0.0.4");
      });
    });
    http.Get("/", [this](const httplib::Request& q, httplib::Response& s) {
      get(q, s, false, [](httplib::Response& res) {
        res.set_content(std::string(webui_html()), "text/html; charset=utf-8");
      });
    });
    // CORS preflight for browser clients on other origins.
    http.Options(R"(/.*)", [](const httplib::Request&, httplib::Response& res) {
      GuardedServer::request_read_done();
      res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
      res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
      res.status = 204;
    });
  }
};

HttpServer::HttpServer(Scheduler& sched, const TextAssets& text, const ServerOptions& opts)
    : impl_(std::make_unique<Impl>(sched, text, opts)) {}

HttpServer::~HttpServer() = default;

int HttpServer::bind() {
  auto& o = impl_->opts;
  if (o.port == 0) {
    const int port = impl_->http.bind_to_any_port(o.host);
    if (port <= 0) fail("cannot listen on {} (any port)", o.host);
    o.port = port;
  } else if (!impl_->http.bind_to_port(o.host, o.port)) {
    fail("cannot listen on {}:{} (in use, or not a local address)", o.host, o.port);
  }
  impl_->http.set_listen_backlog(512);
  return o.port;
}

void HttpServer::run() { impl_->http.listen_after_bind(); }

void HttpServer::stop() { impl_->http.stop(); }

}  // namespace whale::server
