// The two generation endpoints: request body → prompt tokens (chat template or raw text) →
// GenerationJob → a JSON body or an SSE stream in OpenAI's shapes. Errors are thrown as
// ApiError before anything is sent; once a stream has started, an error becomes a final
// `data: {"error": ...}` event.
#pragma once

#include <httplib.h>

#include <string>

#include "runtime/scheduler.h"
#include "server/metrics.h"
#include "text/chat.h"

namespace whale::server {

struct CompletionConfig {
  int64_t n_ctx = 4096;
  std::string model_name;
  std::string chat_template;  // the template source to render (the model's own unless replaced)
};

class Completions {
 public:
  Completions(Scheduler& sched, const TextAssets& text, Metrics& metrics, CompletionConfig cfg);

  // Fill `res` (a body or a chunked SSE provider). `log` receives a short summary for the
  // request log line (tokens, finish reason); for streams it is written when the stream ends.
  void chat(const std::string& body, httplib::Response& res, std::shared_ptr<std::string> log);
  void text(const std::string& body, httplib::Response& res, std::shared_ptr<std::string> log);

 private:
  Scheduler& sched_;
  const TextAssets& text_;
  Metrics& metrics_;
  CompletionConfig cfg_;
};

}  // namespace whale::server
