// GGUF v2/v3 reader (llama.cpp's model file format), zero copy over a mapped file.
//
// Layout: magic "GGUF", u32 version, u64 tensor_count, u64 kv_count, kv pairs
// (string key, u32 type, value), tensor infos (string name, u32 n_dims, u64 ne[n_dims],
// u32 ggml type, u64 offset), padding to `general.alignment` (default 32), tensor data.
// Every count, length and offset is checked against the file size before use, so a
// truncated or hostile file yields a whale::Error naming the file and the field.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/mmap_file.h"
#include "formats/tensor_ref.h"

namespace whale {

enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_type_name(GgufType t);

struct GgufValue {
  GgufType type = GgufType::U8;
  // Scalars (integers are widened; which field is meaningful follows `type`).
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  std::string_view str;  // STRING (points into the mapping)
  // ARRAY: element type and count; numeric elements stay in the mapping (`raw`),
  // strings are collected in `strs`, nested arrays in `items`.
  GgufType elem_type = GgufType::U8;
  uint64_t count = 0;
  const uint8_t* raw = nullptr;
  std::vector<std::string_view> strs;
  std::vector<GgufValue> items;

  bool is_integer() const;
  bool is_number() const;
  // Numeric element k of an array as double / int64 (array of numbers only).
  double array_f64(uint64_t k) const;
  int64_t array_i64(uint64_t k) const;
};

class GgufFile {
 public:
  explicit GgufFile(const std::string& path);  // throws whale::Error

  const std::string& path() const { return file_->path(); }
  uint64_t file_size() const { return file_->size(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }

  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;
  const std::vector<TensorRef>& tensors() const { return tensors_; }
  const TensorRef* find_tensor(std::string_view name) const;

  // Typed getters: nullopt when absent; whale::Error when present with the wrong type.
  std::optional<std::string> get_string(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;  // any numeric type
  std::optional<bool> get_bool(std::string_view key) const;

 private:
  std::unique_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<TensorRef> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace whale
