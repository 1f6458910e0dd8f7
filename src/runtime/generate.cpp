#include "runtime/generate.h"

#include <algorithm>
#include <chrono>

namespace whale {

GenerateResult generate(Session& session, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                        const GenerateOptions& opts,
                        const std::function<void(const std::string&)>& on_text) {
  using clock = std::chrono::steady_clock;
  GenerateResult r;
  r.prompt_tokens = int64_t(prompt.size());
  auto t0 = clock::now();
  const float* logits = session.prefill(prompt);
  r.prompt_computed = session.last_prefill_computed();
  auto t1 = clock::now();
  r.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();

  Sampler sampler(opts.sampling);
  StreamDecoder dec(tok, /*skip_special_tokens=*/false);
  r.finish_reason = "length";
  for (int64_t i = 0; i < opts.max_tokens; ++i) {
    if (opts.cancel && opts.cancel->load()) {
      r.finish_reason = "cancelled";
      break;
    }
    const int32_t t = sampler.sample(logits, session.n_vocab());
    if (std::find(opts.stop_tokens.begin(), opts.stop_tokens.end(), t) != opts.stop_tokens.end()) {
      r.finish_reason = "stop";
      break;
    }
    ++r.generated;
    if (std::string s = dec.push(t); !s.empty()) on_text(s);
    if (int64_t(session.tokens().size()) >= session.n_ctx()) break;  // context full: "length"
    logits = session.decode(t);
  }
  if (std::string s = dec.flush(); !s.empty()) on_text(s);
  r.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return r;
}

}  // namespace whale
