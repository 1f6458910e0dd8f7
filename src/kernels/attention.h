// Attention of query tokens over cached K/V rows, flash style: the cache is a list of
// contiguous BLOCKS of rows (one block for a flat cache, one per page for a paged one) and
// each query carries an online-softmax state (running max m, running sum l, unnormalised
// accumulator) from block to block, so no score row of length T is ever materialised.
//
// One kernel serves both attention kinds of the project:
//   - absorbed MLA (deepseek2): one K/V stream (n_kv_head = 1) shared by all H heads; a cache
//     row is [c_kv (C) ; k_rope (dr)], the key is the whole row (dk = C + dr) and the value is
//     its first C floats (v == k, dv = C); the query of head h is [W_kbᵀ q_nope ; q_rope].
//   - dense GQA (qwen2, llama): K and V rows hold all KV heads; query head h reads KV head
//     h / (n_head / n_kv_head).
// Cost: 2·(dk + dv) FLOP per (query, visible row). Long caches are cut into row segments
// folded in parallel and merged (split-K), so one decoded token uses every thread. The AVX2+FMA path (chosen at run time) tiles
// 4 queries × 64 rows so a row tile is read from memory once per worker and reused from cache
// (scores in 4 × 3 register tiles, P·V in 4 queries × 16 columns).
#pragma once

#include <cstdint>
#include <span>

#include "core/dtype.h"

namespace whale {

// A run of consecutive cache rows at positions [pos0, pos0 + rows), of float32 or float16
// elements (`type`; f16 rows are widened to f32 as they are loaded).
struct KvBlock {
  const void* k = nullptr;  // row r, KV head g: k + r * k_stride + g * AttnParams::k_head_offset
  const void* v = nullptr;  // row r, KV head g: v + r * v_stride + g * AttnParams::v_head_offset
  int64_t rows = 0;
  int64_t k_stride = 0, v_stride = 0;  // elements between consecutive rows
  int64_t pos0 = 0;                    // position of row 0
  DType type = DType::F32;             // F32 or F16
};

struct AttnParams {
  int64_t n_tok = 0;      // query tokens
  int64_t n_head = 0;     // query heads per token
  int64_t n_kv_head = 1;  // K/V streams; divides n_head
  int64_t dk = 0, dv = 0;  // query/key width, value width
  int64_t k_head_offset = 0, v_head_offset = 0;  // floats from KV head g to g+1 inside a row
  const float* q = nullptr;  // query (t, h): q + t * q_tok_stride + h * q_head_stride, dk floats
  int64_t q_tok_stride = 0, q_head_stride = 0;
  const int32_t* pos = nullptr;  // [n_tok]: token t sees the rows at positions <= pos[t]
  float scale = 1;               // applied to q·k before the softmax
  float* out = nullptr;  // output (t, h): out + t * o_tok_stride + h * o_head_stride, dv floats
  int64_t o_tok_stride = 0, o_head_stride = 0;
};

// Checks the shapes and strides (throws whale::Error naming the field).
void check_attention(const AttnParams& p, std::span<const KvBlock> blocks);

// The whole attention: out = softmax(scale · q Kᵀ, causal by position) V over all blocks, in
// parallel on the global thread pool. Allocates nothing.
void attention(const AttnParams& p, std::span<const KvBlock> blocks);

// Absorbed MLA over a latent cache (rows [c_kv ; k_rope], width C + dr, row stride
// `row_stride`): queries (t, h) at q + (t * H + h) * (C + dr) as [q̃ ; q_rope]; output
// (t, h) at out + (t * H + h) * C (the context in latent space, before W_vb).
void mla_attention(const float* q, int64_t n_tok, int64_t n_head, int64_t C, int64_t dr,
                   const int32_t* pos, float scale, std::span<const KvBlock> blocks, float* out);

// Dense GQA: q [n_tok, n_head, dh], K/V rows [n_kv_head, dh] (block strides), out [n_tok, n_head, dh].
void gqa_attention(const float* q, int64_t n_tok, int64_t n_head, int64_t n_kv_head, int64_t dh,
                   const int32_t* pos, float scale, std::span<const KvBlock> blocks, float* out);

// Low level, for callers that walk a paged cache themselves (single thread). The state of nq
// queries: m [nq], l [nq], acc [nq] pointers of dv floats each (acc may be the output rows).
struct SoftmaxState {
  float* m;
  float* l;
  float* const* acc;
};
void attn_state_init(SoftmaxState s, int64_t nq, int64_t dv);
// Folds one block into the state of the queries (t, h0 .. h0 + nh), all of KV head h0 / G.
void attn_block(const AttnParams& p, int64_t t, int64_t h0, int64_t nh, const KvBlock& b,
                SoftmaxState s);
// acc /= l (queries that saw no row get zeros).
void attn_state_finish(SoftmaxState s, int64_t nq, int64_t dv);

// Which inner loops run: "avx2" or "portable"; force_portable_attention(true) makes the
// tests compare the two paths.
const char* attention_isa();
void force_portable_attention(bool on);

}  // namespace whale
