// Paged KV storage shared by the requests of a Scheduler, with a prefix cache.
//
// The pool holds n_pages pages; a page holds page_tokens consecutive positions of one sequence
// for every layer, laid out [K: L × P × k_width][V: L × P × v_width] (deepseek2: the MLA latent
// [c_kv ; k_rope] in K, no V), so each layer's rows of a page are one contiguous block.
// Pages are refcounted: a sequence's page table holds one reference per page.
//
// Prefix cache (vLLM-style): a full page can be registered under the hash of its tokens chained
// with the hash of everything before it, so a later sequence starting with the same tokens
// (system prompt, conversation history) finds the page and shares it instead of recomputing.
// Registered pages that nobody references stay cached and are evicted least-recently-used when
// a free page is needed. Not thread-safe: the Scheduler serialises access.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "model/config.h"
#include "model/kv_cache.h"

namespace whale {

class KvPagePool {
 public:
  KvPagePool(const ModelConfig& cfg, int64_t n_pages, int64_t page_tokens, KvType type = DType::F32);

  int64_t page_tokens() const { return page_tokens_; }
  int64_t n_pages() const { return n_pages_; }
  int64_t n_used() const { return n_used_; }                      // referenced pages
  int64_t n_cached() const { return int64_t(by_hash_.size()); }   // registered pages
  int64_t n_allocatable() const { return int64_t(free_.size() + lru_.size()); }
  bool is_cached_idle(int32_t page) const { return refs_[size_t(page)] == 0 && entries_[size_t(page)].registered; }

  KvType type() const { return type_; }
  uint64_t bytes_per_token() const {
    return uint64_t(n_layer_) * uint64_t(widths_.k + widths_.v) * uint64_t(kv_elem_bytes(type_));
  }
  void* k_base(int32_t page) { return reinterpret_cast<char*>(data_.get()) + size_t(page) * size_t(page_bytes_); }
  void* v_base(int32_t page) {
    return static_cast<char*>(k_base(page)) + n_layer_ * page_tokens_ * widths_.k * kv_elem_bytes(type_);
  }
  // The cache of a sequence whose page table gave these base pointers (see k_base/v_base).
  KvBlocks blocks(std::span<void* const> k, std::span<void* const> v) const;

  // A page with one reference: a free one, else the least recently used cached one (its
  // registration dropped). Returns -1 when every page is referenced.
  int32_t allocate();
  void retain(int32_t page);
  void release(int32_t page);

  // Prefix cache. The chain starts from kChainStart; hash_page gives a page's key from its
  // parent's key and its tokens.
  static constexpr uint64_t kChainStart = 0x9e3779b97f4a7c15ull;
  static uint64_t hash_page(uint64_t parent, std::span<const int32_t> tokens);
  // The cached page with this key and these tokens, or -1. Does not take a reference.
  int32_t lookup(uint64_t key, std::span<const int32_t> tokens) const;
  // Registers a full, referenced page under `key` unless another page holds that key already.
  void register_page(int32_t page, uint64_t key, std::span<const int32_t> tokens);

 private:
  struct Entry {
    bool registered = false;
    uint64_t key = 0;
    std::vector<int32_t> tokens;  // to rule out hash collisions
    std::list<int32_t>::iterator lru_pos;
  };
  void unregister(int32_t page);

  int64_t n_pages_, page_tokens_, n_layer_, page_bytes_;
  KvWidths widths_;
  KvType type_;
  std::unique_ptr<float[]> data_;  // float-aligned; pages are page_bytes_ apart
  std::vector<int32_t> refs_;
  std::vector<int32_t> free_;        // unreferenced, unregistered
  std::list<int32_t> lru_;           // unreferenced, registered; front = least recently used
  std::vector<Entry> entries_;
  std::unordered_map<uint64_t, int32_t> by_hash_;
  int64_t n_used_ = 0;
};

}  // namespace whale
