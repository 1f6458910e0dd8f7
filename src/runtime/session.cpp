#include "runtime/session.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace whale {

Session::Session(Model& model, int64_t n_ctx, KvType kv_type)
    : model_(model), kv_(model.config(), n_ctx, kv_type), logits_(size_t(model.config().n_vocab)) {
  tokens_.reserve(size_t(n_ctx));  // decode appends without reallocating (no allocation per token)
}

const float* Session::prefill(const std::vector<int32_t>& prompt) {
  if (prompt.empty()) fail("the prompt is empty");
  if (int64_t(prompt.size()) > kv_.n_ctx())
    fail("the prompt has {} tokens, more than the context of {} (raise -c)", prompt.size(), kv_.n_ctx());
  size_t keep = 0;
  while (keep < tokens_.size() && keep < prompt.size() && tokens_[keep] == prompt[keep]) ++keep;
  keep = std::min(keep, prompt.size() - 1);  // recompute at least the last token for its logits
  pos_.resize(prompt.size() - keep);
  std::iota(pos_.begin(), pos_.end(), int32_t(keep));
  model_.forward(std::span(prompt.data() + keep, prompt.size() - keep), pos_, kv_, logits_.data(), false);
  tokens_ = prompt;
  last_computed_ = int64_t(prompt.size() - keep);
  return logits_.data();
}

const float* Session::decode(int32_t token) {
  if (int64_t(tokens_.size()) >= kv_.n_ctx()) fail("the context of {} tokens is full", kv_.n_ctx());
  int32_t pos = int32_t(tokens_.size());
  model_.forward(std::span(&token, 1), std::span(&pos, 1), kv_, logits_.data(), false);
  tokens_.push_back(token);
  return logits_.data();
}

}  // namespace whale
