#include "model/kv_cache.h"

#include <algorithm>

#include "core/error.h"

namespace whale {

KvWidths kv_widths(const ModelConfig& cfg) {
  if (cfg.arch == Arch::Deepseek2) return {cfg.kv_lora_rank + cfg.qk_rope_dim, 0};
  return {cfg.n_head_kv * cfg.head_dim, cfg.n_head_kv * cfg.head_dim};
}

KvType parse_kv_type(const std::string& name) {
  if (name == "f32") return DType::F32;
  if (name == "f16") return DType::F16;
  fail("KV cache type must be f32 or f16, got '{}'", name);
}

void KvBlocks::store(void* row, const float* src, int64_t n) const {
  if (type == DType::F16) {
    // Saturate at the largest finite f16 (65504): an infinite cached element would turn every
    // score that reads it into inf or NaN, a clamped one only into a large value.
    uint16_t* d = static_cast<uint16_t*>(row);
    for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(std::clamp(src[i], -65504.0f, 65504.0f));
  } else {
    std::copy(src, src + n, static_cast<float*>(row));
  }
}

void KvBlocks::load(const void* row, float* dst, int64_t n) const {
  if (type == DType::F16) {
    const uint16_t* s = static_cast<const uint16_t*>(row);
    for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
  } else {
    const float* s = static_cast<const float*>(row);
    std::copy(s, s + n, dst);
  }
}

KvCache::KvCache(const ModelConfig& cfg, int64_t n_ctx, KvType type)
    : n_ctx_(n_ctx), n_layer_(cfg.n_layer), type_(type) {
  if (n_ctx <= 0) fail("context size must be positive, got {}", n_ctx);
  if (type != DType::F32 && type != DType::F16) fail("KV cache type must be f32 or f16, got {}", dtype_name(type));
  const KvWidths w = kv_widths(cfg);
  k_width_ = w.k;
  v_width_ = w.v;
  const uint64_t bytes = uint64_t(n_ctx) * bytes_per_token();
  if (bytes > (uint64_t(1) << 38))
    fail("KV cache of {} tokens needs {:.1f} GiB: use a smaller -c", n_ctx, bytes / 1073741824.0);
  const int64_t per_float = 4 / kv_elem_bytes(type);  // elements per float of storage
  k_.assign(size_t((n_layer_ * n_ctx * k_width_ + per_float - 1) / per_float), 0.0f);
  v_.assign(size_t((n_layer_ * n_ctx * v_width_ + per_float - 1) / per_float), 0.0f);
  k_ptr_[0] = k_.data();
  v_ptr_[0] = v_.data();
}

KvBlocks KvCache::blocks() const {
  return KvBlocks{.block_tokens = n_ctx_, .k_width = k_width_, .v_width = v_width_,
                  .k_layer_stride = n_ctx_ * k_width_, .v_layer_stride = n_ctx_ * v_width_,
                  .k_base = std::span<void* const>(k_ptr_, 1),
                  .v_base = v_width_ > 0 ? std::span<void* const>(v_ptr_, 1) : std::span<void* const>(),
                  .type = type_};
}

}  // namespace whale
