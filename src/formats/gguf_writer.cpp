#include "formats/gguf_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace whale {

namespace {

constexpr uint32_t kVersion = 3;
constexpr uint64_t kDefaultAlignment = 32;
constexpr size_t kMaxTensorName = 63;  // llama.cpp: GGML_MAX_NAME (64) including the NUL
constexpr size_t kMaxKey = 1 << 16;    // formats/gguf.h rejects longer keys
constexpr int kMaxDims = 4;            // GGML_MAX_DIMS

// Little-endian byte sink (every platform we build for is little-endian, as GGUF is).
struct Sink {
  std::vector<uint8_t>& b;
  void raw(const void* p, size_t n) {
    const size_t at = b.size();
    b.resize(at + n);
    if (n) std::memcpy(b.data() + at, p, n);
  }
  template <typename T>
  void put(T v) { raw(&v, sizeof v); }
  void str(std::string_view s) {
    put<uint64_t>(s.size());
    raw(s.data(), s.size());
  }
};

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

uint64_t scalar_bytes(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    default: WHALE_ASSERT(false);
  }
  return 0;
}

// Encodes a value read by GgufFile (see set_value).
void encode(Sink& s, const GgufValue& v) {
  switch (v.type) {
    case GgufType::U8: s.put(uint8_t(v.u)); break;
    case GgufType::I8: s.put(int8_t(v.i)); break;
    case GgufType::U16: s.put(uint16_t(v.u)); break;
    case GgufType::I16: s.put(int16_t(v.i)); break;
    case GgufType::U32: s.put(uint32_t(v.u)); break;
    case GgufType::I32: s.put(int32_t(v.i)); break;
    case GgufType::U64: s.put(uint64_t(v.u)); break;
    case GgufType::I64: s.put(int64_t(v.i)); break;
    case GgufType::F32: s.put(float(v.f)); break;
    case GgufType::F64: s.put(double(v.f)); break;
    case GgufType::BOOL: s.put(uint8_t(v.u != 0)); break;
    case GgufType::STRING: s.str(v.str); break;
    case GgufType::ARRAY: {
      s.put(uint32_t(v.elem_type));
      s.put(uint64_t(v.count));
      if (v.elem_type == GgufType::STRING) {
        WHALE_ASSERT(v.strs.size() == v.count);
        for (auto str : v.strs) s.str(str);
      } else if (v.elem_type == GgufType::ARRAY) {
        WHALE_ASSERT(v.items.size() == v.count);
        for (auto& item : v.items) encode(s, item);
      } else if (v.count > 0) {
        // Numeric elements stay the source file's raw little-endian bytes.
        WHALE_ASSERT(v.raw != nullptr);
        s.raw(v.raw, size_t(v.count * scalar_bytes(v.elem_type)));
      }
      break;
    }
  }
}

}  // namespace

// ---- metadata ------------------------------------------------------------------------------

void GgufWriter::put(std::string_view key, GgufType type, std::vector<uint8_t> value) {
  if (key.empty() || key.size() > kMaxKey)
    fail("GGUF writer: metadata key of {} bytes (1 to {} allowed)", key.size(), kMaxKey);
  if (key == "general.alignment") {
    uint32_t a = 0;
    if (type == GgufType::U32) std::memcpy(&a, value.data(), 4);
    if (type != GgufType::U32 || a == 0 || (a & (a - 1)) != 0)
      fail("GGUF writer: general.alignment must be a u32 power of two");
  }
  for (auto& kv : kv_) {
    if (kv.key == key) {
      kv.type = type;
      kv.value = std::move(value);
      return;
    }
  }
  kv_.push_back({std::string(key), type, std::move(value)});
}

template <typename T>
void GgufWriter::put_array(std::string_view key, GgufType elem, const std::vector<T>& v) {
  std::vector<uint8_t> b;
  Sink s{b};
  s.put(uint32_t(elem));
  s.put(uint64_t(v.size()));
  for (const T& x : v) s.put(x);
  put(key, GgufType::ARRAY, std::move(b));
}

#define WHALE_GGUF_SCALAR(fn, T, type)            \
  void GgufWriter::fn(std::string_view key, T v) { \
    std::vector<uint8_t> b;                       \
    Sink{b}.put(v);                               \
    put(key, GgufType::type, std::move(b));       \
  }
WHALE_GGUF_SCALAR(set_u8, uint8_t, U8)
WHALE_GGUF_SCALAR(set_i8, int8_t, I8)
WHALE_GGUF_SCALAR(set_u16, uint16_t, U16)
WHALE_GGUF_SCALAR(set_i16, int16_t, I16)
WHALE_GGUF_SCALAR(set_u32, uint32_t, U32)
WHALE_GGUF_SCALAR(set_i32, int32_t, I32)
WHALE_GGUF_SCALAR(set_u64, uint64_t, U64)
WHALE_GGUF_SCALAR(set_i64, int64_t, I64)
WHALE_GGUF_SCALAR(set_f32, float, F32)
WHALE_GGUF_SCALAR(set_f64, double, F64)
#undef WHALE_GGUF_SCALAR

void GgufWriter::set_bool(std::string_view key, bool v) {
  put(key, GgufType::BOOL, {uint8_t(v ? 1 : 0)});
}

void GgufWriter::set_string(std::string_view key, std::string_view v) {
  std::vector<uint8_t> b;
  Sink{b}.str(v);
  put(key, GgufType::STRING, std::move(b));
}

#define WHALE_GGUF_ARRAY(fn, T, type)                                   \
  void GgufWriter::fn(std::string_view key, const std::vector<T>& v) { \
    put_array(key, GgufType::type, v);                                  \
  }
WHALE_GGUF_ARRAY(set_array_u8, uint8_t, U8)
WHALE_GGUF_ARRAY(set_array_i8, int8_t, I8)
WHALE_GGUF_ARRAY(set_array_u16, uint16_t, U16)
WHALE_GGUF_ARRAY(set_array_i16, int16_t, I16)
WHALE_GGUF_ARRAY(set_array_u32, uint32_t, U32)
WHALE_GGUF_ARRAY(set_array_i32, int32_t, I32)
WHALE_GGUF_ARRAY(set_array_u64, uint64_t, U64)
WHALE_GGUF_ARRAY(set_array_i64, int64_t, I64)
WHALE_GGUF_ARRAY(set_array_f32, float, F32)
WHALE_GGUF_ARRAY(set_array_f64, double, F64)
#undef WHALE_GGUF_ARRAY

void GgufWriter::set_array_bool(std::string_view key, const std::vector<bool>& v) {
  std::vector<uint8_t> bytes(v.begin(), v.end());  // one byte per bool, 0 or 1
  put_array(key, GgufType::BOOL, bytes);
}

void GgufWriter::set_array_str(std::string_view key, const std::vector<std::string>& v) {
  std::vector<uint8_t> b;
  Sink s{b};
  s.put(uint32_t(GgufType::STRING));
  s.put(uint64_t(v.size()));
  for (auto& str : v) s.str(str);
  put(key, GgufType::ARRAY, std::move(b));
}

void GgufWriter::set_value(std::string_view key, const GgufValue& v) {
  std::vector<uint8_t> b;
  Sink s{b};
  encode(s, v);
  put(key, v.type, std::move(b));
}

bool GgufWriter::has(std::string_view key) const {
  return std::any_of(kv_.begin(), kv_.end(), [&](const Kv& kv) { return kv.key == key; });
}

void GgufWriter::remove(std::string_view key) {
  std::erase_if(kv_, [&](const Kv& kv) { return kv.key == key; });
}

uint64_t GgufWriter::alignment() const {
  for (auto& kv : kv_) {
    if (kv.key == "general.alignment") {  // put() checked it is a u32 power of two
      uint32_t a;
      std::memcpy(&a, kv.value.data(), 4);
      return a;
    }
  }
  return kDefaultAlignment;
}

// ---- tensors -------------------------------------------------------------------------------

GgufWriter::Tensor& GgufWriter::check_and_add(std::string name, DType dtype,
                                              std::vector<int64_t> shape, const void* data,
                                              uint64_t nbytes) {
  if (name.empty() || name.size() > kMaxTensorName)
    fail("GGUF writer: tensor name '{}' has {} bytes (1 to {} allowed)", name, name.size(),
         kMaxTensorName);
  for (auto& t : tensors_)
    if (t.name == name) fail("GGUF writer: duplicate tensor '{}'", name);
  const DTypeInfo& info = dtype_info(dtype);
  if (info.ggml_type < 0) fail("GGUF writer: tensor '{}': GGUF has no {} type", name, info.name);
  if (shape.empty() || shape.size() > size_t(kMaxDims))
    fail("GGUF writer: tensor '{}' has {} dimensions (1 to {} allowed)", name, shape.size(),
         kMaxDims);
  uint64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0 || d > (int64_t(1) << 40) || (d && numel > (uint64_t(1) << 50) / uint64_t(d)))
      fail("GGUF writer: tensor '{}' has a bad shape (dimension {})", name, d);
    numel *= uint64_t(d);
  }
  if (shape.back() % info.block_elems != 0)
    fail("GGUF writer: tensor '{}': row length {} is not a multiple of the {} block size {}",
         name, shape.back(), info.name, info.block_elems);
  const auto need = dtype_bytes(dtype, numel);
  if (!need || *need != nbytes)
    fail("GGUF writer: tensor '{}' has {} bytes, {} of {} elements needs {}", name, nbytes,
         info.name, numel, need.value_or(0));
  if (nbytes > 0 && !data) fail("GGUF writer: tensor '{}' has no data", name);
  tensors_.push_back(Tensor{std::move(name), dtype, std::move(shape), nullptr, {}, nbytes, {}});
  return tensors_.back();
}

void GgufWriter::add_tensor(std::string name, DType dtype, std::vector<int64_t> shape,
                            const void* data, uint64_t nbytes) {
  Tensor& t = check_and_add(std::move(name), dtype, std::move(shape), data, nbytes);
  const auto* p = static_cast<const uint8_t*>(data);
  if (nbytes) t.owned.assign(p, p + nbytes);
}

void GgufWriter::add_tensor_view(std::string name, DType dtype, std::vector<int64_t> shape,
                                 const void* data, uint64_t nbytes) {
  Tensor& t = check_and_add(std::move(name), dtype, std::move(shape), data, nbytes);
  t.view = static_cast<const uint8_t*>(data);
}

void GgufWriter::add_tensor_stream(std::string name, DType dtype, std::vector<int64_t> shape,
                                   uint64_t nbytes, RowFill fill) {
  if (!fill) fail("GGUF writer: tensor '{}' has no data source", name);
  static const uint8_t kNonNull = 0;  // check_and_add wants data; the fill provides it later
  Tensor& t = check_and_add(std::move(name), dtype, std::move(shape), &kNonNull, nbytes);
  t.fill = std::move(fill);
}

// ---- file ----------------------------------------------------------------------------------

namespace {
// Writes a streamed tensor in chunks of whole rows; false on a write error.
template <typename Tensor>
bool stream_rows(const Tensor& t, std::FILE* f) {
  constexpr uint64_t kChunk = uint64_t(64) << 20;
  int64_t rows = 1;
  for (size_t k = 0; k + 1 < t.shape.size(); ++k) rows *= t.shape[k];
  if (rows == 0 || t.nbytes == 0) return true;
  const uint64_t row_bytes = t.nbytes / uint64_t(rows);
  const int64_t per_chunk = int64_t(std::max<uint64_t>(1, kChunk / row_bytes));
  std::vector<uint8_t> buf;
  for (int64_t r = 0; r < rows; r += per_chunk) {
    const int64_t n = std::min(per_chunk, rows - r);
    buf.resize(size_t(n) * row_bytes);
    t.fill(r, n, buf.data());
    if (std::fwrite(buf.data(), 1, buf.size(), f) != buf.size()) return false;
  }
  return true;
}
}  // namespace

void GgufWriter::write(const std::string& path) const {
  const uint64_t align = alignment();

  // Everything before the tensor data, built in memory; tensor bytes are streamed after it.
  std::vector<uint8_t> head;
  Sink s{head};
  s.raw("GGUF", 4);
  s.put(kVersion);
  s.put(uint64_t(tensors_.size()));
  s.put(uint64_t(kv_.size()));
  for (auto& kv : kv_) {
    s.str(kv.key);
    s.put(uint32_t(kv.type));
    s.raw(kv.value.data(), kv.value.size());
  }
  uint64_t offset = 0;
  for (auto& t : tensors_) {
    s.str(t.name);
    s.put(uint32_t(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) s.put(uint64_t(*it));
    s.put(uint32_t(dtype_info(t.dtype).ggml_type));
    s.put(offset);
    offset = align_up(offset + t.nbytes, align);
  }
  head.resize(align_up(head.size(), align), 0);

  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("{}: cannot create: {}", tmp, std::strerror(errno));
  static const uint8_t zeros[64] = {};
  bool ok = std::fwrite(head.data(), 1, head.size(), f) == head.size();
  try {
    for (auto& t : tensors_) {
      if (!ok) break;
      if (t.fill) {
        ok = stream_rows(t, f);  // a fill may throw: the partial file is removed below
      } else if (t.nbytes) {
        ok = std::fwrite(t.bytes(), 1, t.nbytes, f) == t.nbytes;
      }
      for (uint64_t pad = align_up(t.nbytes, align) - t.nbytes; ok && pad > 0;) {
        const size_t n = size_t(std::min<uint64_t>(pad, sizeof zeros));
        ok = std::fwrite(zeros, 1, n, f) == n;
        pad -= n;
      }
    }
  } catch (...) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
  const int err = errno;
  if (std::fclose(f) != 0 && ok) ok = false;
  if (!ok) {
    std::remove(tmp.c_str());
    fail("{}: cannot write GGUF file: {}", path, std::strerror(err ? err : EIO));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    fail("{}: cannot write GGUF file: {}", path, std::strerror(e));
  }
}

}  // namespace whale
