// Named real model shapes (for random-weight stand-ins: `whale synth`) and what a GGUF file of
// such a model holds, as llama.cpp writes and reads it:
//   - ShapeSpec: a ModelConfig at a real model's dimensions (R1-Distill-Qwen, DeepSeek-V2-Lite,
//     a DeepSeek-V3 layer slice) plus tiny shapes for tests;
//   - gguf_tensor_plan / set_gguf_metadata: tensor names, shapes and metadata keys exactly as
//     llama.cpp's converter writes them for the architecture;
//   - WeightType / choose_tensor_type: the per-tensor weight type of a target file type, pure
//     types or llama.cpp's Q4_K_M / Q5_K_M mixes (llama_tensor_get_type), with its fallbacks;
//   - write_gguf_streamed: writes a GGUF file whose tensor bytes are produced chunk by chunk,
//     so no model ever has to fit in memory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "formats/gguf_writer.h"
#include "model/config.h"

namespace whale {

struct ShapeSpec {
  std::string name;         // "deepseek-v2-lite"
  std::string description;  // one line for --help and errors
  ModelConfig config;       // n_layer = default layer count
};
const std::vector<ShapeSpec>& model_shapes();
const ShapeSpec& find_shape(const std::string& name);  // whale::Error listing the known names

// deepseek2 K/V up-projection in the file: attn_k_b [H, c, dn] + attn_v_b [H, dv, c] (current
// llama.cpp), or one attn_kv_b [H*(dn+dv), c] (llama.cpp before the MLA split, e.g. Feb 2025).
enum class MlaLayout { Split, KvB };

// Target type of a whole file: one type for every weight matrix ("pure"), or a llama.cpp mix:
// the K_M mixes, or what llama-quantize does for the blocks of 32 (Q4_0, Q4_1, Q5_0, Q5_1:
// the output head in Q6_K and the 8-expert bumps, everything else in the base type).
enum class TypeMix { None, Legacy, Q4_K_M, Q5_K_M };
struct WeightType {
  std::string name;     // as the user spells it, upper case: "Q4_K_M", "BF16"
  DType base;           // type of most matrices
  TypeMix mix = TypeMix::None;
  uint32_t file_type;   // general.file_type (llama_ftype)
  const char* file_type_name;  // llama.cpp's name of that file type: "Q4_K - Medium"
};
WeightType parse_weight_type(const std::string& s);  // case-insensitive; whale::Error if unknown
std::string weight_type_names();                      // "F32, F16, ..." for messages
std::string file_type_name(int64_t file_type);        // llama.cpp's: "Q4_K - Medium", ...

enum class TensorRole {
  Matrix,  // a linear weight or embedding: gets the target type
  Norm,    // RMSNorm weight: F32, initialised to 1
  Bias,    // q/k/v bias, exp_probs_b: F32
  Router,  // ffn_gate_inp: F32 (llama.cpp keeps routers unquantized)
};

struct TensorPlan {
  std::string name;
  std::vector<int64_t> shape;  // outermost first (GGUF's ne reversed)
  TensorRole role = TensorRole::Matrix;
  DType dtype = DType::F32;    // type in the output file
  int64_t rows() const;        // product of all but the last dimension
  int64_t row_len() const { return shape.back(); }
  uint64_t nbytes() const;
};

// The tensors of a GGUF file for `cfg`, dtypes left F32 (see assign_types).
std::vector<TensorPlan> gguf_tensor_plan(const ModelConfig& cfg, MlaLayout layout);

// Metadata as llama.cpp's converter writes it for cfg: general.*, <arch>.* hyper-parameters,
// rope scaling, and a minimal gpt2 tokenizer (byte tokens, "t<id>" fillers, bos/eos, no merges).
void set_gguf_metadata(GgufWriter& w, const ModelConfig& cfg, MlaLayout layout,
                       const std::string& model_name, uint32_t file_type);

// Whether llama-quantize converts this tensor: a 2-D+ "*.weight" that is not a norm or router.
bool is_quantizable(const std::string& name, size_t n_dims);

// What llama.cpp's rule needs to know about the whole model.
struct TypeContext {
  int64_t n_layer = 0;
  int64_t n_expert = 0;
  bool has_output = true;  // false: tied embeddings, token_embd doubles as the output head
};
// Type of one quantizable tensor for target t (see shapes.cpp for the rule and its fallbacks).
DType choose_tensor_type(const WeightType& t, const std::string& name, int64_t row_len,
                         const TypeContext& ctx);
// Sets .dtype of every tensor of a plan: Matrix roles by choose_tensor_type, others F32.
void assign_types(std::vector<TensorPlan>& plan, const WeightType& t, const TypeContext& ctx);

// fill(tensor index, first row, row count, dst) writes rows [row0, row0 + n) of that tensor in
// its final dtype into dst (n × row bytes). Called in file order, one chunk (≤ 64 MiB) at a time.
using FillRows = std::function<void(size_t tensor, int64_t row0, int64_t n_rows, uint8_t* dst)>;
// Writes `meta`'s keys (any general.alignment is dropped: the file uses the default 32) and the
// tensors of `plan` to path (via "<path>.tmp", renamed when complete). Throws whale::Error.
void write_gguf_streamed(const GgufWriter& meta, const std::vector<TensorPlan>& plan,
                         const FillRows& fill, const std::string& path);

}  // namespace whale
