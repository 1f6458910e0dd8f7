#include "formats/gguf.h"

#include <cstring>

#include "core/error.h"

namespace whale {

std::string TensorRef::shape_str() const {
  std::string s = "[";
  for (size_t k = 0; k < shape.size(); ++k) s += (k ? ", " : "") + std::to_string(shape[k]);
  return s + "]";
}

const char* gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::U8: return "u8";
    case GgufType::I8: return "i8";
    case GgufType::U16: return "u16";
    case GgufType::I16: return "i16";
    case GgufType::U32: return "u32";
    case GgufType::I32: return "i32";
    case GgufType::F32: return "f32";
    case GgufType::BOOL: return "bool";
    case GgufType::STRING: return "string";
    case GgufType::ARRAY: return "array";
    case GgufType::U64: return "u64";
    case GgufType::I64: return "i64";
    case GgufType::F64: return "f64";
  }
  return "?";
}

namespace {

// Size in bytes of a fixed-size scalar type, 0 for STRING/ARRAY/unknown.
uint64_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    default: return 0;
  }
}

bool valid_type(uint32_t t) { return t <= uint32_t(GgufType::F64); }

constexpr int kMaxArrayDepth = 4;
constexpr uint64_t kMaxKeyLen = 1 << 16;

// Bounds-checked little-endian reader over the mapping.
struct Cursor {
  const uint8_t* base;
  uint64_t pos;
  uint64_t end;
  const std::string& path;

  uint64_t remaining() const { return end - pos; }
  void need(uint64_t n, const char* what) const {
    if (n > remaining())
      fail("{}: truncated GGUF file: {} needs {} bytes at offset {}, only {} left", path, what,
           n, pos, remaining());
  }
  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, base + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string_view read_string(const char* what, uint64_t max_len = UINT64_MAX) {
    uint64_t len = read<uint64_t>(what);
    if (len > max_len) fail("{}: GGUF {} length {} is implausible", path, what, len);
    need(len, what);
    std::string_view s(reinterpret_cast<const char*>(base + pos), len);
    pos += len;
    return s;
  }
};

void read_scalar(Cursor& c, GgufType t, GgufValue& v, const std::string& key) {
  v.type = t;
  switch (t) {
    case GgufType::U8: v.u = c.read<uint8_t>("value"); v.i = int64_t(v.u); v.f = double(v.u); break;
    case GgufType::I8: v.i = c.read<int8_t>("value"); v.u = uint64_t(v.i); v.f = double(v.i); break;
    case GgufType::U16: v.u = c.read<uint16_t>("value"); v.i = int64_t(v.u); v.f = double(v.u); break;
    case GgufType::I16: v.i = c.read<int16_t>("value"); v.u = uint64_t(v.i); v.f = double(v.i); break;
    case GgufType::U32: v.u = c.read<uint32_t>("value"); v.i = int64_t(v.u); v.f = double(v.u); break;
    case GgufType::I32: v.i = c.read<int32_t>("value"); v.u = uint64_t(v.i); v.f = double(v.i); break;
    case GgufType::U64: v.u = c.read<uint64_t>("value"); v.i = int64_t(v.u); v.f = double(v.u); break;
    case GgufType::I64: v.i = c.read<int64_t>("value"); v.u = uint64_t(v.i); v.f = double(v.i); break;
    case GgufType::F32: v.f = c.read<float>("value"); break;
    case GgufType::F64: v.f = c.read<double>("value"); break;
    case GgufType::BOOL: {
      uint8_t b = c.read<uint8_t>("value");
      if (b > 1) fail("{}: GGUF key '{}': bool value {} is not 0 or 1", c.path, key, b);
      v.u = b;
      v.i = b;
      break;
    }
    case GgufType::STRING: v.str = c.read_string("string value"); break;
    default: WHALE_ASSERT(false);
  }
}

void read_value(Cursor& c, GgufType t, GgufValue& v, const std::string& key, int depth) {
  if (t != GgufType::ARRAY) return read_scalar(c, t, v, key);
  if (depth >= kMaxArrayDepth)
    fail("{}: GGUF key '{}': arrays nested deeper than {}", c.path, key, kMaxArrayDepth);
  v.type = GgufType::ARRAY;
  uint32_t et = c.read<uint32_t>("array type");
  if (!valid_type(et)) fail("{}: GGUF key '{}': unknown array element type {}", c.path, key, et);
  v.elem_type = GgufType(et);
  v.count = c.read<uint64_t>("array length");
  if (uint64_t sz = scalar_size(v.elem_type)) {
    if (v.count > c.remaining() / sz)
      fail("{}: truncated GGUF file: key '{}' declares {} elements of {}, only {} bytes left",
           c.path, key, v.count, gguf_type_name(v.elem_type), c.remaining());
    v.raw = c.base + c.pos;
    c.pos += v.count * sz;
    return;
  }
  // Strings take at least 8 bytes each, nested arrays at least 12: bound before reserving.
  uint64_t min_size = v.elem_type == GgufType::STRING ? 8 : 12;
  if (v.count > c.remaining() / min_size)
    fail("{}: truncated GGUF file: key '{}' declares {} elements, only {} bytes left", c.path,
         key, v.count, c.remaining());
  if (v.elem_type == GgufType::STRING) {
    v.strs.reserve(v.count);
    for (uint64_t k = 0; k < v.count; ++k) v.strs.push_back(c.read_string("string element"));
  } else {
    v.items.resize(v.count);
    for (uint64_t k = 0; k < v.count; ++k) read_value(c, v.elem_type, v.items[k], key, depth + 1);
  }
}

}  // namespace

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16:
    case GgufType::U32: case GgufType::I32: case GgufType::U64: case GgufType::I64:
      return true;
    default: return false;
  }
}
bool GgufValue::is_number() const {
  return is_integer() || type == GgufType::F32 || type == GgufType::F64;
}

double GgufValue::array_f64(uint64_t k) const {
  WHALE_ASSERT(type == GgufType::ARRAY && raw && k < count);
  const uint8_t* p = raw + k * scalar_size(elem_type);
  auto get = [p](auto x) { std::memcpy(&x, p, sizeof(x)); return double(x); };
  switch (elem_type) {
    case GgufType::U8: return get(uint8_t());
    case GgufType::I8: return get(int8_t());
    case GgufType::U16: return get(uint16_t());
    case GgufType::I16: return get(int16_t());
    case GgufType::U32: return get(uint32_t());
    case GgufType::I32: return get(int32_t());
    case GgufType::U64: return get(uint64_t());
    case GgufType::I64: return get(int64_t());
    case GgufType::F32: return get(float());
    case GgufType::F64: return get(double());
    case GgufType::BOOL: return get(uint8_t());
    default: WHALE_ASSERT(false);
  }
  return 0;
}

int64_t GgufValue::array_i64(uint64_t k) const {
  WHALE_ASSERT(type == GgufType::ARRAY && raw && k < count);
  const uint8_t* p = raw + k * scalar_size(elem_type);
  auto get = [p](auto x) { std::memcpy(&x, p, sizeof(x)); return int64_t(x); };
  switch (elem_type) {
    case GgufType::U8: case GgufType::BOOL: return get(uint8_t());
    case GgufType::I8: return get(int8_t());
    case GgufType::U16: return get(uint16_t());
    case GgufType::I16: return get(int16_t());
    case GgufType::U32: return get(uint32_t());
    case GgufType::I32: return get(int32_t());
    case GgufType::U64: return get(uint64_t());
    case GgufType::I64: return get(int64_t());
    default: return int64_t(array_f64(k));
  }
}

GgufFile::GgufFile(const std::string& path) : file_(std::make_unique<MappedFile>(path)) {
  const std::string& p = file_->path();
  Cursor c{file_->data(), 0, file_->size(), p};
  if (file_->size() < 4 || std::memcmp(file_->data(), "GGUF", 4) != 0)
    fail("{}: not a GGUF file (bad magic)", p);
  c.pos = 4;
  version_ = c.read<uint32_t>("version");
  if (version_ == 1) fail("{}: GGUF version 1 is not supported (re-convert the model)", p);
  if (version_ != 2 && version_ != 3) fail("{}: unsupported GGUF version {}", p, version_);
  uint64_t n_tensors = c.read<uint64_t>("tensor count");
  uint64_t n_kv = c.read<uint64_t>("metadata count");
  // Every kv pair needs >= 13 bytes (key length, a 1-char key, type, 1-byte value); every
  // tensor info >= 24. Reject counts the file cannot hold before allocating for them.
  if (n_kv > c.remaining() / 13) fail("{}: metadata count {} exceeds what the file holds", p, n_kv);
  if (n_tensors > c.remaining() / 24)
    fail("{}: tensor count {} exceeds what the file holds", p, n_tensors);

  kv_.reserve(n_kv);
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key(c.read_string("metadata key", kMaxKeyLen));
    uint32_t t = c.read<uint32_t>("metadata type");
    if (!valid_type(t)) fail("{}: GGUF key '{}' has unknown value type {}", p, key, t);
    GgufValue v;
    read_value(c, GgufType(t), v, key, 0);
    if (kv_index_.count(key)) fail("{}: duplicate GGUF key '{}'", p, key);
    kv_index_.emplace(key, kv_.size());
    kv_.emplace_back(std::move(key), std::move(v));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (!a->is_integer() || a->u == 0 || (a->u & (a->u - 1)) != 0 || a->u > (1u << 20))
      fail("{}: general.alignment must be a power of two, got {}", p, a->u);
    alignment_ = a->u;
  }

  struct Info {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    uint64_t offset;
  };
  std::vector<Info> infos(n_tensors);
  for (auto& info : infos) {
    info.name = std::string(c.read_string("tensor name", kMaxKeyLen));
    uint32_t n_dims = c.read<uint32_t>("tensor n_dims");
    if (n_dims == 0 || n_dims > 4)
      fail("{}: tensor '{}' has {} dimensions (1 to 4 allowed)", p, info.name, n_dims);
    info.ne.resize(n_dims);
    for (auto& d : info.ne) d = c.read<uint64_t>("tensor dimension");
    info.type = c.read<uint32_t>("tensor type");
    info.offset = c.read<uint64_t>("tensor offset");
  }
  uint64_t data_start = (c.pos + alignment_ - 1) / alignment_ * alignment_;
  if (data_start > file_->size() && n_tensors > 0)
    fail("{}: truncated GGUF file: tensor data would start at {}, file has {} bytes", p,
         data_start, file_->size());
  const uint64_t data_size = data_start <= file_->size() ? file_->size() - data_start : 0;

  tensors_.reserve(n_tensors);
  for (auto& info : infos) {
    auto dt = dtype_from_ggml(info.type);
    if (!dt) fail("{}: tensor '{}' has unsupported type {}", p, info.name, info.type);
    TensorRef t;
    t.name = info.name;
    t.dtype = *dt;
    t.file = &file_->path();
    uint64_t numel = 1;
    for (auto it = info.ne.rbegin(); it != info.ne.rend(); ++it) {
      uint64_t d = *it;
      if (d > (uint64_t(1) << 40) || (d && numel > (uint64_t(1) << 50) / d))
        fail("{}: tensor '{}' dimensions overflow", p, info.name);
      numel *= d;
      t.shape.push_back(int64_t(d));
    }
    if (info.ne[0] % uint64_t(dtype_info(*dt).block_elems) != 0)
      fail("{}: tensor '{}' row length {} is not a multiple of the {} block size {}", p,
           info.name, info.ne[0], dtype_name(*dt), dtype_info(*dt).block_elems);
    auto nbytes = dtype_bytes(*dt, numel);
    if (!nbytes) fail("{}: tensor '{}' size overflows", p, info.name);
    if (info.offset % alignment_ != 0)
      fail("{}: tensor '{}' offset {} is not aligned to {}", p, info.name, info.offset,
           alignment_);
    if (info.offset > data_size || *nbytes > data_size - info.offset)
      fail("{}: tensor '{}' ({} bytes at data offset {}) lies outside the file (data size {})",
           p, info.name, *nbytes, info.offset, data_size);
    t.nbytes = *nbytes;
    t.data = file_->data() + data_start + info.offset;
    if (tensor_index_.count(t.name)) fail("{}: duplicate tensor '{}'", p, t.name);
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const TensorRef* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::optional<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::STRING)
    fail("{}: GGUF key '{}' should be a string, is {}", path(), key, gguf_type_name(v->type));
  return std::string(v->str);
}

std::optional<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->is_integer()) return v->i;
  if (v->type == GgufType::BOOL) return v->i;
  fail("{}: GGUF key '{}' should be an integer, is {}", path(), key, gguf_type_name(v->type));
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->is_number()) return v->f;
  fail("{}: GGUF key '{}' should be a number, is {}", path(), key, gguf_type_name(v->type));
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type == GgufType::BOOL || v->is_integer()) return v->u != 0;
  fail("{}: GGUF key '{}' should be a bool, is {}", path(), key, gguf_type_name(v->type));
}

}  // namespace whale
