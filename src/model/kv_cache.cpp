#include "model/kv_cache.h"

#include "core/error.h"

namespace whale {

KvWidths kv_widths(const ModelConfig& cfg) {
  if (cfg.arch == Arch::Deepseek2) return {cfg.kv_lora_rank + cfg.qk_rope_dim, 0};
  return {cfg.n_head_kv * cfg.head_dim, cfg.n_head_kv * cfg.head_dim};
}

KvCache::KvCache(const ModelConfig& cfg, int64_t n_ctx) : n_ctx_(n_ctx), n_layer_(cfg.n_layer) {
  if (n_ctx <= 0) fail("context size must be positive, got {}", n_ctx);
  const KvWidths w = kv_widths(cfg);
  k_width_ = w.k;
  v_width_ = w.v;
  const uint64_t bytes = uint64_t(n_ctx) * bytes_per_token();
  if (bytes > (uint64_t(1) << 38))
    fail("KV cache of {} tokens needs {:.1f} GiB: use a smaller -c", n_ctx, bytes / 1073741824.0);
  k_.assign(size_t(n_layer_ * n_ctx * k_width_), 0.0f);
  v_.assign(size_t(n_layer_ * n_ctx * v_width_), 0.0f);
  k_ptr_[0] = k_.data();
  v_ptr_[0] = v_.data();
}

KvBlocks KvCache::blocks() const {
  return KvBlocks{.block_tokens = n_ctx_, .k_width = k_width_, .v_width = v_width_,
                  .k_layer_stride = n_ctx_ * k_width_, .v_layer_stride = n_ctx_ * v_width_,
                  .k_base = std::span<float* const>(k_ptr_, 1),
                  .v_base = v_width_ > 0 ? std::span<float* const>(v_ptr_, 1) : std::span<float* const>()};
}

}  // namespace whale
