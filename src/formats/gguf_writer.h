// GGUF v3 writer: the layout llama.cpp's gguf reader (and formats/gguf.h) expects.
//
//   "GGUF" u32 version=3, u64 n_tensors, u64 n_kv
//   n_kv × (string key, u32 type, value)             string = u64 length + bytes (no NUL)
//   n_tensors × (string name, u32 n_dims, u64 ne[n_dims] innermost first, u32 ggml type,
//                u64 offset relative to the data section)
//   zero padding to `general.alignment` (default 32), then each tensor's bytes, each padded
//   with zeros to the alignment (so offset k+1 = align_up(offset k + nbytes k), as llama.cpp
//   requires).
//
// Usage:
//   GgufWriter w;
//   w.set_string("general.architecture", "deepseek2");
//   w.set_u32("deepseek2.block_count", 3);
//   w.add_tensor("token_embd.weight", DType::Q8_0, {512, 128}, data, nbytes);  // [rows, cols]
//   w.write("model.gguf");
//
// Keys keep the order of their first set; setting a key again replaces its value. Shapes are
// row-major outermost first, like TensorRef (a linear weight is [out, in]); the writer stores
// ggml's reversed `ne`. Everything is checked when it is added (whale::Error naming the key or
// tensor); write() reports I/O errors naming the path and never leaves a partial file there.
// llama.cpp limits honoured: tensor names < 64 bytes, 1 to 4 dimensions, `general.alignment`
// a u32 power of two. Nested arrays (set_value of an array of arrays) are GGUF-legal and read
// by formats/gguf.h, but llama.cpp rejects them.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "formats/gguf.h"

namespace whale {

class GgufWriter {
 public:
  // ---- metadata ----------------------------------------------------------------------------
  void set_u8(std::string_view key, uint8_t v);
  void set_i8(std::string_view key, int8_t v);
  void set_u16(std::string_view key, uint16_t v);
  void set_i16(std::string_view key, int16_t v);
  void set_u32(std::string_view key, uint32_t v);
  void set_i32(std::string_view key, int32_t v);
  void set_u64(std::string_view key, uint64_t v);
  void set_i64(std::string_view key, int64_t v);
  void set_f32(std::string_view key, float v);
  void set_f64(std::string_view key, double v);
  void set_bool(std::string_view key, bool v);
  void set_string(std::string_view key, std::string_view v);

  void set_array_u8(std::string_view key, const std::vector<uint8_t>& v);
  void set_array_i8(std::string_view key, const std::vector<int8_t>& v);
  void set_array_u16(std::string_view key, const std::vector<uint16_t>& v);
  void set_array_i16(std::string_view key, const std::vector<int16_t>& v);
  void set_array_u32(std::string_view key, const std::vector<uint32_t>& v);
  void set_array_i32(std::string_view key, const std::vector<int32_t>& v);
  void set_array_u64(std::string_view key, const std::vector<uint64_t>& v);
  void set_array_i64(std::string_view key, const std::vector<int64_t>& v);
  void set_array_f32(std::string_view key, const std::vector<float>& v);
  void set_array_f64(std::string_view key, const std::vector<double>& v);
  void set_array_bool(std::string_view key, const std::vector<bool>& v);
  void set_array_str(std::string_view key, const std::vector<std::string>& v);

  // Any value read by GgufFile (scalars, arrays, nested arrays): copies metadata across files.
  void set_value(std::string_view key, const GgufValue& v);

  bool has(std::string_view key) const;
  void remove(std::string_view key);  // no-op when absent
  size_t kv_count() const { return kv_.size(); }

  // ---- tensors -----------------------------------------------------------------------------
  // `shape` outermost first; `nbytes` must equal what dtype × shape needs. add_tensor copies
  // the bytes; add_tensor_view only keeps the pointer, which must stay valid until write()
  // (e.g. a tensor of a GgufFile / SafetensorsFile that outlives the writer).
  void add_tensor(std::string name, DType dtype, std::vector<int64_t> shape, const void* data,
                  uint64_t nbytes);
  void add_tensor_view(std::string name, DType dtype, std::vector<int64_t> shape,
                       const void* data, uint64_t nbytes);
  // Bytes produced at write() time, in chunks of whole rows (≤ 64 MiB each): fill(row0, n, dst)
  // writes rows [row0, row0 + n) of the tensor (rows = all but the last dimension) to dst.
  // Lets a model larger than RAM (synthesized, re-quantized) be written with flat memory.
  using RowFill = std::function<void(int64_t row0, int64_t n_rows, uint8_t* dst)>;
  void add_tensor_stream(std::string name, DType dtype, std::vector<int64_t> shape,
                         uint64_t nbytes, RowFill fill);
  size_t tensor_count() const { return tensors_.size(); }

  // Writes the file (via "<path>.tmp" renamed into place). Throws whale::Error.
  void write(const std::string& path) const;

 private:
  struct Kv {
    std::string key;
    GgufType type;
    std::vector<uint8_t> value;  // encoded value, as it follows the type field in the file
  };
  struct Tensor {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    const uint8_t* view = nullptr;  // add_tensor_view
    std::vector<uint8_t> owned;     // add_tensor
    uint64_t nbytes = 0;
    RowFill fill;                   // add_tensor_stream
    const uint8_t* bytes() const { return view ? view : owned.data(); }
  };

  void put(std::string_view key, GgufType type, std::vector<uint8_t> value);
  template <typename T>
  void put_array(std::string_view key, GgufType elem, const std::vector<T>& v);
  Tensor& check_and_add(std::string name, DType dtype, std::vector<int64_t> shape,
                        const void* data, uint64_t nbytes);
  uint64_t alignment() const;

  std::vector<Kv> kv_;
  std::vector<Tensor> tensors_;
};

}  // namespace whale
