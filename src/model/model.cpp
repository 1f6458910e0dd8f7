#include "model/model.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"

namespace whale {

int64_t Model::check_batch(std::span<const SeqBatch> seqs) const {
  if (seqs.empty()) fail("empty batch");
  const KvWidths w = kv_widths(config());
  int64_t total = 0;
  for (const SeqBatch& s : seqs) {
    const auto& tokens = s.tokens;
    const auto& positions = s.positions;
    if (tokens.empty()) fail("empty sequence in a batch");
    if (tokens.size() != positions.size()) fail("{} tokens but {} positions", tokens.size(), positions.size());
    if (s.kv.k_width != w.k || s.kv.v_width != w.v || s.kv.block_tokens <= 0)
      fail("KV cache rows of {}+{} floats do not fit this model ({}+{})", s.kv.k_width, s.kv.v_width, w.k, w.v);
    const int64_t cap = s.kv.capacity();
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] < 0 || tokens[i] >= config().n_vocab)
        fail("token id {} is outside the vocabulary (0..{})", tokens[i], config().n_vocab - 1);
      if (positions[i] < 0 || positions[i] >= cap)
        fail("position {} does not fit the context of {} tokens", positions[i], cap);
    }
    total += int64_t(tokens.size());
  }
  return total;
}

void Model::flatten(std::span<const SeqBatch> seqs, FlatBatch& fb) {
  fb.pos.clear();
  fb.seq.clear();
  fb.offset.assign(1, 0);
  fb.max_pos = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    for (int32_t p : seqs[i].positions) {
      fb.pos.push_back(p);
      fb.seq.push_back(int32_t(i));
      fb.max_pos = std::max<int64_t>(fb.max_pos, p);
    }
    fb.offset.push_back(int64_t(fb.pos.size()));
  }
}

void Model::batch_logits(std::span<const SeqBatch> seqs, const FlatBatch& fb, const float* x,
                         const std::vector<float>& norm_w, const Matrix& output,
                         std::vector<float>& xn_buf, std::vector<float>& tmp) const {
  const ModelConfig& c = config();
  const int64_t D = c.n_embd, V = c.n_vocab;
  int64_t rows = 0, with_logits = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (!seqs[i].logits) continue;
    ++with_logits;
    rows += seqs[i].all_logits ? fb.offset[i + 1] - fb.offset[i] : 1;
  }
  if (rows == 0) return;
  if (xn_buf.size() < size_t(rows * D)) xn_buf.resize(size_t(rows * D));
  float* xn = xn_buf.data();
  int64_t r = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (!seqs[i].logits) continue;
    const int64_t first = seqs[i].all_logits ? fb.offset[i] : fb.offset[i + 1] - 1;
    for (int64_t t = first; t < fb.offset[i + 1]; ++t, ++r)
      rmsnorm(x + t * D, norm_w.data(), xn + r * D, D, float(c.rms_eps));
  }
  // One sequence asking: write in place; several: one product, then hand each its rows.
  if (with_logits == 1) {
    for (const SeqBatch& s : seqs)
      if (s.logits) matmul(output, xn, rows, D, s.logits, V);
    return;
  }
  if (tmp.size() < size_t(rows * V)) tmp.resize(size_t(rows * V));
  matmul(output, xn, rows, D, tmp.data(), V);
  r = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (!seqs[i].logits) continue;
    const int64_t n = seqs[i].all_logits ? fb.offset[i + 1] - fb.offset[i] : 1;
    std::copy(tmp.data() + r * V, tmp.data() + (r + n) * V, seqs[i].logits);
    r += n;
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
