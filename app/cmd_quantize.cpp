// whale quantize IN.gguf OUT.gguf TYPE [-t N]   (llama-quantize's argument order)
// Converts every weight matrix (2-D+ "*.weight", not norms or routers; see is_quantizable) to
// TYPE, pure or a Q4_K_M / Q5_K_M mix with llama.cpp's per-tensor rule (model/shapes.h), row
// by row: dequantize_row → quantize_row, with llama.cpp's exact block layouts. Other tensors
// and tensors already in their target type are copied byte for byte; all metadata is kept
// (general.file_type updated). Output is streamed: memory stays small whatever the model size.
#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

#include "commands.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "formats/gguf.h"
#include "kernels/quants.h"
#include "model/shapes.h"

namespace whale::app {

namespace {

namespace fs = std::filesystem;

struct QuantizeArgs {
  std::string in, out, type;
  int threads = 0;
};

void run_quantize(const QuantizeArgs& a) {
  if (a.threads < 0) fail("--threads must be positive, not {}", a.threads);
  if (a.threads > 0) ThreadPool::set_default_threads(a.threads);
  const WeightType wt = parse_weight_type(a.type);
  std::error_code ec;
  if (fs::is_directory(a.in, ec))
    fail("{}: is a folder; quantize reads GGUF files only (convert Hugging Face folders with "
         "llama.cpp's convert_hf_to_gguf.py first)", a.in);
  if (fs::exists(a.out, ec) && fs::equivalent(a.in, a.out, ec))
    fail("{}: input and output are the same file", a.out);
  GgufFile in(a.in);

  const std::string arch = in.get_string("general.architecture").value_or("");
  TypeContext ctx{.n_layer = in.get_int(arch + ".block_count").value_or(0),
                  .n_expert = in.get_int(arch + ".expert_count").value_or(0),
                  .has_output = in.find_tensor("output.weight") != nullptr};
  GgufWriter meta;
  for (const auto& [key, value] : in.metadata())
    if (key != "general.alignment") meta.set_value(key, value);
  meta.set_u32("general.file_type", wt.file_type);
  meta.set_u32("general.quantization_version", 2);

  const std::vector<TensorRef>& src = in.tensors();
  std::vector<TensorPlan> plan;
  std::map<std::string, int> counts;
  int requantized = 0;
  uint64_t in_bytes = 0, out_bytes = 0;
  for (const TensorRef& t : src) {
    if (t.shape.empty()) fail("{}: tensor '{}' has no dimensions", a.in, t.name);
    TensorPlan p{.name = t.name, .shape = t.shape, .dtype = t.dtype};
    if (is_quantizable(t.name, t.shape.size()))
      p.dtype = choose_tensor_type(wt, t.name, p.row_len(), ctx);
    const DType from = t.dtype;
    if (p.dtype != from && from != DType::F32 && from != DType::F16 && from != DType::BF16) ++requantized;
    ++counts[dtype_name(p.dtype)];
    in_bytes += t.nbytes;
    out_bytes += p.nbytes();
    plan.push_back(std::move(p));
  }
  if (requantized > 0)
    fmt::print(stderr, "quantize: warning: {} tensors are already quantized; requantizing loses precision\n", requantized);
  std::string summary;
  for (auto& [name, n] : counts) summary += fmt::format("{}{} {}", summary.empty() ? "" : ", ", n, name);
  fmt::print(stderr, "quantize: {} -> {} as {}: {} tensors ({}), {:.2f} GiB -> {:.2f} GiB\n", a.in,
             a.out, wt.name, plan.size(), summary, in_bytes / 1073741824.0, out_bytes / 1073741824.0);

  auto fill = [&](size_t i, int64_t row0, int64_t n, uint8_t* dst) {
    const TensorRef& s = src[i];
    const TensorPlan& p = plan[i];
    const int64_t len = p.row_len();
    const uint64_t src_row = s.nbytes / uint64_t(p.rows()), dst_row = p.nbytes() / uint64_t(p.rows());
    const uint8_t* from = s.data + uint64_t(row0) * src_row;
    if (s.dtype == p.dtype) {
      std::memcpy(dst, from, size_t(uint64_t(n) * src_row));
      return;
    }
    ThreadPool::global().parallel_for(n, std::max<int64_t>(1, 16384 / len), [&](int64_t b, int64_t e) {
      thread_local std::vector<float> row;
      row.resize(size_t(len));
      for (int64_t r = b; r < e; ++r) {
        dequantize_row(s.dtype, from + uint64_t(r) * src_row, row.data(), len);
        quantize_row(p.dtype, row.data(), dst + uint64_t(r) * dst_row, len);
      }
    });
  };
  write_gguf_streamed(meta, plan, fill, a.out);
}

}  // namespace

void register_quantize(CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  CLI::App* cmd = app.add_subcommand("quantize", "convert the weight matrices of a GGUF file to another type");
  cmd->add_option("input", a->in, "input GGUF file")->required();
  cmd->add_option("output", a->out, "output GGUF file")->required();
  cmd->add_option("type", a->type, "weight type: " + weight_type_names())->required();
  cmd->add_option("-t,--threads", a->threads, "threads (default: all cores)");
  cmd->callback([a] { run_quantize(*a); });
}

}  // namespace whale::app
