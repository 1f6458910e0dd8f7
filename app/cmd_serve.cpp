// whale serve -m PATH: an OpenAI-compatible HTTP server (chat and text completions, streaming,
// R1 reasoning as reasoning_content), a chat page at /, /health and Prometheus /metrics.
// Requests are decoded together by the continuous-batching Scheduler.
#include <fmt/format.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <thread>

#include "cache_type.h"
#include "commands.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "file_io.h"
#include "runtime/scheduler.h"
#include "server/http_server.h"

namespace whale::app {

namespace {

struct ServeArgs {
  std::string model, template_file, alias;
  server::ServerOptions http;
  SchedulerOptions sched;
  int threads = 0;
  std::string cache_type;
};

void run_serve(ServeArgs a) {
  if (a.threads > 0) ThreadPool::set_default_threads(a.threads);
  // SIGINT/SIGTERM are taken by one thread with sigwait (set before any thread starts, so
  // every thread inherits the mask) and turned into a clean stop.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  a.sched.kv_type = cache_type_or(a.cache_type, DType::F16);
  auto model = load_model(a.model);
  TextAssets text = load_text_assets(a.model);
  a.http.chat_template = read_file_if_given(a.template_file);
  if (a.http.chat_template.empty()) a.http.chat_template = text.chat_template;
  if (a.http.chat_template.empty())
    fail("{}: the model has no chat template (pass --template FILE.jinja)", a.model);
  if (a.http.max_body_bytes == 0) fail("--max-body must be positive");
  if (a.http.timeout_s <= 0) fail("--timeout must be positive, got {}", a.http.timeout_s);
  a.sched.n_ctx = a.http.n_ctx;
  a.http.model_name = a.alias.empty() ? std::filesystem::path(a.model).filename().string() : a.alias;

  Scheduler sched(*model, a.sched);
  server::HttpServer srv(sched, text, a.http);
  const int port = srv.bind();
  std::atomic<bool> stopping{false};
  std::thread stopper([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (stopping.exchange(true)) return;  // woken by run() returning on its own
    fmt::print(stderr, "whale serve: signal {}, stopping\n", sig);
    srv.stop();
  });
  fmt::print(stderr, "whale serve: {} ({}) on http://{}:{} (ctx {}, parallel {}, batch {}{})\n", a.model,
             arch_name(model->config().arch), a.http.host, port, a.http.n_ctx, a.sched.parallel, a.sched.batch_tokens,
             a.http.api_key.empty() ? "" : ", API key required");
  srv.run();
  // run() also returns if the listener fails; wake the stopper so it can be joined.
  if (!stopping.exchange(true)) pthread_kill(stopper.native_handle(), SIGTERM);
  stopper.join();
}

}  // namespace

void register_serve(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server with a chat page at /");
  cmd->add_option("-m,--model", a->model, "GGUF file or Hugging Face folder")->required();
  cmd->add_option("--template,--chat-template-file", a->template_file, "chat template file instead of the model's");
  cmd->add_option("--alias", a->alias, "model name reported by /v1/models (default: the file name)");
  cmd->add_option("--host", a->http.host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", a->http.port, "port to listen on (0: any free port)")->capture_default_str();
  cmd->add_option("-c,--ctx-size", a->http.n_ctx, "context size per request (prompt + answer)")->capture_default_str();
  cmd->add_option("--parallel", a->sched.parallel, "requests decoded together")->capture_default_str();
  cmd->add_option("--queue", a->sched.queue_max, "requests waiting beyond --parallel before 503")->capture_default_str();
  cmd->add_option("-b,--batch-size", a->sched.batch_tokens,
                  "most tokens one step computes over all requests (decodes first, then prompt chunks)")
      ->capture_default_str();
  cmd->add_option("--kv-tokens", a->sched.kv_tokens, "paged KV-cache budget in tokens (0: parallel * ctx)");
  cmd->add_option("--api-key", a->http.api_key, "require 'Authorization: Bearer KEY'");
  cmd->add_option("--timeout", a->http.timeout_s, "seconds a client may take to send a request; longest I/O stall")
      ->capture_default_str();
  cmd->add_option("--max-body", a->http.max_body_bytes, "largest request body in bytes")->capture_default_str();
  cmd->add_option("--threads-http", a->http.http_threads, "connections served at once")->capture_default_str();
  cmd->add_option("-t,--threads", a->threads, "compute threads (default: all cores)");
  add_cache_type_option(cmd, &a->cache_type);
  cmd->callback([a] { run_serve(*a); });
}

}  // namespace whale::app
