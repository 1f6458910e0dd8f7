#include "runtime/kv_pool.h"

#include <algorithm>

#include "core/error.h"

namespace whale {

KvPagePool::KvPagePool(const ModelConfig& cfg, int64_t n_pages, int64_t page_tokens, KvType type)
    : n_pages_(n_pages), page_tokens_(page_tokens), n_layer_(cfg.n_layer), widths_(kv_widths(cfg)), type_(type) {
  if (n_pages <= 0 || page_tokens <= 0) fail("KV pool needs pages, got {} of {} tokens", n_pages, page_tokens);
  if (type != DType::F32 && type != DType::F16) fail("KV cache type must be f32 or f16, got {}", dtype_name(type));
  // Whole floats per page, so every page (and its K and V parts) stays 4-byte aligned.
  page_bytes_ = (n_layer_ * page_tokens_ * (widths_.k + widths_.v) * kv_elem_bytes(type) + 3) / 4 * 4;
  const double bytes = double(n_pages) * double(page_bytes_);
  if (bytes > double(uint64_t(1) << 38))
    fail("KV pool of {} tokens needs {:.1f} GiB: lower the KV budget", n_pages * page_tokens, bytes / 1073741824.0);
  // Not zeroed: every row is written before it is read, and untouched pages cost no memory.
  data_ = std::make_unique_for_overwrite<float[]>(size_t(n_pages) * size_t(page_bytes_ / 4));
  refs_.assign(size_t(n_pages), 0);
  entries_.resize(size_t(n_pages));
  free_.reserve(size_t(n_pages));
  for (int64_t p = n_pages - 1; p >= 0; --p) free_.push_back(int32_t(p));  // hand out 0, 1, ...
}

KvBlocks KvPagePool::blocks(std::span<void* const> k, std::span<void* const> v) const {
  return KvBlocks{.block_tokens = page_tokens_, .k_width = widths_.k, .v_width = widths_.v,
                  .k_layer_stride = page_tokens_ * widths_.k, .v_layer_stride = page_tokens_ * widths_.v,
                  .k_base = k, .v_base = widths_.v > 0 ? v : std::span<void* const>(), .type = type_};
}

int32_t KvPagePool::allocate() {
  int32_t page;
  if (!free_.empty()) {
    page = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    page = lru_.front();
    lru_.pop_front();
    unregister(page);
  } else {
    return -1;
  }
  refs_[size_t(page)] = 1;
  ++n_used_;
  return page;
}

void KvPagePool::retain(int32_t page) {
  WHALE_ASSERT(page >= 0 && page < n_pages_);
  Entry& e = entries_[size_t(page)];
  if (refs_[size_t(page)]++ == 0) {
    WHALE_ASSERT(e.registered);  // an idle page is only reachable through the prefix cache
    lru_.erase(e.lru_pos);
    ++n_used_;
  }
}

void KvPagePool::release(int32_t page) {
  WHALE_ASSERT(page >= 0 && page < n_pages_ && refs_[size_t(page)] > 0);
  if (--refs_[size_t(page)] > 0) return;
  --n_used_;
  Entry& e = entries_[size_t(page)];
  if (e.registered) e.lru_pos = lru_.insert(lru_.end(), page);
  else free_.push_back(page);
}

uint64_t KvPagePool::hash_page(uint64_t parent, std::span<const int32_t> tokens) {
  // splitmix64 finaliser over (running hash ^ token): every token changes every bit.
  uint64_t h = parent;
  for (int32_t t : tokens) {
    h ^= uint64_t(uint32_t(t)) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
  }
  return h;
}

int32_t KvPagePool::lookup(uint64_t key, std::span<const int32_t> tokens) const {
  auto it = by_hash_.find(key);
  if (it == by_hash_.end()) return -1;
  const Entry& e = entries_[size_t(it->second)];
  if (!std::equal(e.tokens.begin(), e.tokens.end(), tokens.begin(), tokens.end())) return -1;
  return it->second;
}

void KvPagePool::register_page(int32_t page, uint64_t key, std::span<const int32_t> tokens) {
  WHALE_ASSERT(page >= 0 && page < n_pages_ && refs_[size_t(page)] > 0);
  WHALE_ASSERT(int64_t(tokens.size()) == page_tokens_);
  Entry& e = entries_[size_t(page)];
  if (e.registered || by_hash_.count(key)) return;
  e.registered = true;
  e.key = key;
  e.tokens.assign(tokens.begin(), tokens.end());
  by_hash_.emplace(key, page);
}

void KvPagePool::unregister(int32_t page) {
  Entry& e = entries_[size_t(page)];
  if (!e.registered) return;
  by_hash_.erase(e.key);
  e.registered = false;
  e.tokens.clear();
}

}  // namespace whale
