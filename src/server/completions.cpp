#include "server/completions.h"

#include <fmt/format.h>

#include <chrono>
#include <random>

#include "core/error.h"
#include "server/generation_job.h"
#include "server/guarded_server.h"
#include "server/openai_protocol.h"
#include "server/openai_responses.h"
#include "server/sse.h"
#include "text/reasoning.h"

namespace whale::server {

namespace {

constexpr auto kPoll = std::chrono::milliseconds(50);  // how often a stream checks its client

GenRequest make_request(std::vector<int32_t> prompt, const CompletionOptions& o, int64_t n_ctx,
                        const std::vector<int32_t>& stop_tokens, const char* prompt_param) {
  if (int64_t(prompt.size()) + 1 > n_ctx)
    throw ApiError(400, fmt::format("This model's maximum context length is {} tokens. However, your "
                                    "request has {} prompt tokens and needs room for at least one more.",
                                    n_ctx, prompt.size()),
                   prompt_param, "context_length_exceeded");
  GenRequest g;
  const int64_t room = n_ctx - int64_t(prompt.size());
  g.max_tokens = o.max_tokens ? std::min(*o.max_tokens, room) : room;
  g.prompt = std::move(prompt);
  g.sampling.temperature = o.temperature;
  g.sampling.top_p = o.top_p;
  g.sampling.top_k = o.top_k;
  g.sampling.seed = o.seed ? *o.seed : std::random_device{}() * 0x9E3779B97F4A7C15ull + std::random_device{}();
  g.stop_tokens = stop_tokens;
  return g;
}

std::string summary(const JobUsage& u, const std::string& finish) {
  return fmt::format("prompt={} cached={} completion={} finish={}", u.prompt_tokens, u.cached_tokens,
                     u.completion_tokens, finish);
}

// Drives a job to its end for a non-streaming answer; a client that hangs up cancels it.
void run_to_end(GenerationJob& job, std::string& reasoning, std::string& content) {
  // (A client that half-closes its side after the request counts as gone, as in httplib.)
  auto next_check = std::chrono::steady_clock::now();
  while (!job.done()) {
    TextDelta d = job.next(std::chrono::milliseconds(200));
    reasoning += d.reasoning;
    content += d.content;
    if (const auto now = std::chrono::steady_clock::now(); now >= next_check) {
      next_check = now + std::chrono::milliseconds(200);
      if (!GuardedServer::client_connected()) job.cancel();
    }
  }
  if (job.finish_reason() == "error") throw ApiError(500, "generation failed: " + job.error(), "", "generation_error");
}

// State of one SSE response, owned by the chunked content provider.
struct Stream {
  std::unique_ptr<GenerationJob> job;
  ResponseId rid;
  bool chat = true, include_usage = false, started = false;
  std::shared_ptr<std::string> log;
  Metrics* metrics = nullptr;
};

bool send(httplib::DataSink& sink, const std::string& s) { return sink.write(s.data(), s.size()); }

// One call of the provider: sends what the job produced in the last poll interval. Returns
// false to abort (the client is gone); the job's destructor then cancels the generation.
bool pump(Stream& st, httplib::DataSink& sink) {
  const bool usage_null = st.include_usage;
  if (!st.started) {
    st.started = true;
    if (st.chat) return send(sink, sse_data(chat_chunk_role(st.rid, usage_null)));
  }
  TextDelta d = st.job->next(kPoll);
  if (!d.empty()) {
    std::string out;
    if (!st.chat) {
      out = sse_data(text_chunk(st.rid, d.content, nullptr, usage_null));
    } else {
      // Tokens polled together may cross </think>: reasoning and content go in separate
      // chunks, in that order, as clients expect one kind per delta.
      if (!d.reasoning.empty()) out += sse_data(chat_chunk_delta(st.rid, TextDelta{d.reasoning, ""}, usage_null));
      if (!d.content.empty()) out += sse_data(chat_chunk_delta(st.rid, TextDelta{"", d.content}, usage_null));
    }
    if (!send(sink, out)) return false;
  }
  if (!st.job->done()) return d.empty() ? sink.is_writable() : true;

  const JobUsage& u = st.job->usage();
  const std::string& finish = st.job->finish_reason();
  *st.log = summary(u, finish);
  st.metrics->count_tokens(u.prompt_tokens, u.completion_tokens);
  std::string tail;
  if (finish == "error") {
    tail += sse_data(ApiError(500, "generation failed: " + st.job->error(), "", "generation_error").body());
  } else {
    tail += sse_data(st.chat ? chat_chunk_finish(st.rid, finish, usage_null)
                             : text_chunk(st.rid, "", finish.c_str(), usage_null));
    if (st.include_usage) tail += sse_data(st.chat ? chat_chunk_usage(st.rid, u) : text_chunk_usage(st.rid, u));
  }
  tail += sse_done();
  if (!send(sink, tail)) return false;
  sink.done();
  return true;
}

void start_stream(httplib::Response& res, std::unique_ptr<GenerationJob> job, ResponseId rid, bool chat,
                  bool include_usage, std::shared_ptr<std::string> log, Metrics& metrics) {
  auto st = std::make_shared<Stream>();
  st->job = std::move(job);
  st->rid = std::move(rid);
  st->chat = chat;
  st->include_usage = include_usage;
  st->log = std::move(log);
  st->metrics = &metrics;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");  // tell proxies not to buffer the stream
  res.set_chunked_content_provider(
      "text/event-stream", [st](size_t, httplib::DataSink& sink) { return pump(*st, sink); },
      [st](bool success) {
        if (!success) {
          st->job->cancel();
          if (st->log->empty()) *st->log = "stream aborted by the client";
        }
      });
}

}  // namespace

Completions::Completions(Scheduler& sched, const TextAssets& text, Metrics& metrics, CompletionConfig cfg)
    : sched_(sched), text_(text), metrics_(metrics), cfg_(std::move(cfg)) {}

void Completions::chat(const std::string& body, httplib::Response& res, std::shared_ptr<std::string> log) {
  ChatCompletionRequest r = parse_chat_completion_request(body);
  ChatRequest cr;
  cr.messages = std::move(r.messages);
  cr.tools = std::move(r.tools);
  cr.add_generation_prompt = true;
  std::string prompt_text;
  try {
    prompt_text = render_chat(text_, cr, cfg_.chat_template);
  } catch (const whale::Error& e) {
    throw ApiError(400, fmt::format("the chat template cannot render these messages: {}", e.what()), "messages",
                   "invalid_messages");
  }
  std::vector<int32_t> prompt = text_.tokenizer->encode(prompt_text, /*add_special_tokens=*/false);
  GenRequest g = make_request(std::move(prompt), r.opts, cfg_.n_ctx, text_.stop_tokens, "messages");
  JobOptions jo{.stop = r.opts.stop, .split_reasoning = true,
                .starts_in_reasoning = prompt_opens_reasoning(prompt_text)};
  auto job = std::make_unique<GenerationJob>(sched_, *text_.tokenizer, std::move(g), jo);
  ResponseId rid = ResponseId::make("chatcmpl", r.opts.model.empty() ? cfg_.model_name : r.opts.model);
  if (r.opts.stream) return start_stream(res, std::move(job), std::move(rid), true, r.opts.include_usage, log, metrics_);

  std::string reasoning, content;
  run_to_end(*job, reasoning, content);
  *log = summary(job->usage(), job->finish_reason());
  metrics_.count_tokens(job->usage().prompt_tokens, job->usage().completion_tokens);
  res.set_content(chat_completion(rid, reasoning, content, job->finish_reason(), job->usage()).dump(),
                  "application/json");
}

void Completions::text(const std::string& body, httplib::Response& res, std::shared_ptr<std::string> log) {
  TextCompletionRequest r = parse_text_completion_request(body);
  std::vector<int32_t> prompt;
  if (r.has_ids) {
    for (int32_t id : r.prompt_ids)
      if (!text_.tokenizer->is_valid_id(id))
        throw ApiError(400, fmt::format("token id {} is not in the vocabulary", id), "prompt", "invalid_value");
    prompt = std::move(r.prompt_ids);
  } else {
    prompt = text_.tokenizer->encode(r.prompt, /*add_special_tokens=*/true);
  }
  GenRequest g = make_request(std::move(prompt), r.opts, cfg_.n_ctx, text_.stop_tokens, "prompt");
  JobOptions jo{.stop = r.opts.stop, .split_reasoning = false, .starts_in_reasoning = false};
  auto job = std::make_unique<GenerationJob>(sched_, *text_.tokenizer, std::move(g), jo);
  ResponseId rid = ResponseId::make("cmpl", r.opts.model.empty() ? cfg_.model_name : r.opts.model);
  if (r.opts.stream) return start_stream(res, std::move(job), std::move(rid), false, r.opts.include_usage, log, metrics_);

  std::string reasoning, content;
  run_to_end(*job, reasoning, content);
  *log = summary(job->usage(), job->finish_reason());
  metrics_.count_tokens(job->usage().prompt_tokens, job->usage().completion_tokens);
  res.set_content(text_completion(rid, content, job->finish_reason(), job->usage()).dump(), "application/json");
}

}  // namespace whale::server
