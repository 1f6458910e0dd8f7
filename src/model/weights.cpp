#include "model/weights.h"

#include <filesystem>

#include "core/error.h"
#include "kernels/quants.h"

namespace whale {

namespace fs = std::filesystem;

std::unique_ptr<ModelFiles> ModelFiles::open(const std::string& path) {
  auto m = std::make_unique<ModelFiles>();
  m->path_ = path;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    m->format_ = FileFormat::HuggingFace;
    const std::string cfg = (fs::path(path) / "config.json").string();
    if (!fs::exists(cfg)) fail("{}: folder has no config.json", path);
    m->config_ = config_from_hf_json(cfg);
    m->st_ = std::make_unique<SafetensorsSet>(path);
    m->file_bytes_ = m->st_->total_file_bytes();
  } else if (fs::exists(path, ec)) {
    m->format_ = FileFormat::Gguf;
    m->gguf_ = std::make_unique<GgufFile>(path);
    m->config_ = config_from_gguf(*m->gguf_);
    m->file_bytes_ = m->gguf_->file_size();
  } else {
    fail("{}: no such file or folder", path);
  }
  return m;
}

const TensorRef* ModelFiles::find(const std::string& name) const {
  return gguf_ ? gguf_->find_tensor(name) : st_->find(name);
}

std::vector<const TensorRef*> ModelFiles::tensors() const {
  std::vector<const TensorRef*> out;
  if (gguf_) {
    for (auto& t : gguf_->tensors()) out.push_back(&t);
  } else {
    for (auto& [name, t] : st_->all()) out.push_back(t);
  }
  return out;
}

bool ModelFiles::is_mtp_tensor(const std::string& name) const {
  if (config_.arch != Arch::Deepseek2 || config_.n_mtp_layers == 0) return false;
  const std::string prefix = format_ == FileFormat::HuggingFace ? "model.layers." : "blk.";
  if (name.rfind(prefix, 0) != 0) return false;
  size_t end = name.find('.', prefix.size());
  if (end == std::string::npos) return false;
  try {
    int64_t layer = std::stoll(name.substr(prefix.size(), end - prefix.size()));
    return layer >= config_.n_layer && layer < config_.n_layer + config_.n_mtp_layers;
  } catch (...) {
    return false;
  }
}

const TensorRef& WeightLoader::require(const std::string& name) {
  const TensorRef* t = files_.find(name);
  if (!t) fail("{}: missing tensor '{}'", files_.path(), name);
  used_.insert(name);
  return *t;
}

Matrix WeightLoader::matrix(const std::string& name, int64_t rows, int64_t cols) {
  const TensorRef& t = require(name);
  const std::string& file = *t.file;
  int64_t t_rows = 1;
  for (size_t k = 0; k + 1 < t.shape.size(); ++k) t_rows *= t.shape[k];
  if (t.shape.size() < 2 || t_rows != rows || t.shape.back() != cols)
    fail("{}: tensor '{}' has shape {}, expected {} rows of {} for this config", file, name,
         t.shape_str(), rows, cols);
  Matrix m;
  m.dtype = t.dtype;
  m.rows = rows;
  m.cols = cols;
  m.data = t.data;
  m.row_bytes = *dtype_bytes(t.dtype, uint64_t(cols));
  if (t.dtype == DType::F8_E4M3) {
    const std::string base = name.size() > 7 && name.ends_with(".weight")
                                 ? name.substr(0, name.size() - 7)
                                 : name;
    const std::string sname = base + ".weight_scale_inv";
    const TensorRef* s = files_.find(sname);
    if (!s) fail("{}: FP8 tensor '{}' has no '{}'", file, name, sname);
    used_.insert(sname);
    const int64_t sr = (rows + Matrix::kScaleBlock - 1) / Matrix::kScaleBlock;
    const int64_t sc = (cols + Matrix::kScaleBlock - 1) / Matrix::kScaleBlock;
    if (s->dtype != DType::F32 || s->shape.size() != 2 || s->shape[0] != sr || s->shape[1] != sc)
      fail("{}: '{}' is {} {}, expected f32 [{}, {}]", *s->file, sname, dtype_name(s->dtype),
           s->shape_str(), sr, sc);
    if (reinterpret_cast<uintptr_t>(s->data) % alignof(float) != 0)
      fail("{}: '{}' data is not 4-byte aligned", *s->file, sname);
    m.block_scale = reinterpret_cast<const float*>(s->data);
    m.scale_cols = sc;
  }
  return m;
}

std::vector<float> WeightLoader::vector(const std::string& name, int64_t n) {
  const TensorRef& t = require(name);
  if (t.numel() != n || t.shape.empty() || t.shape.back() != n)
    fail("{}: tensor '{}' has shape {}, expected [{}] for this config", *t.file, name,
         t.shape_str(), n);
  if (t.dtype == DType::F8_E4M3 || (dtype_info(t.dtype).block_elems != 1 &&
                                    n % dtype_info(t.dtype).block_elems != 0))
    fail("{}: tensor '{}' cannot be {} (a float vector is expected)", *t.file, name,
         dtype_name(t.dtype));
  std::vector<float> out(static_cast<size_t>(n));
  dequantize_row(t.dtype, t.data, out.data(), n);
  return out;
}

std::vector<std::string> WeightLoader::unused() const {
  std::vector<std::string> out;
  for (const TensorRef* t : files_.tensors())
    if (!used_.count(t->name)) out.push_back(t->name);
  return out;
}

}  // namespace whale
