#include "model/model.h"

#include "core/error.h"

namespace whale {

void Model::check_batch(std::span<const int32_t> tokens, std::span<const int32_t> positions,
                        const KvCache& kv) const {
  if (tokens.empty()) fail("empty batch");
  if (tokens.size() != positions.size()) fail("{} tokens but {} positions", tokens.size(), positions.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= config().n_vocab)
      fail("token id {} is outside the vocabulary (0..{})", tokens[i], config().n_vocab - 1);
    if (positions[i] < 0 || positions[i] >= kv.n_ctx())
      fail("position {} does not fit the context of {} tokens", positions[i], kv.n_ctx());
  }
}

std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& opts) {
  auto files = ModelFiles::open(path);
  switch (files->config().arch) {
    case Arch::Deepseek2: return make_deepseek2(std::move(files), opts);
    case Arch::Qwen2:
    case Arch::Llama: return make_dense(std::move(files), opts);
  }
  fail("{}: unsupported architecture", path);
}

}  // namespace whale
