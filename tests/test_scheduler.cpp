// Continuous batching on the fixture models: the batched forward equals separate forwards,
// paged KV equals the contiguous cache, concurrent requests give exactly the tokens of
// sequential runs (greedy and seeded sampling), prefix pages are reused, and the scheduler's
// bookkeeping (cancel, queue limit, bad requests, shutdown, KV budget) holds.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>

#include "core/error.h"
#include "fixtures.h"
#include "model/model.h"
#include "runtime/kv_pool.h"
#include "runtime/sampler.h"
#include "runtime/scheduler.h"
#include "kernels/matmul.h"

// Equivalences of forms and of batching are algebraic: check them on the exact path (float32
// activations). The 8-bit-activation default quantizes intermediate results differently per
// form, and its kernels for one token and for many round differently (test_models_fast).
[[maybe_unused]] static const bool kExactMatmul = (whale::set_matmul_precision(whale::MatmulPrecision::Exact), true);

namespace whale {
namespace {

namespace fs = std::filesystem;

fs::path model_path(const std::string& dir, const std::string& file) {
  return fs::path(test::fixtures_dir()) / "models" / dir / file;
}

std::vector<std::vector<int32_t>> case_prompts(const std::string& dir) {
  auto j = nlohmann::json::parse(test::read_text((fs::path(test::fixtures_dir()) / "models" / dir / "cases.json").string()));
  std::vector<std::vector<int32_t>> out;
  for (auto& c : j) out.push_back(c["tokens"].get<std::vector<int32_t>>());
  return out;
}

double rel_err(const float* got, const float* want, size_t n) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < n; ++i) {
    err = std::max(err, double(std::fabs(got[i] - want[i])));
    scale = std::max(scale, double(std::fabs(want[i])));
  }
  return err / std::max(scale, 1e-30);
}

std::vector<int32_t> iota_pos(int64_t first, int64_t n) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), int32_t(first));
  return p;
}

// Deterministic pseudo-prompt of ordinary (non-special) tokens.
std::vector<int32_t> make_prompt(uint64_t seed, size_t n, int32_t vocab) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> p(n);
  for (auto& t : p) t = int32_t(rng() % uint64_t(std::min<int32_t>(vocab, 504)));
  return p;
}

struct Param {
  std::string dir, file;
};
void PrintTo(const Param& p, std::ostream* os) { *os << p.dir << "/" << p.file; }
std::string param_name(const testing::TestParamInfo<Param>& info) {
  std::string s = info.param.dir + "_" + info.param.file;
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

// A sequence's cache in a page pool, as the scheduler keeps it.
struct PagedSeq {
  std::vector<void*> k, v;
  PagedSeq(KvPagePool& pool, int64_t n_positions) {
    for (int64_t i = 0; i * pool.page_tokens() < n_positions; ++i) {
      const int32_t p = pool.allocate();
      EXPECT_GE(p, 0);
      k.push_back(pool.k_base(p));
      v.push_back(pool.v_base(p));
    }
  }
};

class BatchedForward : public testing::TestWithParam<Param> {};

// Three sequences in different states — one continuing a prefill chunk, one decoding a single
// token late in its context, one starting fresh and asking for every position's logits — run
// in one batched forward over paged caches, against three separate forwards over contiguous
// caches whose history was computed the same way.
TEST_P(BatchedForward, EqualsSeparateForwards) {
  const fs::path path = model_path(GetParam().dir, GetParam().file);
  if (!fs::exists(path)) GTEST_SKIP() << "missing " << path;
  auto model = load_model(path.string());
  const int64_t V = model->config().n_vocab;
  const int32_t vocab = int32_t(V);
  const auto a = make_prompt(1, 15, vocab), b = make_prompt(2, 21, vocab), c = make_prompt(3, 7, vocab);
  // history: a[0..10) then a[10..15) in the batch; b[0..20) then b[20] in the batch; c fresh.
  const int64_t ctx = 32;
  KvCache ka(model->config(), ctx), kb(model->config(), ctx), kc(model->config(), ctx);
  KvPagePool pool(model->config(), 64, 4);  // 4-token pages: every sequence spans many pages
  PagedSeq pa(pool, ctx), pb(pool, ctx), pc(pool, ctx);
  KvBlocks ba = pool.blocks(pa.k, pa.v), bb = pool.blocks(pb.k, pb.v), bc = pool.blocks(pc.k, pc.v);

  std::vector<float> tmp(static_cast<size_t>(20 * V));
  auto history = [&](const std::vector<int32_t>& t, int64_t n, KvCache& kv, const KvBlocks& blocks) {
    const auto pos = iota_pos(0, n);
    model->forward(std::span(t.data(), size_t(n)), pos, kv, tmp.data(), false);
    const SeqBatch s{.tokens = std::span(t.data(), size_t(n)), .positions = pos, .kv = blocks,
                     .logits = tmp.data()};
    model->forward_batch(std::span(&s, 1));
  };
  history(a, 10, ka, ba);
  history(b, 20, kb, bb);

  // Separate.
  std::vector<float> la(static_cast<size_t>(V)), lb(static_cast<size_t>(V)), lc(static_cast<size_t>(7 * V));
  const auto pa_pos = iota_pos(10, 5), pb_pos = iota_pos(20, 1), pc_pos = iota_pos(0, 7);
  model->forward(std::span(a.data() + 10, 5), pa_pos, ka, la.data(), false);
  model->forward(std::span(b.data() + 20, 1), pb_pos, kb, lb.data(), false);
  model->forward(c, pc_pos, kc, lc.data(), true);

  // Batched.
  std::vector<float> ga(static_cast<size_t>(V)), gb(static_cast<size_t>(V)), gc(static_cast<size_t>(7 * V));
  const SeqBatch seqs[] = {
      {.tokens = std::span(a.data() + 10, 5), .positions = pa_pos, .kv = ba, .logits = ga.data()},
      {.tokens = std::span(b.data() + 20, 1), .positions = pb_pos, .kv = bb, .logits = gb.data()},
      {.tokens = c, .positions = pc_pos, .kv = bc, .logits = gc.data(), .all_logits = true},
  };
  model->forward_batch(seqs);

  const double ea = rel_err(ga.data(), la.data(), la.size()), eb = rel_err(gb.data(), lb.data(), lb.size()),
               ec = rel_err(gc.data(), lc.data(), lc.size());
  std::printf("[batched vs separate] %s/%s rel err %.3g %.3g %.3g\n", GetParam().dir.c_str(),
              GetParam().file.c_str(), ea, eb, ec);
  EXPECT_LE(ea, 1e-5);
  EXPECT_LE(eb, 1e-5);
  EXPECT_LE(ec, 1e-5);

  // The paged rows hold what the contiguous caches hold.
  double kv_err = 0;
  const KvWidths w = kv_widths(model->config());
  for (int64_t il = 0; il < model->config().n_layer; ++il)
    for (int64_t p = 0; p < 15; ++p) {
      std::vector<float> got(size_t(w.k)), want(size_t(w.k));
      ba.load_k(il, p, got.data()), ka.blocks().load_k(il, p, want.data());
      kv_err = std::max(kv_err, rel_err(got.data(), want.data(), size_t(w.k)));
      if (w.v) {
        got.resize(size_t(w.v)), want.resize(size_t(w.v));
        ba.load_v(il, p, got.data()), ka.blocks().load_v(il, p, want.data());
        kv_err = std::max(kv_err, rel_err(got.data(), want.data(), size_t(w.v)));
      }
    }
  EXPECT_LE(kv_err, 1e-5);

  // A batch that asks for no logits at all still fills the caches.
  const SeqBatch quiet{.tokens = std::span(a.data() + 10, 5), .positions = pa_pos, .kv = ba};
  model->forward_batch(std::span(&quiet, 1));
  EXPECT_THROW(model->forward_batch(std::span<const SeqBatch>()), Error);
}

// A long prompt through 4-token pages equals the contiguous cache (single sequence, naive
// MLA oracle included for deepseek2).
TEST_P(BatchedForward, PagedEqualsContiguous) {
  const fs::path path = model_path(GetParam().dir, GetParam().file);
  if (!fs::exists(path)) GTEST_SKIP() << "missing " << path;
  for (KvType kv_type : {DType::F32, DType::F16})
  for (bool naive : {false, true}) {
    SCOPED_TRACE(dtype_name(kv_type));
    auto model = load_model(path.string(), LoadOptions{.naive_mla = naive});
    if (naive && model->config().arch != Arch::Deepseek2) continue;
    const int64_t V = model->config().n_vocab;
    const auto prompt = case_prompts(GetParam().dir).back();
    const int64_t n = int64_t(prompt.size());
    const auto pos = iota_pos(0, n);
    KvCache kv(model->config(), n, kv_type);
    std::vector<float> want(static_cast<size_t>(n * V)), got(size_t(n * V));
    model->forward(prompt, pos, kv, want.data(), true);
    KvPagePool pool(model->config(), (n + 3) / 4, 4, kv_type);
    PagedSeq ps(pool, n);
    const SeqBatch s{.tokens = prompt, .positions = pos, .kv = pool.blocks(ps.k, ps.v),
                     .logits = got.data(), .all_logits = true};
    model->forward_batch(std::span(&s, 1));
    // f16 rows: a 1e-7 difference upstream (page-wise softmax order) can round a cached element
    // to the neighbouring f16 value (5e-4 apart), so paged and contiguous differ more (~1e-5).
    const double tol = kv_type == DType::F16 ? 1e-4 : 1e-5;
    EXPECT_LE(rel_err(got.data(), want.data(), want.size()), tol) << (naive ? "naive" : "absorbed");
    // Positions beyond the pages are refused.
    const int32_t beyond = int32_t(pool.n_pages() * 4);
    const SeqBatch bad{.tokens = std::span(prompt.data(), 1), .positions = std::span(&beyond, 1),
                       .kv = pool.blocks(ps.k, ps.v), .logits = got.data()};
    EXPECT_THROW(model->forward_batch(std::span(&bad, 1)), Error);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, BatchedForward,
                         testing::Values(Param{"deepseek-v3-tiny", "model-bf16.gguf"},
                                         Param{"deepseek-v2-lite-tiny", "hf"},
                                         Param{"r1-distill-qwen-tiny", "model-q8_0.gguf"},
                                         Param{"r1-distill-llama-tiny", "model-bf16.gguf"}),
                         param_name);

// ---------------------------------------------------------------------------------------------
// Scheduler

struct Outcome {
  std::vector<int32_t> tokens;
  std::string finish;
  int64_t prompt_tokens = 0, cached = 0, generated = 0, events_after_done = 0;
  bool done = false;
};

// Collects the events of many requests; wait() blocks until all are done.
class Collector {
 public:
  std::function<void(const GenEvent&)> callback(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    if (out_.size() <= i) out_.resize(i + 1);
    return [this, i](const GenEvent& ev) {
      std::lock_guard<std::mutex> lock(mu_);
      Outcome& o = out_[i];
      if (o.done) ++o.events_after_done;
      if (!ev.done) {
        o.tokens.push_back(ev.token);
        ++tokens_seen_;
      } else {
        o.done = true;
        o.finish = ev.finish_reason;
        o.prompt_tokens = ev.prompt_tokens;
        o.cached = ev.cached_tokens;
        o.generated = ev.generated;
      }
      cv_.notify_all();
    };
  }
  bool wait(size_t n, std::chrono::seconds limit = std::chrono::seconds(120)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, limit, [&] {
      if (out_.size() < n) return false;
      for (size_t i = 0; i < n; ++i)
        if (!out_[i].done) return false;
      return true;
    });
  }
  bool wait_tokens(int64_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(60), [&] { return tokens_seen_ >= n; });
  }
  Outcome get(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return out_.at(i);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Outcome> out_;
  int64_t tokens_seen_ = 0;
};

// What one request gives when run alone on a contiguous cache, token by token.
std::vector<int32_t> sequential(Model& m, const GenRequest& r, int64_t n_ctx) {
  const int64_t V = m.config().n_vocab;
  KvCache kv(m.config(), n_ctx);
  Sampler sampler(r.sampling);
  std::vector<float> logits(static_cast<size_t>(V));
  m.forward(r.prompt, iota_pos(0, int64_t(r.prompt.size())), kv, logits.data(), false);
  std::vector<int32_t> out;
  int64_t len = int64_t(r.prompt.size());
  for (;;) {
    const int32_t t = sampler.sample(logits.data(), V);
    if (std::find(r.stop_tokens.begin(), r.stop_tokens.end(), t) != r.stop_tokens.end()) break;
    out.push_back(t);
    ++len;
    if (int64_t(out.size()) >= r.max_tokens || len >= n_ctx) break;
    int32_t p = int32_t(len - 1);
    m.forward(std::span(&t, 1), std::span(&p, 1), kv, logits.data(), false);
  }
  return out;
}

class SchedulerFixture : public testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    const fs::path path = model_path(GetParam().dir, GetParam().file);
    if (!fs::exists(path)) GTEST_SKIP() << "missing " << path;
    model_ = load_model(path.string());
  }
  std::vector<GenRequest> mixed_requests(bool sampled) const {
    const int32_t V = int32_t(model_->config().n_vocab);
    std::vector<GenRequest> reqs;
    auto prompts = case_prompts(GetParam().dir);
    for (size_t i = 0; i < 7; ++i) prompts.push_back(make_prompt(100 + i, 3 + 9 * i, V));
    for (size_t i = 0; i < prompts.size(); ++i) {
      GenRequest r;
      r.prompt = prompts[i];
      r.max_tokens = 6 + int64_t(i % 4) * 5;
      if (sampled) r.sampling = SamplerParams{.temperature = 0.9f, .top_k = 20, .top_p = 0.9f, .seed = 7 + i};
      else r.sampling.temperature = 0;
      reqs.push_back(r);
    }
    return reqs;
  }
  std::unique_ptr<Model> model_;
};

// Concurrent requests (more than the slots, small prefill chunks, a KV budget that cannot hold
// them all at once) give exactly the tokens of sequential runs.
// With a per-step budget of 6 tokens (4 slots), prompt chunks are cut short by the budget and
// some prefilling requests sit out whole steps; the tokens stay the same.
// Also on the fast (8-bit activation) matmul path: its multi-token and one-token kernels give
// each token bit-identical results (batch invariance), so batching cannot change a token.
// (test_batch_invariance checks the same at the model level, bit for bit, against pages.)
TEST_P(SchedulerFixture, ConcurrentEqualsSequential) {
  struct PrecisionGuard {
    ~PrecisionGuard() { set_matmul_precision(MatmulPrecision::Exact); }
  } restore;
  const MatmulPrecision precisions[] = {MatmulPrecision::Exact, MatmulPrecision::Fast};
  for (MatmulPrecision precision : precisions) {
  set_matmul_precision(precision);
  for (KvType kv_type : {DType::F32, DType::F16}) {
  for (bool sampled : {false, true}) {
   for (int64_t budget : {512, 6}) {
    SCOPED_TRACE(testing::Message() << precision_name(precision) << ", " << dtype_name(kv_type) << " cache, "
                                    << (sampled ? "sampled" : "greedy") << ", batch " << budget);
    const auto reqs = mixed_requests(sampled);
    const int64_t n_ctx = 128;
    std::vector<std::vector<int32_t>> want;
    // f32: against a contiguous cache token by token. f16: against each request run alone
    // through a one-slot scheduler on the same page size (an f16 row can round to the
    // neighbouring value after a 1e-7 difference upstream, so the paged-vs-contiguous softmax
    // order is enough to change a sampled token; batching and chunking must still change none).
    const SchedulerOptions opts{.n_ctx = n_ctx, .parallel = 4, .queue_max = 64, .kv_tokens = 160,
                                .prefill_chunk = 5, .batch_tokens = budget, .kv_page_tokens = 8,
                                .kv_type = kv_type};
    for (auto& r : reqs) {
      if (kv_type == DType::F32) {
        want.push_back(sequential(*model_, r, n_ctx));
        continue;
      }
      SchedulerOptions one = opts;
      one.parallel = 1, one.batch_tokens = 512, one.prefill_chunk = 256;
      Scheduler alone(*model_, one);
      Collector c1;
      ASSERT_NE(alone.submit(r, c1.callback(0)), 0u);
      ASSERT_TRUE(c1.wait(1));
      want.push_back(c1.get(0).tokens);
    }
    Collector col;
    {
      Scheduler s(*model_, opts);
      for (size_t i = 0; i < reqs.size(); ++i) ASSERT_NE(s.submit(reqs[i], col.callback(i)), 0u);
      ASSERT_TRUE(col.wait(reqs.size()));
      const SchedulerStats st = s.stats();
      EXPECT_GT(st.steps, 0);
      EXPECT_GE(st.max_step_tokens, std::min<int64_t>(budget, 5));
      EXPECT_LE(st.max_step_tokens, budget);
      EXPECT_EQ(st.active, 0);
      EXPECT_EQ(st.queued, 0);
      EXPECT_EQ(st.kv_pages_used, 0);
      EXPECT_EQ(st.requests_total, int64_t(reqs.size()));
      EXPECT_GT(st.decode_tokens_per_s, 0);
      int64_t generated = 0;
      for (size_t i = 0; i < reqs.size(); ++i) generated += col.get(i).generated;
      EXPECT_EQ(st.tokens_generated, generated);
    }
    int64_t total = 0;
    for (size_t i = 0; i < reqs.size(); ++i) {
      Outcome o = col.get(i);
      EXPECT_EQ(o.tokens, want[i]) << "request " << i << (sampled ? " (sampled)" : " (greedy)");
      EXPECT_EQ(o.finish, "length");
      EXPECT_EQ(o.generated, int64_t(o.tokens.size()));
      EXPECT_EQ(o.prompt_tokens, int64_t(reqs[i].prompt.size()));
      EXPECT_EQ(o.events_after_done, 0);
      total += o.generated;
    }
    EXPECT_GT(total, 0);
   }
  }
  }
  }
}

// The per-step budget: a running decode keeps advancing while two long prompts arrive together
// (without the budget both would be prefilled in one big step), no step computes more than the
// budget, prompts are prefilled oldest first, and every request gives its sequential tokens.
TEST_P(SchedulerFixture, StepBudgetKeepsDecodesMoving) {
  const int32_t V = int32_t(model_->config().n_vocab);
  const int64_t n_ctx = 256, budget = 16, long_prompt = 150;
  GenRequest a;
  a.prompt = make_prompt(11, 5, V);
  a.max_tokens = 100;
  a.sampling.temperature = 0;
  std::vector<GenRequest> late(2);
  for (size_t i = 0; i < late.size(); ++i) {
    late[i].prompt = make_prompt(20 + i, size_t(long_prompt), V);
    late[i].max_tokens = 4;
    late[i].sampling.temperature = 0;
  }
  Collector col;
  std::mutex mu;
  int64_t a_tokens = 0, a_tokens_at_submit = -1;
  std::vector<int64_t> a_tokens_at_first(late.size(), -1);
  std::vector<size_t> first_order;
  Scheduler s(*model_, SchedulerOptions{.n_ctx = n_ctx, .parallel = 4, .prefill_chunk = 256,
                                        .batch_tokens = budget, .kv_page_tokens = 8});
  std::vector<std::function<void(const GenEvent&)>> late_cb;
  for (size_t i = 0; i < late.size(); ++i) {
    auto cb = col.callback(1 + i);
    late_cb.push_back([&, i, cb](const GenEvent& ev) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (!ev.done && a_tokens_at_first[i] < 0) {
          a_tokens_at_first[i] = a_tokens;
          first_order.push_back(i);
        }
      }
      cb(ev);
    });
  }
  auto a_cb = col.callback(0);
  // The long prompts are submitted from A's callback (between steps) once A decodes, so the
  // count of A's tokens at that moment is exact.
  ASSERT_NE(s.submit(a, [&](const GenEvent& ev) {
    bool submit_now = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!ev.done) ++a_tokens;
      if (!ev.done && a_tokens == 2) {
        a_tokens_at_submit = a_tokens;
        submit_now = true;
      }
    }
    if (submit_now) {
      for (size_t i = 0; i < late.size(); ++i) EXPECT_NE(s.submit(late[i], late_cb[i]), 0u);
    }
    a_cb(ev);
  }), 0u);
  ASSERT_TRUE(col.wait(3));
  const SchedulerStats st = s.stats();
  EXPECT_EQ(st.max_step_tokens, budget);  // the budget was used in full, never exceeded
  ASSERT_EQ(a_tokens_at_submit, 2);
  // The first long prompt needs ceil(150 / (16 - 1)) = 10 steps; A decodes in each of them.
  EXPECT_GE(a_tokens_at_first[0] - a_tokens_at_submit, long_prompt / budget);
  ASSERT_EQ(first_order.size(), 2u);
  EXPECT_EQ(first_order[0], 0u);  // oldest prompt first
  EXPECT_EQ(col.get(0).tokens, sequential(*model_, a, n_ctx));
  for (size_t i = 0; i < late.size(); ++i)
    EXPECT_EQ(col.get(1 + i).tokens, sequential(*model_, late[i], n_ctx)) << "late request " << i;
}

// A stop token ends the request without being reported; a full context ends it as "length".
TEST_P(SchedulerFixture, StopTokenAndContextLimit) {
  GenRequest r;
  r.prompt = case_prompts(GetParam().dir).back();
  r.sampling.temperature = 0;
  r.max_tokens = 10;
  const auto free_run = sequential(*model_, r, 256);
  ASSERT_GE(free_run.size(), 4u);
  GenRequest stopped = r;
  stopped.stop_tokens = {free_run[2]};  // hit before the context limit of 3 tokens below
  const size_t first_stop = size_t(std::find(free_run.begin(), free_run.end(), free_run[2]) - free_run.begin());
  GenRequest limited = r;
  limited.max_tokens = 1000;
  const int64_t n_ctx = int64_t(r.prompt.size()) + 3;
  Collector col;
  {
    Scheduler s(*model_, SchedulerOptions{.n_ctx = n_ctx, .parallel = 2});
    s.submit(stopped, col.callback(0));
    s.submit(limited, col.callback(1));
    ASSERT_TRUE(col.wait(2));
  }
  Outcome a = col.get(0), b = col.get(1);
  EXPECT_EQ(a.finish, "stop");
  EXPECT_EQ(a.tokens, std::vector<int32_t>(free_run.begin(), free_run.begin() + long(first_stop)));
  EXPECT_EQ(b.finish, "length");
  EXPECT_EQ(b.tokens, std::vector<int32_t>(free_run.begin(), free_run.begin() + 3));
}

// The second request with the same prompt (and a third that extends it) reuse the first's
// pages: cached_tokens > 0 and the same tokens as a sequential run.
TEST_P(SchedulerFixture, PrefixCacheReusesPages) {
  const int32_t V = int32_t(model_->config().n_vocab);
  GenRequest r;
  r.prompt = make_prompt(42, 37, V);
  r.sampling.temperature = 0;
  r.max_tokens = 8;
  GenRequest longer = r;
  longer.prompt.insert(longer.prompt.end(), {5, 6, 7, 8, 9, 10, 11, 12, 13});
  const auto want = sequential(*model_, r, 128), want_longer = sequential(*model_, longer, 128);
  Collector col;
  Scheduler s(*model_, SchedulerOptions{.n_ctx = 128, .parallel = 2, .prefill_chunk = 7, .kv_page_tokens = 8});
  s.submit(r, col.callback(0));
  ASSERT_TRUE(col.wait(1));
  s.submit(r, col.callback(1));
  ASSERT_TRUE(col.wait(2));
  s.submit(longer, col.callback(2));
  ASSERT_TRUE(col.wait(3));
  Outcome o0 = col.get(0), o1 = col.get(1), o2 = col.get(2);
  EXPECT_EQ(o0.cached, 0);
  EXPECT_EQ(o1.cached, 32);  // 4 full pages of 8; the last prompt token is always computed
  EXPECT_GE(o2.cached, 32);  // the prompt, and pages holding generated tokens too
  EXPECT_EQ(o0.tokens, want);
  EXPECT_EQ(o1.tokens, want);
  EXPECT_EQ(o2.tokens, want_longer);
  const SchedulerStats st = s.stats();
  EXPECT_EQ(st.cached_tokens, o1.cached + o2.cached);
  EXPECT_EQ(st.kv_pages_used, 0);
  EXPECT_GT(st.kv_pages_cached, 0);
}

// Cancelling an active request (and a queued one) ends it with "cancelled" and frees its pages.
TEST_P(SchedulerFixture, CancelFreesSlotAndPages) {
  const int32_t V = int32_t(model_->config().n_vocab);
  GenRequest r;
  r.prompt = make_prompt(9, 20, V);
  r.sampling.temperature = 0;
  r.max_tokens = 100000;  // runs until cancelled or the context is full
  Collector col;
  Scheduler s(*model_, SchedulerOptions{.n_ctx = 4096, .parallel = 1, .kv_page_tokens = 8});
  const auto h0 = s.submit(r, col.callback(0));
  const auto h1 = s.submit(r, col.callback(1));  // waits: one slot
  ASSERT_TRUE(col.wait_tokens(3));
  EXPECT_GT(s.stats().kv_pages_used, 0);
  EXPECT_EQ(s.stats().queued, 1);
  s.cancel(h1);
  s.cancel(h0);
  ASSERT_TRUE(col.wait(2));
  EXPECT_EQ(col.get(0).finish, "cancelled");
  EXPECT_EQ(col.get(1).finish, "cancelled");
  EXPECT_TRUE(col.get(1).tokens.empty());
  const SchedulerStats st = s.stats();
  EXPECT_EQ(st.active, 0);
  EXPECT_EQ(st.queued, 0);
  EXPECT_EQ(st.kv_pages_used, 0);
  s.cancel(h0);  // finished handles and unknown ones are ignored
  s.cancel(12345);
}

// A request cancelled from inside its own callback gets no token after the final event.
TEST_P(SchedulerFixture, CancelFromCallback) {
  const int32_t V = int32_t(model_->config().n_vocab);
  GenRequest r;
  r.prompt = make_prompt(11, 5, V);
  r.max_tokens = 1000;
  Scheduler s(*model_, SchedulerOptions{.n_ctx = 2048, .parallel = 2});
  std::mutex mu;
  std::condition_variable cv;
  Scheduler::Handle h = 0;
  int tokens = 0, after_done = 0;
  bool done = false;
  std::string reason;
  {
    std::lock_guard<std::mutex> lock(mu);
    h = s.submit(r, [&](const GenEvent& ev) {
      std::lock_guard<std::mutex> lock2(mu);
      if (done) ++after_done;
      if (ev.done) {
        done = true;
        reason = ev.finish_reason;
        cv.notify_all();
      } else if (++tokens == 2) {
        s.cancel(h);
      }
    });
  }
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return done; }));
  EXPECT_EQ(reason, "cancelled");
  EXPECT_EQ(tokens, 2);
  EXPECT_EQ(after_done, 0);
}

// With every slot busy and queue_max requests waiting, submit answers 0.
TEST_P(SchedulerFixture, QueueFullReturnsZero) {
  const int32_t V = int32_t(model_->config().n_vocab);
  GenRequest r;
  r.prompt = make_prompt(3, 6, V);
  r.max_tokens = 100000;
  // The first token's callback holds the loop until the test has filled the queue.
  std::mutex mu;
  std::condition_variable cv;
  bool in_callback = false, release = false;
  Scheduler s(*model_, SchedulerOptions{.n_ctx = 1024, .parallel = 1, .queue_max = 2});
  Collector col;
  auto cb = col.callback(0);
  const auto h0 = s.submit(r, [&](const GenEvent& ev) {
    cb(ev);
    std::unique_lock<std::mutex> lock(mu);
    in_callback = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
  });
  ASSERT_NE(h0, 0u);
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return in_callback; }));
  }
  const auto h1 = s.submit(r, col.callback(1));
  const auto h2 = s.submit(r, col.callback(2));
  EXPECT_NE(h1, 0u);
  EXPECT_NE(h2, 0u);
  EXPECT_EQ(s.submit(r, col.callback(3)), 0u);
  EXPECT_EQ(s.stats().queued, 2);
  s.cancel(h1);  // room again
  const auto h3 = s.submit(r, col.callback(3));
  EXPECT_NE(h3, 0u);
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  s.cancel(h0);
  s.cancel(h2);
  s.cancel(h3);
  ASSERT_TRUE(col.wait(4));
}

// Requests that can never run are refused at submit with a whale::Error.
TEST_P(SchedulerFixture, BadRequestsThrow) {
  const int32_t V = int32_t(model_->config().n_vocab);
  {
    Scheduler s(*model_, SchedulerOptions{.n_ctx = 32, .parallel = 2, .kv_tokens = 64, .kv_page_tokens = 16});
    auto submit = [&](std::vector<int32_t> prompt, int64_t max_tokens) {
      GenRequest r;
      r.prompt = std::move(prompt);
      r.max_tokens = max_tokens;
      return s.submit(r, nullptr);
    };
    EXPECT_THROW(submit({}, 4), Error);
    EXPECT_THROW(submit(make_prompt(1, 32, V), 4), Error);  // prompt + 1 > n_ctx
    EXPECT_THROW(submit({1, V}, 4), Error);
    EXPECT_THROW(submit({1, -1}, 4), Error);
    EXPECT_THROW(submit({1, 2}, 0), Error);
    EXPECT_NE(submit(make_prompt(1, 31, V), 4), 0u);  // just fits
  }  // one scheduler per model at a time: they would share its forward
  // A KV budget smaller than one request's worst case.
  Scheduler tiny(*model_, SchedulerOptions{.n_ctx = 64, .parallel = 1, .kv_tokens = 16, .kv_page_tokens = 16});
  GenRequest r;
  r.prompt = make_prompt(2, 10, V);
  r.max_tokens = 20;
  EXPECT_THROW(tiny.submit(r, nullptr), Error);
  r.max_tokens = 7;  // 10 + 7 - 1 = 16 positions: fits
  EXPECT_NE(tiny.submit(r, nullptr), 0u);
  EXPECT_THROW({ Scheduler bad(*model_, SchedulerOptions{.parallel = 0}); }, Error);
  EXPECT_THROW({ Scheduler bad(*model_, SchedulerOptions{.prefill_chunk = 0}); }, Error);
  EXPECT_THROW({ Scheduler bad(*model_, SchedulerOptions{.parallel = 8, .batch_tokens = 4}); }, Error);
}

// Destroying the scheduler with requests running and queued ends each with one final event.
TEST_P(SchedulerFixture, DestructorCancelsInFlight) {
  const int32_t V = int32_t(model_->config().n_vocab);
  Collector col;
  {
    Scheduler s(*model_, SchedulerOptions{.n_ctx = 2048, .parallel = 2, .prefill_chunk = 4});
    for (size_t i = 0; i < 5; ++i) {
      GenRequest r;
      r.prompt = make_prompt(i, 10 + i, V);
      r.max_tokens = 100000;
      ASSERT_NE(s.submit(r, col.callback(i)), 0u);
    }
    ASSERT_TRUE(col.wait_tokens(2));
  }
  ASSERT_TRUE(col.wait(5, std::chrono::seconds(1)));
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(col.get(i).finish, "cancelled");
    EXPECT_EQ(col.get(i).events_after_done, 0);
  }
}

int64_t resident_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  return -1;
}

// Load: waves of requests with shared prefixes under a small KV budget. The pool never holds
// more than its pages, every request finishes, and a second wave costs no more memory.
TEST_P(SchedulerFixture, LoadStaysWithinKvBudget) {
  const int32_t V = int32_t(model_->config().n_vocab);
  const auto system = make_prompt(77, 24, V);
  Scheduler s(*model_, SchedulerOptions{.n_ctx = 96, .parallel = 6, .queue_max = 100, .kv_tokens = 256,
                                        .prefill_chunk = 16, .kv_page_tokens = 8});
  std::atomic<int64_t> max_used{0};
  auto wave = [&](uint64_t seed) {
    Collector col;
    std::mt19937_64 rng(seed);
    const size_t n = 24;
    for (size_t i = 0; i < n; ++i) {
      GenRequest r;
      r.prompt = system;
      auto tail = make_prompt(seed * 1000 + i, 1 + rng() % 30, V);
      r.prompt.insert(r.prompt.end(), tail.begin(), tail.end());
      r.max_tokens = 1 + int64_t(rng() % 24);
      r.sampling.seed = rng();
      auto cb = col.callback(i);
      EXPECT_NE(s.submit(r, [&, cb](const GenEvent& ev) {
        const int64_t used = s.stats().kv_pages_used;
        int64_t m = max_used.load();
        while (used > m && !max_used.compare_exchange_weak(m, used)) {}
        cb(ev);
      }), 0u);
    }
    EXPECT_TRUE(col.wait(n));
    int64_t cached = 0;
    for (size_t i = 0; i < n; ++i) {
      EXPECT_EQ(col.get(i).finish, "length");
      cached += col.get(i).cached;
    }
    EXPECT_GT(cached, 0);  // the shared system prompt was reused
  };
  wave(1);
  const int64_t rss0 = resident_kib();
  wave(2);
  wave(3);
  const int64_t rss1 = resident_kib();
  const SchedulerStats st = s.stats();
  EXPECT_LE(max_used.load(), st.kv_pages_total);
  EXPECT_EQ(st.kv_pages_total, 32);
  EXPECT_EQ(st.kv_pages_used, 0);
  EXPECT_EQ(st.requests_total, 72);
  std::printf("[load] max pages used %lld of %lld, RSS %lld -> %lld KiB\n", (long long)max_used.load(),
              (long long)st.kv_pages_total, (long long)rss0, (long long)rss1);
#if !defined(__SANITIZE_ADDRESS__)  // ASan's quarantine keeps freed memory resident
  EXPECT_LT(rss1 - rss0, 16 * 1024);  // waves 2-3 allocate nothing that stays
#endif
}

INSTANTIATE_TEST_SUITE_P(Models, SchedulerFixture,
                         testing::Values(Param{"deepseek-v3-tiny", "model-q8_0.gguf"},
                                         Param{"r1-distill-qwen-tiny", "model-bf16.gguf"}),
                         param_name);

// The pool's own bookkeeping: refcounts, LRU eviction of idle cached pages, hash verification.
TEST(KvPagePool, RefcountsAndEviction) {
  ModelConfig cfg;
  cfg.arch = Arch::Qwen2;
  cfg.n_layer = 2;
  cfg.n_head_kv = 1;
  cfg.head_dim = 4;
  KvPagePool pool(cfg, 3, 2);
  EXPECT_EQ(pool.n_allocatable(), 3);
  const int32_t a = pool.allocate(), b = pool.allocate(), c = pool.allocate();
  EXPECT_EQ(pool.allocate(), -1);
  EXPECT_EQ(pool.n_used(), 3);
  const std::vector<int32_t> ta = {1, 2}, tb = {3, 4};
  const uint64_t ka = KvPagePool::hash_page(KvPagePool::kChainStart, ta);
  const uint64_t kb = KvPagePool::hash_page(ka, tb);
  EXPECT_NE(ka, KvPagePool::hash_page(KvPagePool::kChainStart, tb));
  pool.register_page(a, ka, ta);
  pool.register_page(b, kb, tb);
  EXPECT_EQ(pool.lookup(ka, ta), a);
  EXPECT_EQ(pool.lookup(ka, tb), -1);  // same key, other tokens: a collision is not a hit
  pool.release(a);
  pool.release(b);
  pool.release(c);
  EXPECT_EQ(pool.n_used(), 0);
  EXPECT_EQ(pool.n_cached(), 2);
  EXPECT_EQ(pool.n_allocatable(), 3);
  pool.retain(b);  // a prefix hit takes an idle cached page back
  EXPECT_EQ(pool.n_allocatable(), 2);
  EXPECT_EQ(pool.allocate(), c);  // free pages first
  EXPECT_EQ(pool.allocate(), a);  // then the least recently used cached one, unregistered
  EXPECT_EQ(pool.lookup(ka, ta), -1);
  EXPECT_EQ(pool.lookup(kb, tb), b);
  EXPECT_EQ(pool.allocate(), -1);
  EXPECT_THROW(KvPagePool(cfg, 0, 16), Error);
}

}  // namespace
}  // namespace whale
