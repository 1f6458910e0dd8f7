// ModelFiles: the opened files of one model (a GGUF file, or a Hugging Face folder with
// config.json + safetensors) and its ModelConfig. WeightLoader hands out typed, shape-checked
// views of named tensors and remembers which ones the forward uses, so the rest can be
// reported (e.g. DeepSeek-V3's multi-token-prediction layer) instead of silently ignored.
#pragma once

#include <deque>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "kernels/matrix.h"
#include "model/config.h"

namespace whale {

enum class FileFormat { Gguf, HuggingFace };

class ModelFiles {
 public:
  // `path`: a .gguf file or a folder holding config.json and *.safetensors.
  static std::unique_ptr<ModelFiles> open(const std::string& path);

  FileFormat format() const { return format_; }
  const std::string& path() const { return path_; }
  const ModelConfig& config() const { return config_; }
  uint64_t file_bytes() const { return file_bytes_; }
  const GgufFile* gguf() const { return gguf_.get(); }

  const TensorRef* find(const std::string& name) const;
  std::vector<const TensorRef*> tensors() const;
  // Tensors after the last decoder layer of an HF DeepSeek-V3 folder (MTP modules).
  bool is_mtp_tensor(const std::string& name) const;

 private:
  FileFormat format_ = FileFormat::Gguf;
  std::string path_;
  ModelConfig config_;
  uint64_t file_bytes_ = 0;
  std::unique_ptr<GgufFile> gguf_;
  std::unique_ptr<SafetensorsSet> st_;
};

class WeightLoader {
 public:
  explicit WeightLoader(const ModelFiles& files) : files_(files) {}

  bool has(const std::string& name) const { return files_.find(name) != nullptr; }
  // A linear weight of shape [rows, cols] (any leading dims are flattened into rows, e.g.
  // stacked experts [E, rows/E, cols]). FP8 weights pick up "<base>.weight_scale_inv".
  Matrix matrix(const std::string& name, int64_t rows, int64_t cols);
  // A 1-D tensor of length n (norm weights, biases), converted to float32.
  std::vector<float> vector(const std::string& name, int64_t n);

  // Names present in the files that no call above consumed.
  std::vector<std::string> unused() const;

 private:
  const TensorRef& require(const std::string& name);
  const ModelFiles& files_;
  std::set<std::string> used_;
};

}  // namespace whale
