// One completion on a Session: prefill the prompt (reusing the cached prefix), then sample
// token by token until a stop token, max_tokens, a full context or cancellation, streaming
// the decoded text (whole UTF-8 characters only) to a callback.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "runtime/sampler.h"
#include "runtime/session.h"
#include "text/tokenizer.h"

namespace whale {

struct GenerateOptions {
  int64_t max_tokens = 512;
  SamplerParams sampling;
  std::vector<int32_t> stop_tokens;          // end of turn (not emitted as text)
  const std::atomic<bool>* cancel = nullptr;  // set from another thread / a signal handler
};

struct GenerateResult {
  int64_t prompt_tokens = 0, prompt_computed = 0, generated = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  std::string finish_reason;  // "stop", "length", "cancelled"
};

GenerateResult generate(Session& session, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                        const GenerateOptions& opts,
                        const std::function<void(const std::string&)>& on_text);

}  // namespace whale
