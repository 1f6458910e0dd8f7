#include "model/kv_cache.h"

#include "core/error.h"

namespace whale {

KvCache::KvCache(const ModelConfig& cfg, int64_t n_ctx) : n_ctx_(n_ctx), n_layer_(cfg.n_layer) {
  if (n_ctx <= 0) fail("context size must be positive, got {}", n_ctx);
  if (cfg.arch == Arch::Deepseek2) {
    k_width_ = cfg.kv_lora_rank + cfg.qk_rope_dim;
    v_width_ = 0;
  } else {
    k_width_ = v_width_ = cfg.n_head_kv * cfg.head_dim;
  }
  const uint64_t bytes = uint64_t(n_ctx) * bytes_per_token();
  if (bytes > (uint64_t(1) << 38))
    fail("KV cache of {} tokens needs {:.1f} GiB: use a smaller -c", n_ctx, bytes / 1073741824.0);
  k_.assign(size_t(n_layer_ * n_ctx * k_width_), 0.0f);
  v_.assign(size_t(n_layer_ * n_ctx * v_width_), 0.0f);
}

}  // namespace whale
