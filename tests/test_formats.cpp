// File formats: the GGUF writer (round trip of every type, the exact byte layout, llama.cpp's
// own bytes reproduced), and the readers against hostile or broken files: GGUF, safetensors,
// model.safetensors.index.json, Hugging Face folders and GGUF models. Every broken file must
// end in a whale::Error whose message names the file and the problem: never a crash, a hang
// or a huge allocation. For the last, a replacement operator new (below) records the largest
// single allocation, and every expected error must come without one above kMaxAlloc.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <new>
#include <set>

#include "core/error.h"
#include "fixtures.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "formats/safetensors.h"
#include "model/model.h"
#include "model/weights.h"

// ---- allocation watch ----------------------------------------------------------------------

namespace {
std::atomic<size_t> g_largest_alloc{0};

void* tracked_alloc(std::size_t n) {
  size_t prev = g_largest_alloc.load(std::memory_order_relaxed);
  while (n > prev && !g_largest_alloc.compare_exchange_weak(prev, n, std::memory_order_relaxed)) {
  }
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
}  // namespace

void* operator new(std::size_t n) { return tracked_alloc(n); }
void* operator new[](std::size_t n) { return tracked_alloc(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return std::malloc(n ? n : 1); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return std::malloc(n ? n : 1); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace whale {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Our test files are at most a few MB; a reader that sizes a buffer from a hostile count
// would ask for far more.
constexpr size_t kMaxAlloc = size_t(16) << 20;
constexpr uint64_t kHuge = uint64_t(1) << 60;

// Runs `f`, which must throw whale::Error without allocating more than kMaxAlloc at once;
// returns the message ("" after recording a failure).
std::string whale_error(const std::function<void()>& f) {
  g_largest_alloc = 0;
  try {
    f();
  } catch (const Error& e) {
    EXPECT_LE(g_largest_alloc.load(), kMaxAlloc) << "allocated too much before: " << e.what();
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-whale exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no whale::Error was thrown";
  return "";
}

void expect_mentions(const std::string& msg, std::initializer_list<std::string> parts) {
  if (msg.empty()) return;  // whale_error already failed
  for (auto& p : parts)
    EXPECT_NE(msg.find(p), std::string::npos) << "message: " << msg << "\nlacks: " << p;
}

// EXPECT_WHALE_ERROR(expr, "part", ...): expr throws whale::Error mentioning every part.
#define EXPECT_WHALE_ERROR(expr, ...)                                 \
  do {                                                                \
    SCOPED_TRACE("EXPECT_WHALE_ERROR(" #expr ")");                    \
    expect_mentions(whale_error([&] { (void)(expr); }), {__VA_ARGS__}); \
  } while (0)

// ---- files and bytes -----------------------------------------------------------------------

const fs::path kModels = fs::path(test::fixtures_dir()) / "models";

#define REQUIRE_FIXTURE(p) \
  if (!fs::exists(p)) GTEST_SKIP() << "fixture missing: " << (p)

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const fs::path& p, const void* data, size_t n) {
  fs::remove(p);  // copies of the read-only fixtures
  std::ofstream out(p, std::ios::binary);
  out.write(static_cast<const char*>(data), std::streamsize(n));
  ASSERT_TRUE(out.good()) << p;
}
void write_bytes(const fs::path& p, const std::vector<uint8_t>& b) { write_bytes(p, b.data(), b.size()); }
void write_text(const fs::path& p, std::string_view s) { write_bytes(p, s.data(), s.size()); }

// Little-endian byte buffer built field by field.
struct Bytes {
  std::vector<uint8_t> b;
  template <typename T>
  void put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof v);
  }
  void u8(uint8_t v) { put(v); }
  void u32(uint32_t v) { put(v); }
  void u64(uint64_t v) { put(v); }
  void raw(std::string_view s) { b.insert(b.end(), s.begin(), s.end()); }
  void str(std::string_view s) { u64(s.size()); raw(s); }  // GGUF string
  void zeros(size_t n) { b.resize(b.size() + n, 0); }
  void pad(size_t align) { b.resize((b.size() + align - 1) / align * align, 0); }
};

// A GGUF image: header, then the caller appends kv pairs, tensor infos, padding and data.
struct GgufBytes : Bytes {
  GgufBytes(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    raw("GGUF");
    u32(version);
    u64(n_tensors);
    u64(n_kv);
  }
  void key(std::string_view k, GgufType t) { str(k); u32(uint32_t(t)); }
  void kv_u32(std::string_view k, uint32_t v) { key(k, GgufType::U32); u32(v); }
  void kv_str(std::string_view k, std::string_view v) { key(k, GgufType::STRING); str(v); }
  void tensor(std::string_view name, const std::vector<uint64_t>& ne, uint32_t type,
              uint64_t offset) {
    str(name);
    u32(uint32_t(ne.size()));
    for (uint64_t d : ne) u64(d);
    u32(type);
    u64(offset);
  }
};
constexpr uint32_t kGgmlF32 = 0, kGgmlQ8_0 = 8;

// One tensor info as given, padding, then `data_bytes` zero bytes.
std::vector<uint8_t> gguf_one_tensor(const std::vector<uint64_t>& ne, uint32_t type,
                                     uint64_t offset, size_t data_bytes = 64) {
  GgufBytes g(1, 0);
  g.tensor("w", ne, type, offset);
  g.pad(32);
  g.zeros(data_bytes);
  return g.b;
}

// A fresh, uniquely named folder per test, removed afterwards.
class TempDirTest : public testing::Test {
 protected:
  TempDirTest() {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    std::string name = fmt::format("whale_formats_{}_{}_{}", info->test_suite_name(),
                                   info->name(), ::getpid());
    for (char& c : name)
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    dir_ = fs::path(testing::TempDir()) / name;
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  ~TempDirTest() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path path(std::string_view name) const { return dir_ / name; }
  // Writes `bytes` to a file in the folder and returns its path.
  std::string file(std::string_view name, const std::vector<uint8_t>& bytes) const {
    write_bytes(path(name), bytes);
    return path(name).string();
  }
  // Copies a fixture folder here (writable).
  fs::path copy_fixture(const fs::path& src, std::string_view name) const {
    fs::path dst = path(name);
    fs::copy(src, dst, fs::copy_options::recursive);
    for (auto& e : fs::recursive_directory_iterator(dst))
      fs::permissions(e.path(), fs::perms::owner_read | fs::perms::owner_write,
                      fs::perm_options::add);
    return dst;
  }
  fs::path dir_;
};

using GgufWriterTest = TempDirTest;
using GgufReaderTest = TempDirTest;
using GgufFixtureTest = TempDirTest;
using SafetensorsTest = TempDirTest;
using Fp8FixtureTest = TempDirTest;
using GgufModelTest = TempDirTest;

// ---- safetensors helpers -------------------------------------------------------------------

struct StTensor {
  std::string name;
  std::string dtype;  // "BF16", ...
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

// A safetensors file as Hugging Face writes it: JSON header padded with spaces to 8 bytes.
std::vector<uint8_t> safetensors_bytes(const std::vector<StTensor>& ts) {
  json h = json::object();
  h["__metadata__"] = {{"format", "pt"}};
  uint64_t off = 0;
  for (auto& t : ts) {
    h[t.name] = {{"dtype", t.dtype},
                 {"shape", t.shape},
                 {"data_offsets", json::array({off, off + t.data.size()})}};
    off += t.data.size();
  }
  std::string header = h.dump();
  header.resize((header.size() + 7) / 8 * 8, ' ');
  Bytes b;
  b.u64(header.size());
  b.raw(header);
  for (auto& t : ts) b.b.insert(b.b.end(), t.data.begin(), t.data.end());
  return b.b;
}

// A header given verbatim, followed by `data_bytes` zero bytes.
std::vector<uint8_t> safetensors_raw(std::string_view header, size_t data_bytes = 0) {
  Bytes b;
  b.u64(header.size());
  b.raw(header);
  b.zeros(data_bytes);
  return b.b;
}

std::vector<StTensor> read_safetensors(const fs::path& p) {
  SafetensorsFile f(p.string());
  std::vector<StTensor> out;
  for (auto& t : f.tensors())
    out.push_back({t.name, dtype_info(t.dtype).st_name, t.shape,
                   std::vector<uint8_t>(t.data, t.data + t.nbytes)});
  return out;
}

StTensor& find_st(std::vector<StTensor>& ts, std::string_view name) {
  for (auto& t : ts)
    if (t.name == name) return t;
  throw std::runtime_error("no tensor " + std::string(name));
}

// Every key and tensor of `src` into `w` (tensors as views into src's mapping), except the key
// and the tensor named.
void copy_gguf(const GgufFile& src, GgufWriter& w, std::string_view skip_key = "",
               std::string_view skip_tensor = "") {
  for (auto& [k, v] : src.metadata())
    if (k != skip_key) w.set_value(k, v);
  for (auto& t : src.tensors())
    if (t.name != skip_tensor) w.add_tensor_view(t.name, t.dtype, t.shape, t.data, t.nbytes);
}

// =============================================================================================
// GgufWriter
// =============================================================================================

TEST_F(GgufWriterTest, RoundTripsEveryMetadataTypeAndTensorDtype) {
  GgufWriter w;
  w.set_u8("t.u8", 255);
  w.set_i8("t.i8", -128);
  w.set_u16("t.u16", 65535);
  w.set_i16("t.i16", -32768);
  w.set_u32("t.u32", 0xFFFFFFFFu);
  w.set_i32("t.i32", std::numeric_limits<int32_t>::min());
  w.set_u64("t.u64", std::numeric_limits<uint64_t>::max());
  w.set_i64("t.i64", std::numeric_limits<int64_t>::min());
  w.set_f32("t.f32", -1.5f);
  w.set_f64("t.f64", 1e300);
  w.set_bool("t.true", true);
  w.set_bool("t.false", false);
  w.set_string("t.str", "h\xC3\xA9llo, GGUF");
  w.set_string("t.empty_str", "");
  w.set_array_u8("a.u8", {0, 7, 255});
  w.set_array_i8("a.i8", {-128, 0, 127});
  w.set_array_u16("a.u16", {1, 65535});
  w.set_array_i16("a.i16", {-32768, 32767});
  w.set_array_u32("a.u32", {0, 0xFFFFFFFFu});
  w.set_array_i32("a.i32", {-5, 0, 504, 505});
  w.set_array_u64("a.u64", {std::numeric_limits<uint64_t>::max()});
  w.set_array_i64("a.i64", {std::numeric_limits<int64_t>::min(), 42});
  w.set_array_f32("a.f32", {0.25f, -3.0f});
  w.set_array_f64("a.f64", {1e-300, 2.5});
  w.set_array_bool("a.bool", {true, false, true});
  w.set_array_str("a.str", {"<s>", "", "\xE2\x96\x81hello"});
  w.set_array_i32("a.empty", {});

  // Tensors of every GGUF dtype, 1 to 4 dimensions, with recognisable bytes.
  struct T {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
  };
  const std::vector<T> specs = {
      {"f32", DType::F32, {7}},           {"f16", DType::F16, {2, 3, 4}},
      {"bf16", DType::BF16, {4, 6}},      {"q8_0", DType::Q8_0, {3, 64}},
      {"q4_0", DType::Q4_0, {2, 32}},     {"q4_K", DType::Q4_K, {2, 256}},
      {"q5_K", DType::Q5_K, {1, 256}},    {"q6_K", DType::Q6_K, {1, 1, 1, 256}},
      {"q4_1", DType::Q4_1, {3, 32}},     {"q5_0", DType::Q5_0, {2, 64}},
      {"q5_1", DType::Q5_1, {1, 96}},     {"empty", DType::F32, {0, 4}},
  };
  std::vector<std::vector<uint8_t>> data;
  for (size_t k = 0; k < specs.size(); ++k) {
    uint64_t numel = 1;
    for (int64_t d : specs[k].shape) numel *= uint64_t(d);
    std::vector<uint8_t> bytes(*dtype_bytes(specs[k].dtype, numel));
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t(i * 31 + k);
    w.add_tensor(specs[k].name, specs[k].dtype, specs[k].shape, bytes.data(), bytes.size());
    data.push_back(std::move(bytes));
  }
  const std::string p = path("all.gguf").string();
  w.write(p);
  EXPECT_FALSE(fs::exists(p + ".tmp"));

  GgufFile g(p);
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.alignment(), 32u);
  ASSERT_EQ(g.metadata().size(), w.kv_count());
  const char* order[] = {"t.u8", "t.i8", "t.u16", "t.i16", "t.u32", "t.i32", "t.u64"};
  for (size_t k = 0; k < std::size(order); ++k) EXPECT_EQ(g.metadata()[k].first, order[k]);

  auto type = [&](const char* key) { return g.find(key)->type; };
  EXPECT_EQ(type("t.u8"), GgufType::U8);
  EXPECT_EQ(g.find("t.u8")->u, 255u);
  EXPECT_EQ(type("t.i8"), GgufType::I8);
  EXPECT_EQ(g.find("t.i8")->i, -128);
  EXPECT_EQ(type("t.u16"), GgufType::U16);
  EXPECT_EQ(g.find("t.u16")->u, 65535u);
  EXPECT_EQ(type("t.i16"), GgufType::I16);
  EXPECT_EQ(g.find("t.i16")->i, -32768);
  EXPECT_EQ(type("t.u32"), GgufType::U32);
  EXPECT_EQ(g.find("t.u32")->u, 0xFFFFFFFFu);
  EXPECT_EQ(type("t.i32"), GgufType::I32);
  EXPECT_EQ(*g.get_int("t.i32"), std::numeric_limits<int32_t>::min());
  EXPECT_EQ(type("t.u64"), GgufType::U64);
  EXPECT_EQ(g.find("t.u64")->u, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(type("t.i64"), GgufType::I64);
  EXPECT_EQ(*g.get_int("t.i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(type("t.f32"), GgufType::F32);
  EXPECT_EQ(*g.get_float("t.f32"), -1.5);
  EXPECT_EQ(type("t.f64"), GgufType::F64);
  EXPECT_EQ(*g.get_float("t.f64"), 1e300);
  EXPECT_EQ(type("t.true"), GgufType::BOOL);
  EXPECT_EQ(*g.get_bool("t.true"), true);
  EXPECT_EQ(*g.get_bool("t.false"), false);
  EXPECT_EQ(*g.get_string("t.str"), "h\xC3\xA9llo, GGUF");
  EXPECT_EQ(*g.get_string("t.empty_str"), "");

  auto arr = [&](const char* key, GgufType elem, uint64_t count) -> const GgufValue& {
    const GgufValue* v = g.find(key);
    EXPECT_TRUE(v && v->type == GgufType::ARRAY) << key;
    EXPECT_EQ(v->elem_type, elem) << key;
    EXPECT_EQ(v->count, count) << key;
    return *v;
  };
  EXPECT_EQ(arr("a.u8", GgufType::U8, 3).array_i64(2), 255);
  EXPECT_EQ(arr("a.i8", GgufType::I8, 3).array_i64(0), -128);
  EXPECT_EQ(arr("a.u16", GgufType::U16, 2).array_i64(1), 65535);
  EXPECT_EQ(arr("a.i16", GgufType::I16, 2).array_i64(0), -32768);
  EXPECT_EQ(arr("a.u32", GgufType::U32, 2).array_i64(1), 0xFFFFFFFF);
  const GgufValue& i32 = arr("a.i32", GgufType::I32, 4);
  EXPECT_EQ(i32.array_i64(0), -5);
  EXPECT_EQ(i32.array_i64(3), 505);
  EXPECT_EQ(uint64_t(arr("a.u64", GgufType::U64, 1).array_i64(0)),
            std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(arr("a.i64", GgufType::I64, 2).array_i64(0), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(arr("a.f32", GgufType::F32, 2).array_f64(1), -3.0);
  EXPECT_EQ(arr("a.f64", GgufType::F64, 2).array_f64(0), 1e-300);
  const GgufValue& bools = arr("a.bool", GgufType::BOOL, 3);
  EXPECT_EQ(bools.array_i64(0), 1);
  EXPECT_EQ(bools.array_i64(1), 0);
  const GgufValue& strs = arr("a.str", GgufType::STRING, 3);
  ASSERT_EQ(strs.strs.size(), 3u);
  EXPECT_EQ(strs.strs[0], "<s>");
  EXPECT_EQ(strs.strs[1], "");
  EXPECT_EQ(strs.strs[2], "\xE2\x96\x81hello");
  arr("a.empty", GgufType::I32, 0);

  ASSERT_EQ(g.tensors().size(), specs.size());
  for (size_t k = 0; k < specs.size(); ++k) {
    const TensorRef& t = g.tensors()[k];
    SCOPED_TRACE(specs[k].name);
    EXPECT_EQ(t.name, specs[k].name);
    EXPECT_EQ(t.dtype, specs[k].dtype);
    EXPECT_EQ(t.shape, specs[k].shape);
    ASSERT_EQ(t.nbytes, data[k].size());
    if (t.nbytes) {
      EXPECT_EQ(std::memcmp(t.data, data[k].data(), t.nbytes), 0);
    }
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 32, 0u);  // the mapping is page-aligned
  }
}

// The exact bytes llama.cpp expects, built by hand: ne reversed, offsets relative to the data
// section, zero padding after the tensor infos and after each tensor.
TEST_F(GgufWriterTest, StreamedTensorsEqualCopiedOnesAndFailuresLeaveNoFile) {
  // 3 rows of 32 f32; the fill is asked for whole rows and must give the same file as a copy.
  std::vector<float> data(96);
  for (size_t i = 0; i < data.size(); ++i) data[i] = float(i) * 0.5f;
  GgufWriter copied, streamed;
  copied.add_tensor("t", DType::F32, {3, 32}, data.data(), data.size() * 4);
  streamed.add_tensor_stream("t", DType::F32, {3, 32}, data.size() * 4,
                             [&](int64_t r0, int64_t n, uint8_t* dst) {
                               std::memcpy(dst, data.data() + r0 * 32, size_t(n) * 32 * 4);
                             });
  copied.write(path("a.gguf").string());
  streamed.write(path("b.gguf").string());
  EXPECT_EQ(read_bytes(path("a.gguf")), read_bytes(path("b.gguf")));

  GgufWriter failing;
  failing.add_tensor_stream("t", DType::F32, {3, 32}, data.size() * 4,
                            [](int64_t, int64_t, uint8_t*) { fail("source went away"); });
  EXPECT_THROW(failing.write(path("c.gguf").string()), Error);
  EXPECT_FALSE(fs::exists(path("c.gguf")));
  EXPECT_FALSE(fs::exists(path("c.gguf.tmp")));
}

TEST_F(GgufWriterTest, WritesTheGgufLayoutByteForByte) {
  const float a[6] = {1, 2, 3, 4, 5, 6};
  const uint16_t b[2] = {0x3c00, 0xc000};
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("n", 7);
  w.add_tensor("a", DType::F32, {2, 3}, a, sizeof a);
  w.add_tensor("b", DType::F16, {2}, b, sizeof b);
  w.write(path("w.gguf").string());

  GgufBytes e(2, 2);
  e.kv_str("general.architecture", "llama");
  e.kv_u32("n", 7);
  e.tensor("a", {3, 2}, 0, 0);
  e.tensor("b", {2}, 1, 32);  // 24 bytes of "a" padded to 32
  e.pad(32);
  for (float x : a) e.put(x);
  e.pad(32);
  for (uint16_t x : b) e.put(x);
  e.pad(32);
  EXPECT_EQ(read_bytes(path("w.gguf")), e.b);
}

// llama.cpp's converter wrote the fixture; copying its metadata and tensors in order through
// the writer must give the very same file.
TEST_F(GgufWriterTest, ReproducesLlamaCppFixtureBytes) {
  for (const char* name : {"deepseek-v3-tiny/model-q8_0.gguf", "r1-distill-llama-tiny/model-bf16.gguf"}) {
    const fs::path src = kModels / name;
    REQUIRE_FIXTURE(src);
    SCOPED_TRACE(name);
    GgufFile g(src.string());
    GgufWriter w;
    copy_gguf(g, w);
    w.write(path("copy.gguf").string());
    const auto want = read_bytes(src), got = read_bytes(path("copy.gguf"));
    ASSERT_EQ(got.size(), want.size());
    const auto diff = std::mismatch(got.begin(), got.end(), want.begin());
    EXPECT_TRUE(diff.first == got.end()) << "first difference at byte " << (diff.first - got.begin());
  }
}

TEST_F(GgufWriterTest, HonoursGeneralAlignment) {
  for (uint32_t align : {1u, 8u, 64u, 4096u}) {
    SCOPED_TRACE(align);
    GgufWriter w;
    w.set_u32("general.alignment", align);
    const float f = 1.0f;
    const uint16_t h = 0x3f80;
    w.add_tensor("f", DType::F32, {1}, &f, 4);   // 4 bytes, then padding to the alignment
    w.add_tensor("h", DType::BF16, {1}, &h, 2);  // 2 bytes
    w.add_tensor("g", DType::F32, {1}, &f, 4);
    const std::string p = path("a.gguf").string();
    w.write(p);
    GgufFile g(p);
    EXPECT_EQ(g.alignment(), align);
    const auto& t = g.tensors();
    ASSERT_EQ(t.size(), 3u);
    EXPECT_EQ(uint64_t(t[1].data - t[0].data), std::max<uint64_t>(align, 4));
    EXPECT_EQ(uint64_t(t[2].data - t[1].data), std::max<uint64_t>(align, 2));
    for (auto& ti : t) EXPECT_EQ(reinterpret_cast<uintptr_t>(ti.data) % align, 0u);
    EXPECT_EQ(g.file_size() % align, 0u);
  }
}

TEST_F(GgufWriterTest, ReplacesAndRemovesKeys) {
  GgufWriter w;
  w.set_u32("a", 1);
  w.set_string("b", "x");
  w.set_f32("a", 2.5f);  // replaces in place: same position, new type
  w.set_u32("c", 3);
  w.remove("c");
  w.remove("not there");
  EXPECT_TRUE(w.has("a"));
  EXPECT_FALSE(w.has("c"));
  w.write(path("k.gguf").string());
  GgufFile g(path("k.gguf").string());
  ASSERT_EQ(g.metadata().size(), 2u);
  EXPECT_EQ(g.metadata()[0].first, "a");
  EXPECT_EQ(g.metadata()[0].second.type, GgufType::F32);
  EXPECT_EQ(*g.get_float("a"), 2.5);
  EXPECT_EQ(*g.get_string("b"), "x");
}

// Nested arrays: set_value copies them (the reader accepts them; llama.cpp does not).
TEST_F(GgufWriterTest, SetValueCopiesNestedArrays) {
  GgufBytes b(0, 1);
  b.key("nested", GgufType::ARRAY);
  b.u32(uint32_t(GgufType::ARRAY));
  b.u64(2);
  b.u32(uint32_t(GgufType::I32));
  b.u64(2);
  b.put<int32_t>(-1);
  b.put<int32_t>(2);
  b.u32(uint32_t(GgufType::STRING));
  b.u64(1);
  b.str("deep");
  b.pad(32);  // the writer pads to the alignment even without tensors
  GgufFile src(file("src.gguf", b.b));
  GgufWriter w;
  copy_gguf(src, w);
  w.write(path("dst.gguf").string());
  EXPECT_EQ(read_bytes(path("dst.gguf")), read_bytes(path("src.gguf")));
}

TEST_F(GgufWriterTest, RejectsInvalidInput) {
  const std::vector<uint8_t> buf(4096);
  GgufWriter w;
  w.add_tensor("dup", DType::F32, {2}, buf.data(), 8);
  EXPECT_WHALE_ERROR(w.add_tensor("dup", DType::F32, {2}, buf.data(), 8), "duplicate tensor 'dup'");
  EXPECT_WHALE_ERROR(w.add_tensor("", DType::F32, {2}, buf.data(), 8), "tensor name");
  EXPECT_WHALE_ERROR(w.add_tensor(std::string(64, 'n'), DType::F32, {2}, buf.data(), 8),
                     "64 bytes");
  EXPECT_WHALE_ERROR(w.add_tensor("nd0", DType::F32, {}, buf.data(), 4), "'nd0'", "0 dimensions");
  EXPECT_WHALE_ERROR(w.add_tensor("nd5", DType::F32, {1, 1, 1, 1, 1}, buf.data(), 4), "'nd5'",
                     "5 dimensions");
  EXPECT_WHALE_ERROR(w.add_tensor("neg", DType::F32, {-1}, buf.data(), 4), "'neg'", "shape");
  EXPECT_WHALE_ERROR(w.add_tensor("big", DType::F32, {int64_t(1) << 30, int64_t(1) << 30},
                                  buf.data(), 4), "'big'", "shape");
  EXPECT_WHALE_ERROR(w.add_tensor("q", DType::Q8_0, {2, 16}, buf.data(), 34), "'q'",
                     "not a multiple of the q8_0 block size 32");
  EXPECT_WHALE_ERROR(w.add_tensor("n", DType::F32, {2, 3}, buf.data(), 20), "'n'", "20 bytes",
                     "needs 24");
  EXPECT_WHALE_ERROR(w.add_tensor("f8", DType::F8_E4M3, {4}, buf.data(), 4), "'f8'",
                     "no f8_e4m3");
  EXPECT_WHALE_ERROR(w.add_tensor("null", DType::F32, {4}, nullptr, 16), "'null'", "no data");
  EXPECT_WHALE_ERROR(w.set_u32("", 1), "key");
  EXPECT_WHALE_ERROR(w.set_u32("general.alignment", 0), "general.alignment");
  EXPECT_WHALE_ERROR(w.set_u32("general.alignment", 48), "general.alignment");
  EXPECT_WHALE_ERROR(w.set_u64("general.alignment", 32), "general.alignment");
  EXPECT_EQ(w.tensor_count(), 1u);

  const std::string bad = (path("no such dir") / "x.gguf").string();
  EXPECT_WHALE_ERROR(w.write(bad), bad);
  EXPECT_FALSE(fs::exists(bad));
}

// =============================================================================================
// GgufFile on hostile files
// =============================================================================================

TEST_F(GgufReaderTest, EmptyFile) {
  const std::string p = file("empty.gguf", {});
  EXPECT_WHALE_ERROR(GgufFile(p), p, "not a GGUF file");
}

TEST_F(GgufReaderTest, BadMagic) {
  GgufBytes g(0, 0);
  g.b[3] = 'X';
  const std::string p = file("magic.gguf", g.b);
  EXPECT_WHALE_ERROR(GgufFile(p), p, "bad magic");
  const std::string q = file("short.gguf", {'G', 'G', 'U'});
  EXPECT_WHALE_ERROR(GgufFile(q), q, "bad magic");
}

TEST_F(GgufReaderTest, UnsupportedVersions) {
  const std::string v1 = file("v1.gguf", GgufBytes(0, 0, 1).b);
  EXPECT_WHALE_ERROR(GgufFile(v1), v1, "version 1 is not supported");
  for (uint32_t v : {0u, 4u, 99u, 0xFFFFFFFFu}) {
    const std::string p = file("v.gguf", GgufBytes(0, 0, v).b);
    EXPECT_WHALE_ERROR(GgufFile(p), p, fmt::format("unsupported GGUF version {}", v));
  }
}

TEST_F(GgufReaderTest, HugeCounts) {
  GgufBytes t(kHuge, 0);
  t.zeros(256);
  const std::string pt = file("tensors.gguf", t.b);
  EXPECT_WHALE_ERROR(GgufFile(pt), pt, "tensor count 1152921504606846976 exceeds");
  GgufBytes k(0, kHuge);
  k.zeros(256);
  const std::string pk = file("kv.gguf", k.b);
  EXPECT_WHALE_ERROR(GgufFile(pk), pk, "metadata count 1152921504606846976 exceeds");
  GgufBytes m(~uint64_t(0), ~uint64_t(0));
  const std::string pm = file("max.gguf", m.b);
  EXPECT_WHALE_ERROR(GgufFile(pm), pm, "exceeds what the file holds");
}

TEST_F(GgufReaderTest, HugeStringLengths) {
  GgufBytes key(0, 1);  // key length 2^60
  key.u64(kHuge);
  key.zeros(64);
  const std::string pk = file("key.gguf", key.b);
  EXPECT_WHALE_ERROR(GgufFile(pk), pk, "metadata key length 1152921504606846976");

  GgufBytes val(0, 1);  // string value length 2^60
  val.key("s", GgufType::STRING);
  val.u64(kHuge);
  val.zeros(64);
  const std::string pv = file("value.gguf", val.b);
  EXPECT_WHALE_ERROR(GgufFile(pv), pv, "truncated", "1152921504606846976 bytes");

  GgufBytes name(1, 0);  // tensor name length 2^60
  name.u64(kHuge);
  name.zeros(64);
  const std::string pn = file("name.gguf", name.b);
  EXPECT_WHALE_ERROR(GgufFile(pn), pn, "tensor name length 1152921504606846976");
}

TEST_F(GgufReaderTest, HugeArrayCounts) {
  for (GgufType elem : {GgufType::U8, GgufType::U64, GgufType::STRING, GgufType::ARRAY}) {
    SCOPED_TRACE(gguf_type_name(elem));
    for (uint64_t count : {kHuge, ~uint64_t(0)}) {
      GgufBytes g(0, 1);
      g.key("arr", GgufType::ARRAY);
      g.u32(uint32_t(elem));
      g.u64(count);
      g.zeros(64);
      const std::string p = file("arr.gguf", g.b);
      EXPECT_WHALE_ERROR(GgufFile(p), p, "key 'arr'", fmt::format("declares {} elements", count));
    }
  }
}

TEST_F(GgufReaderTest, UnknownValueTypes) {
  for (uint32_t type : {13u, 0xFFFFFFFFu}) {
    GgufBytes g(0, 1);
    g.key("k", GgufType(type));
    g.zeros(16);
    const std::string p = file("type.gguf", g.b);
    EXPECT_WHALE_ERROR(GgufFile(p), p, fmt::format("key 'k' has unknown value type {}", type));

    GgufBytes a(0, 1);
    a.key("a", GgufType::ARRAY);
    a.u32(type);
    a.u64(1);
    a.zeros(16);
    const std::string pa = file("elem.gguf", a.b);
    EXPECT_WHALE_ERROR(GgufFile(pa), pa, fmt::format("unknown array element type {}", type));
  }
}

TEST_F(GgufReaderTest, BoolMustBeZeroOrOne) {
  GgufBytes g(0, 1);
  g.key("flag", GgufType::BOOL);
  g.u8(2);
  const std::string p = file("bool.gguf", g.b);
  EXPECT_WHALE_ERROR(GgufFile(p), p, "'flag'", "bool value 2");
}

TEST_F(GgufReaderTest, UnknownTensorTypes) {
  // 10 is Q2_K (a ggml type whale does not read), 99 no type at all, 0xFFFFFFFF is -1 as int.
  for (uint32_t type : {10u, 99u, 0x7FFFFFFFu, 0xFFFFFFFFu}) {
    const std::string p = file("type.gguf", gguf_one_tensor({32}, type, 0, 256));
    EXPECT_WHALE_ERROR(GgufFile(p), p, fmt::format("tensor 'w' has unsupported type {}", type));
  }
}

TEST_F(GgufReaderTest, DimensionCount) {
  const std::string p0 = file("d0.gguf", gguf_one_tensor({}, kGgmlF32, 0));
  EXPECT_WHALE_ERROR(GgufFile(p0), p0, "tensor 'w' has 0 dimensions");
  const std::string p5 = file("d5.gguf", gguf_one_tensor({1, 1, 1, 1, 1}, kGgmlF32, 0));
  EXPECT_WHALE_ERROR(GgufFile(p5), p5, "tensor 'w' has 5 dimensions");
  GgufBytes g(1, 0);  // n_dims 2^31: must not size anything from it
  g.str("w");
  g.u32(0x80000000u);
  g.zeros(64);
  const std::string pb = file("dbig.gguf", g.b);
  EXPECT_WHALE_ERROR(GgufFile(pb), pb, "2147483648 dimensions");
}

TEST_F(GgufReaderTest, DimensionsThatOverflow) {
  const uint64_t d32 = uint64_t(1) << 32, d20 = uint64_t(1) << 20;
  for (const std::vector<uint64_t>& ne :
       {std::vector<uint64_t>{d32, d32, d32}, {uint64_t(1) << 63}, {d20, d20, d20, d20},
        {~uint64_t(0)}, {32, ~uint64_t(0)}}) {
    const std::string p = file("dims.gguf", gguf_one_tensor(ne, kGgmlF32, 0));
    EXPECT_WHALE_ERROR(GgufFile(p), p, "tensor 'w' dimensions overflow");
  }
}

TEST_F(GgufReaderTest, RowNotAMultipleOfTheBlock) {
  const std::string p = file("q.gguf", gguf_one_tensor({16, 2}, kGgmlQ8_0, 0));
  EXPECT_WHALE_ERROR(GgufFile(p), p, "tensor 'w' row length 16 is not a multiple");
}

TEST_F(GgufReaderTest, OffsetNotAligned) {
  const std::string p = file("off.gguf", gguf_one_tensor({4}, kGgmlF32, 4));
  EXPECT_WHALE_ERROR(GgufFile(p), p, "tensor 'w' offset 4 is not aligned to 32");
  GgufBytes g(1, 1);
  g.kv_u32("general.alignment", 64);
  g.tensor("w", {4}, kGgmlF32, 32);
  g.pad(64);
  g.zeros(128);
  const std::string p64 = file("off64.gguf", g.b);
  EXPECT_WHALE_ERROR(GgufFile(p64), p64, "tensor 'w' offset 32 is not aligned to 64");
}

TEST_F(GgufReaderTest, TensorOutsideTheFile) {
  const std::string far = file("far.gguf", gguf_one_tensor({4}, kGgmlF32, uint64_t(1) << 40));
  EXPECT_WHALE_ERROR(GgufFile(far), far, "tensor 'w'", "lies outside the file");
  const std::string wrap = file("wrap.gguf", gguf_one_tensor({4}, kGgmlF32, ~uint64_t(31)));
  EXPECT_WHALE_ERROR(GgufFile(wrap), wrap, "tensor 'w'", "lies outside the file");
  const std::string big = file("big.gguf", gguf_one_tensor({1000}, kGgmlF32, 0, 64));
  EXPECT_WHALE_ERROR(GgufFile(big), big, "tensor 'w' (4000 bytes", "lies outside the file");
  const std::string end = file("end.gguf", gguf_one_tensor({16}, kGgmlF32, 32, 64));
  EXPECT_WHALE_ERROR(GgufFile(end), end, "lies outside the file");
  GgufBytes g(1, 0);  // the data section itself would start past the end of the file
  g.tensor("w", {4}, kGgmlF32, 0);
  const std::string nodata = file("nodata.gguf", g.b);
  EXPECT_WHALE_ERROR(GgufFile(nodata), nodata, "tensor data would start at");
}

TEST_F(GgufReaderTest, DuplicateTensorNames) {
  GgufBytes g(2, 0);
  g.tensor("w", {8}, kGgmlF32, 0);
  g.tensor("w", {8}, kGgmlF32, 32);
  g.pad(32);
  g.zeros(64);
  const std::string p = file("dup.gguf", g.b);
  EXPECT_WHALE_ERROR(GgufFile(p), p, "duplicate tensor 'w'");
}

TEST_F(GgufReaderTest, DuplicateKeys) {
  GgufBytes g(0, 2);
  g.kv_u32("general.x", 1);
  g.kv_str("general.x", "again");
  const std::string p = file("dup.gguf", g.b);
  EXPECT_WHALE_ERROR(GgufFile(p), p, "duplicate GGUF key 'general.x'");
}

TEST_F(GgufReaderTest, BadAlignment) {
  for (uint32_t a : {0u, 3u, 48u, 0x80000000u}) {
    GgufBytes g(0, 1);
    g.kv_u32("general.alignment", a);
    const std::string p = file("align.gguf", g.b);
    EXPECT_WHALE_ERROR(GgufFile(p), p, "general.alignment must be a power of two");
  }
  GgufBytes s(0, 1);
  s.kv_str("general.alignment", "32");
  const std::string ps = file("align_str.gguf", s.b);
  EXPECT_WHALE_ERROR(GgufFile(ps), ps, "general.alignment");
}

// Writes `depth` arrays nested in each other, the innermost holding one u8.
std::vector<uint8_t> nested_arrays(int depth) {
  GgufBytes g(0, 1);
  g.key("deep", GgufType::ARRAY);
  for (int d = 1; d < depth; ++d) {
    g.u32(uint32_t(GgufType::ARRAY));
    g.u64(1);
  }
  g.u32(uint32_t(GgufType::U8));
  g.u64(1);
  g.u8(7);
  return g.b;
}

TEST_F(GgufReaderTest, ArraysNestedTooDeep) {
  for (int depth : {5, 64, 100000}) {
    const std::string p = file("deep.gguf", nested_arrays(depth));
    EXPECT_WHALE_ERROR(GgufFile(p), p, "key 'deep'", "nested deeper than 4");
  }
}

// ---- well-formed edge cases ----------------------------------------------------------------

TEST_F(GgufReaderTest, MinimalFilesLoad) {
  for (uint32_t version : {2u, 3u}) {
    GgufFile g(file("min.gguf", GgufBytes(0, 0, version).b));  // 24 bytes, nothing else
    EXPECT_EQ(g.version(), version);
    EXPECT_TRUE(g.metadata().empty());
    EXPECT_TRUE(g.tensors().empty());
    EXPECT_EQ(g.alignment(), 32u);
    EXPECT_EQ(g.find("general.architecture"), nullptr);
    EXPECT_FALSE(g.get_string("general.architecture"));
  }
  GgufBytes m(0, 1);  // metadata, zero tensors, no padding after it
  m.kv_str("general.name", "x");
  GgufFile g(file("meta.gguf", m.b));
  EXPECT_EQ(*g.get_string("general.name"), "x");
  EXPECT_WHALE_ERROR(g.get_int("general.name"), "general.name", "should be an integer");

  GgufBytes z(1, 0);  // an empty tensor at the very end of the file
  z.tensor("empty", {0, 4}, kGgmlF32, 0);
  z.pad(32);
  GgufFile ge(file("empty_tensor.gguf", z.b));
  ASSERT_EQ(ge.tensors().size(), 1u);
  EXPECT_EQ(ge.tensors()[0].nbytes, 0u);
}

TEST_F(GgufReaderTest, NestedArraysDepthTwoLoad) {
  GgufBytes g(0, 2);
  g.key("matrix", GgufType::ARRAY);  // [[1, 2, 3], [4]]
  g.u32(uint32_t(GgufType::ARRAY));
  g.u64(2);
  g.u32(uint32_t(GgufType::I32));
  g.u64(3);
  for (int32_t v : {1, 2, 3}) g.put(v);
  g.u32(uint32_t(GgufType::I32));
  g.u64(1);
  g.put<int32_t>(4);
  g.key("words", GgufType::ARRAY);  // [["a", "bc"], []]
  g.u32(uint32_t(GgufType::ARRAY));
  g.u64(2);
  g.u32(uint32_t(GgufType::STRING));
  g.u64(2);
  g.str("a");
  g.str("bc");
  g.u32(uint32_t(GgufType::STRING));
  g.u64(0);
  GgufFile f(file("nested.gguf", g.b));
  const GgufValue* m = f.find("matrix");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->elem_type, GgufType::ARRAY);
  ASSERT_EQ(m->items.size(), 2u);
  EXPECT_EQ(m->items[0].count, 3u);
  EXPECT_EQ(m->items[0].array_i64(2), 3);
  EXPECT_EQ(m->items[1].array_i64(0), 4);
  const GgufValue* w = f.find("words");
  ASSERT_TRUE(w);
  ASSERT_EQ(w->items.size(), 2u);
  ASSERT_EQ(w->items[0].strs.size(), 2u);
  EXPECT_EQ(w->items[0].strs[1], "bc");
  EXPECT_TRUE(w->items[1].strs.empty());
  GgufFile four(file("four.gguf", nested_arrays(4)));  // the deepest allowed
  EXPECT_EQ(four.find("deep")->items[0].items[0].items[0].array_i64(0), 7);
}

// =============================================================================================
// The fixture GGUFs: all parse; every truncation of one fails cleanly
// =============================================================================================

std::vector<fs::path> fixture_ggufs() {
  std::vector<fs::path> out;
  if (!fs::exists(kModels)) return out;
  for (auto& e : fs::recursive_directory_iterator(kModels))
    if (e.path().extension() == ".gguf") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(GgufFixtureTest, AllFixtureGgufsParse) {
  const auto files = fixture_ggufs();
  if (files.empty()) GTEST_SKIP() << "no fixture GGUFs under " << kModels;
  for (auto& p : files) {
    SCOPED_TRACE(p.string());
    GgufFile g(p.string());
    EXPECT_EQ(g.version(), 3u);
    EXPECT_TRUE(g.get_string("general.architecture"));
    ASSERT_FALSE(g.tensors().empty());
    uint64_t total = 0;
    for (auto& t : g.tensors()) {
      EXPECT_EQ(g.find_tensor(t.name), &t);
      EXPECT_EQ(*t.file, p.string());
      total += t.nbytes;
    }
    EXPECT_LE(total, g.file_size());
    auto m = ModelFiles::open(p.string());
    EXPECT_GT(m->config().n_layer, 0);
  }
}

// Region boundaries of a well-formed GGUF, found by walking it independently of GgufFile.
struct GgufRegions {
  uint64_t infos = 0;     // first tensor info
  uint64_t data = 0;      // data section
  uint64_t data_end = 0;  // end of the last tensor's bytes
};

GgufRegions gguf_regions(const std::vector<uint8_t>& f, uint64_t alignment) {
  uint64_t pos = 8;
  auto rd = [&](auto v) {
    if (pos + sizeof v > f.size()) throw std::runtime_error("gguf_regions: ran off the file");
    std::memcpy(&v, f.data() + pos, sizeof v);
    pos += sizeof v;
    return v;
  };
  static const uint64_t kScalar[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  std::function<void(uint32_t)> skip = [&](uint32_t type) {
    if (type == uint32_t(GgufType::STRING)) {
      pos += rd(uint64_t());
    } else if (type == uint32_t(GgufType::ARRAY)) {
      const uint32_t elem = rd(uint32_t());
      const uint64_t n = rd(uint64_t());
      if (kScalar[elem]) pos += n * kScalar[elem];
      else for (uint64_t k = 0; k < n; ++k) skip(elem);
    } else {
      pos += kScalar[type];
    }
  };
  GgufRegions r;
  const uint64_t n_tensors = rd(uint64_t()), n_kv = rd(uint64_t());
  for (uint64_t k = 0; k < n_kv; ++k) {
    pos += rd(uint64_t());  // key
    skip(rd(uint32_t()));
  }
  r.infos = pos;
  uint64_t end = 0;
  for (uint64_t k = 0; k < n_tensors; ++k) {
    pos += rd(uint64_t());  // name
    const uint32_t n_dims = rd(uint32_t());
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) numel *= rd(uint64_t());
    const uint32_t type = rd(uint32_t());
    const uint64_t offset = rd(uint64_t());
    end = std::max(end, offset + *dtype_bytes(*dtype_from_ggml(type), numel));
  }
  r.data = (pos + alignment - 1) / alignment * alignment;
  r.data_end = r.data + end;
  return r;
}

TEST_F(GgufFixtureTest, EveryTruncationThrows) {
  const fs::path src = kModels / "deepseek-v3-tiny" / "model-q8_0.gguf";
  REQUIRE_FIXTURE(src);
  const auto full = read_bytes(src);
  const GgufRegions r = gguf_regions(full, GgufFile(src.string()).alignment());
  ASSERT_LT(200u, r.infos);
  ASSERT_LT(r.infos, r.data);
  ASSERT_LT(r.data, r.data_end);
  ASSERT_LE(r.data_end, full.size());

  // Every length in the first 200 bytes, ~50 spread over the metadata, the tensor infos and
  // the data, and each boundary. Cutting only padding after the last tensor is still valid.
  std::set<uint64_t> lengths;
  for (uint64_t n = 0; n < 200; ++n) lengths.insert(n);
  auto spread = [&](uint64_t lo, uint64_t hi, int n) {
    for (int k = 0; k < n; ++k) lengths.insert(lo + (hi - lo) * uint64_t(k) / uint64_t(n));
  };
  spread(200, r.infos, 15);
  spread(r.infos, r.data, 15);
  spread(r.data, r.data_end, 20);
  for (uint64_t b : {r.infos - 1, r.infos, r.infos + 1, r.data - 1, r.data, r.data + 1,
                     r.data_end - 1})
    lengths.insert(b);

  const std::string p = path("cut.gguf").string();
  for (uint64_t n : lengths) {
    SCOPED_TRACE(fmt::format("truncated to {} of {} bytes", n, full.size()));
    write_bytes(p, full.data(), n);
    const std::string msg = whale_error([&] { GgufFile g(p); });
    if (msg.empty()) continue;
    EXPECT_NE(msg.find(p), std::string::npos) << msg;
    const bool says_why = msg.find("truncated") != std::string::npos ||
                          msg.find("outside the file") != std::string::npos ||
                          msg.find("exceeds what the file holds") != std::string::npos ||
                          msg.find("not a GGUF file") != std::string::npos;
    EXPECT_TRUE(says_why) << msg;
  }
  write_bytes(p, full.data(), r.data_end);  // only the trailing padding cut: still valid
  EXPECT_NO_THROW(GgufFile g(p));
}

// =============================================================================================
// SafetensorsFile on hostile files
// =============================================================================================

// One-tensor header around `entry` (the value of tensor "w"), with `data_bytes` of data.
std::vector<uint8_t> st_entry(std::string_view entry, size_t data_bytes = 16) {
  return safetensors_raw(fmt::format("{{\"w\": {}}}", entry), data_bytes);
}

TEST_F(SafetensorsTest, ShorterThanTheLengthField) {
  for (size_t n : {0, 1, 7}) {
    const std::string p = file("short.safetensors", std::vector<uint8_t>(n, 0));
    EXPECT_WHALE_ERROR(SafetensorsFile(p), p, "truncated safetensors file");
  }
}

TEST_F(SafetensorsTest, HeaderLongerThanTheFile) {
  for (uint64_t len : {uint64_t(100), kHuge, ~uint64_t(0), ~uint64_t(0) - 7}) {
    Bytes b;
    b.u64(len);
    b.raw("{}");
    const std::string p = file("len.safetensors", b.b);
    EXPECT_WHALE_ERROR(SafetensorsFile(p), p, fmt::format("header length {} exceeds", len));
  }
}

TEST_F(SafetensorsTest, HeaderNotJson) {
  const std::string_view headers[] = {"",         "{", "{\"w\": }", "not json", "{\"a\":1}garbage",
                                     {"\0\0\0\0", 4}, "\xff\xfe{}"};
  for (std::string_view h : headers) {
    const std::string p = file("bad.safetensors", safetensors_raw(h));
    EXPECT_WHALE_ERROR(SafetensorsFile(p), p, "header is not a valid JSON object");
  }
}

TEST_F(SafetensorsTest, HeaderNotAnObject) {
  for (std::string_view h : {"[]", "[1, 2]", "\"w\"", "42", "null", "true"}) {
    const std::string p = file("array.safetensors", safetensors_raw(h));
    EXPECT_WHALE_ERROR(SafetensorsFile(p), p, "header is not a valid JSON object");
  }
}

TEST_F(SafetensorsTest, DeeplyNestedHeader) {
  // Balanced and unbalanced nesting a million deep: no recursion may follow it.
  const size_t depth = 1000000;
  std::string balanced = "{\"w\": " + std::string(depth, '[') + std::string(depth, ']') + "}";
  const std::string p = file("deep.safetensors", safetensors_raw(balanced));
  EXPECT_WHALE_ERROR(SafetensorsFile(p), p, "tensor 'w'", "needs dtype, shape and data_offsets");
  const std::string q = file("open.safetensors", safetensors_raw(std::string(depth, '[')));
  EXPECT_WHALE_ERROR(SafetensorsFile(q), q, "not a valid JSON object");
}

TEST_F(SafetensorsTest, EntryMissingFields) {
  for (std::string_view e : {
           R"({"shape": [4], "data_offsets": [0, 16]})",                 // no dtype
           R"({"dtype": "F32", "data_offsets": [0, 16]})",               // no shape
           R"({"dtype": "F32", "shape": [4]})",                          // no data_offsets
           R"({"dtype": 5, "shape": [4], "data_offsets": [0, 16]})",     // dtype not a string
           R"({"dtype": "F32", "shape": 4, "data_offsets": [0, 16]})",   // shape not an array
           R"({"dtype": "F32", "shape": [4], "data_offsets": [16]})",    // one offset
           R"({"dtype": "F32", "shape": [4], "data_offsets": [0, 8, 16]})",
           R"({"dtype": "F32", "shape": [4], "data_offsets": {"a": 0}})",
           R"("F32")", R"([4])", R"(null)"}) {
    const std::string p = file("fields.safetensors", st_entry(e));
    EXPECT_WHALE_ERROR(SafetensorsFile(p), p, "tensor 'w'", "needs dtype, shape and data_offsets");
  }
}

TEST_F(SafetensorsTest, UnknownDtype) {
  for (std::string_view dt : {"F7", "I64", "f32", "", "Q8_0"}) {
    const std::string p = file("dtype.safetensors", st_entry(fmt::format(
        R"({{"dtype": "{}", "shape": [4], "data_offsets": [0, 16]}})", dt)));
    EXPECT_WHALE_ERROR(SafetensorsFile(p), p, fmt::format("tensor 'w' has unsupported dtype {}", dt));
  }
}

TEST_F(SafetensorsTest, ShapeNotNonNegativeIntegers) {
  for (std::string_view shape : {"[-1]", "[4, -4]", "[1.5]", "[4.0]", "[\"4\"]", "[true]",
                                 "[null]", "[[4]]", "[1e30]"}) {
    const std::string p = file("shape.safetensors", st_entry(fmt::format(
        R"({{"dtype": "F32", "shape": {}, "data_offsets": [0, 16]}})", shape)));
    EXPECT_WHALE_ERROR(SafetensorsFile(p), p, "tensor 'w'", "shape must hold non-negative integers");
  }
}

TEST_F(SafetensorsTest, ShapeThatOverflows) {
  for (std::string_view shape : {"[1099511627777]", "[1073741824, 1073741824]",
                                 "[9223372036854775808]", "[18446744073709551615]",
                                 "[65536, 65536, 65536, 65536]"}) {
    const std::string p = file("shape.safetensors", st_entry(fmt::format(
        R"({{"dtype": "F32", "shape": {}, "data_offsets": [0, 16]}})", shape)));
    EXPECT_WHALE_ERROR(SafetensorsFile(p), p, "tensor 'w' shape overflows");
  }
}

TEST_F(SafetensorsTest, DataOffsetsOutOfRange) {
  struct Case { std::string_view offsets, problem; };
  for (auto [offsets, problem] : {
           Case{"[0, 32]", "data [0, 32) lies outside the file (data size 16)"},
           Case{"[8, 4]", "data [8, 4) lies outside the file"},
           Case{"[16, 32]", "lies outside the file"},
           Case{"[18446744073709551600, 18446744073709551615]", "lies outside the file"},
           Case{"[-16, 0]", "data_offsets must be non-negative integers"},
           Case{"[0, 16.0]", "data_offsets must be non-negative integers"},
           Case{"[\"0\", 16]", "data_offsets must be non-negative integers"}}) {
    const std::string p = file("offsets.safetensors", st_entry(fmt::format(
        R"({{"dtype": "F32", "shape": [4], "data_offsets": {}}})", offsets)));
    EXPECT_WHALE_ERROR(SafetensorsFile(p), p, "tensor 'w'", std::string(problem));
  }
}

TEST_F(SafetensorsTest, SizeMismatchBetweenShapeAndOffsets) {
  const std::string p = file("size.safetensors", st_entry(
      R"({"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]})"));
  EXPECT_WHALE_ERROR(SafetensorsFile(p), p, "tensor 'w' is 12 bytes but f32 [2, 2] needs 16");
  const std::string q = file("size2.safetensors", st_entry(
      R"({"dtype": "BF16", "shape": [], "data_offsets": [0, 16]})"));
  EXPECT_WHALE_ERROR(SafetensorsFile(q), q, "tensor 'w' is 16 bytes but bf16 [] needs 2");
}

TEST_F(SafetensorsTest, WellFormedEdgeCasesLoad) {
  EXPECT_TRUE(SafetensorsFile(file("empty.safetensors", safetensors_raw("{}"))).tensors().empty());
  EXPECT_TRUE(SafetensorsFile(file("meta.safetensors",
                                   safetensors_raw(R"({"__metadata__": {"format": "pt"}})")))
                  .tensors().empty());
  // A zero-size tensor, a scalar, and an unpadded (odd-length) header: data stays unaligned.
  const std::string h =
      R"({"z": {"dtype": "F32", "shape": [0, 4], "data_offsets": [0, 0]},)"
      R"( "s": {"dtype": "BF16", "shape": [], "data_offsets": [0, 2]},)"
      R"( "v": {"dtype": "F32", "shape": [2], "data_offsets": [2, 10]}})";
  Bytes b;
  b.u64(h.size());
  b.raw(h);
  b.put<uint16_t>(0x3f80);
  b.put(1.5f);
  b.put(-2.0f);
  SafetensorsFile f(file("edge.safetensors", b.b));
  ASSERT_EQ(f.tensors().size(), 3u);
  for (auto& t : f.tensors()) {
    if (t.name == "v") {
      float v[2];
      std::memcpy(v, t.data, 8);
      EXPECT_EQ(v[0], 1.5f);
      EXPECT_EQ(v[1], -2.0f);
    }
    if (t.name == "z") {
      EXPECT_EQ(t.nbytes, 0u);
    }
    if (t.name == "s") {
      EXPECT_EQ(t.numel(), 1);
    }
  }
}

// =============================================================================================
// SafetensorsSet and model.safetensors.index.json
// =============================================================================================

class SafetensorsIndexTest : public TempDirTest {
 protected:
  // Two shards: a.safetensors holds x, b.safetensors holds y.
  void SetUp() override {
    std::vector<uint8_t> four(16, 0);
    write_bytes(path("a.safetensors"), safetensors_bytes({{"x", "F32", {4}, four}}));
    write_bytes(path("b.safetensors"), safetensors_bytes({{"y", "F32", {2, 2}, four}}));
  }
  std::string index_path() const { return path("model.safetensors.index.json").string(); }
  void index(const json& weight_map) {
    write_text(index_path(), json{{"metadata", {{"total_size", 32}}}, {"weight_map", weight_map}}.dump());
  }
  std::string dir() const { return dir_.string(); }
};

TEST_F(SafetensorsIndexTest, ValidIndexLoads) {
  index({{"x", "a.safetensors"}, {"y", "b.safetensors"}});
  SafetensorsSet s(dir());
  ASSERT_TRUE(s.find("x"));
  ASSERT_TRUE(s.find("y"));
  EXPECT_EQ(s.find("y")->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(s.all().size(), 2u);
  EXPECT_FALSE(s.find("z"));
}

TEST_F(SafetensorsIndexTest, IndexNamesAMissingShard) {
  index({{"x", "a.safetensors"}, {"y", "c.safetensors"}});
  EXPECT_WHALE_ERROR(SafetensorsSet(dir()), path("c.safetensors").string(), "missing");
}

TEST_F(SafetensorsIndexTest, IndexEntryNotInItsShard) {
  index({{"x", "b.safetensors"}, {"y", "a.safetensors"}});  // filed under each other's shard
  EXPECT_WHALE_ERROR(SafetensorsSet(dir()), index_path(), "tensor 'x' is in",
                     "the index says b.safetensors");
  index({{"x", "a.safetensors"}, {"y", "b.safetensors"}, {"z", "a.safetensors"}});
  EXPECT_WHALE_ERROR(SafetensorsSet(dir()), index_path(), "tensor 'z' listed in the index is in no shard");
}

TEST_F(SafetensorsIndexTest, ShardNameOutsideTheFolder) {
  for (std::string_view shard : {"../a.safetensors", "sub/a.safetensors", "/etc/passwd", ".."}) {
    index({{"x", shard}});
    EXPECT_WHALE_ERROR(SafetensorsSet(dir()), index_path(), "names a path outside the folder");
  }
  for (std::string_view shard : {".", ""}) {  // the folder itself: not a shard file
    index({{"x", shard}});
    EXPECT_WHALE_ERROR(SafetensorsSet(dir()), dir());
  }
}

TEST_F(SafetensorsIndexTest, MalformedIndex) {
  for (std::string_view text : {"", "{", "[]", "{\"weight_map\": []}", "{\"metadata\": {}}",
                                "{\"weight_map\": {\"x\": 5}}", "{\"weight_map\": {\"x\": null}}"}) {
    write_text(index_path(), text);
    EXPECT_WHALE_ERROR(SafetensorsSet(dir()), index_path());
  }
  write_text(index_path(), "{\"weight_map\": {}}");  // names no shard at all
  EXPECT_WHALE_ERROR(SafetensorsSet(dir()), dir(), "no *.safetensors files");
}

TEST_F(SafetensorsIndexTest, WithoutIndexTensorNamesMustBeUnique) {
  SafetensorsSet ok(dir());  // no index: every *.safetensors in the folder
  EXPECT_EQ(ok.all().size(), 2u);
  write_bytes(path("c.safetensors"), safetensors_bytes({{"x", "F32", {4}, std::vector<uint8_t>(16)}}));
  EXPECT_WHALE_ERROR(SafetensorsSet(dir()), "tensor 'x' appears in more than one shard");
  fs::remove(path("a.safetensors"));
  fs::remove(path("b.safetensors"));
  fs::remove(path("c.safetensors"));
  EXPECT_WHALE_ERROR(SafetensorsSet(dir()), dir(), "no *.safetensors files");
}

TEST_F(SafetensorsIndexTest, BrokenShardNamesTheShard) {
  index({{"x", "a.safetensors"}, {"y", "b.safetensors"}});
  write_bytes(path("b.safetensors"), safetensors_raw("{\"y\": 1}"));
  EXPECT_WHALE_ERROR(SafetensorsSet(dir()), path("b.safetensors").string(), "tensor 'y'");
}

TEST_F(Fp8FixtureTest, MultiShardFolderLoads) {
  const fs::path dir = kModels / "deepseek-v3-tiny-fp8" / "hf";
  REQUIRE_FIXTURE(dir);
  SafetensorsSet set(dir.string());
  std::ifstream in(dir / "model.safetensors.index.json");
  const json index = json::parse(in);
  std::set<std::string> shards;
  size_t fp8 = 0;
  for (auto& [name, shard] : index["weight_map"].items()) {
    const TensorRef* t = set.find(name);
    ASSERT_TRUE(t) << name;
    EXPECT_EQ(fs::path(*t->file).filename(), shard.get<std::string>());
    shards.insert(shard.get<std::string>());
    if (t->dtype == DType::F8_E4M3) {
      ++fp8;
      const std::string scale = name.substr(0, name.size() - 7) + ".weight_scale_inv";
      const TensorRef* s = set.find(scale);
      ASSERT_TRUE(s) << scale;
      EXPECT_EQ(s->file, t->file) << "a weight and its scale share a shard";
    }
  }
  EXPECT_EQ(shards.size(), 2u);
  EXPECT_GT(fp8, 0u);
  EXPECT_EQ(set.all().size(), index["weight_map"].size());
  auto model = load_model(dir.string());
  EXPECT_EQ(model->config().arch, Arch::Deepseek2);
}

TEST_F(Fp8FixtureTest, ShardRemovedOrMisfiled) {
  const fs::path src = kModels / "deepseek-v3-tiny-fp8" / "hf";
  REQUIRE_FIXTURE(src);
  const fs::path dir = copy_fixture(src, "fp8");
  const fs::path shard2 = dir / "model-00002-of-00002.safetensors";
  const fs::path index_path = dir / "model.safetensors.index.json";
  json index = json::parse(std::ifstream(index_path));

  // An entry filed under the wrong shard.
  json moved = index;
  for (auto& [name, shard] : moved["weight_map"].items()) {
    if (shard == "model-00002-of-00002.safetensors") {
      shard = "model-00001-of-00002.safetensors";
      write_text(index_path, moved.dump());
      EXPECT_WHALE_ERROR(load_model(dir.string()), index_path.string(),
                         fmt::format("tensor '{}' is in", name));
      break;
    }
  }
  write_text(index_path, index.dump());
  fs::remove(shard2);
  EXPECT_WHALE_ERROR(load_model(dir.string()), shard2.string(), "missing");
}

// =============================================================================================
// Hugging Face folders: damaged copies of deepseek-v3-tiny/hf
// =============================================================================================

class HfTest : public TempDirTest {
 protected:
  void SetUp() override {
    const fs::path src = kModels / "deepseek-v3-tiny" / "hf";
    if (!fs::exists(src)) GTEST_SKIP() << "fixture missing: " << src;
    dir = copy_fixture(src, "hf");
    config_path = (dir / "config.json").string();
    config = json::parse(std::ifstream(config_path));
  }
  // Rewrites config.json with `key` set to `value` (a JSON text).
  void set_config(const std::string& key, std::string_view value) {
    json c = config;
    c[key] = json::parse(value);
    write_text(config_path, c.dump(2));
  }
  std::vector<StTensor> tensors() const { return read_safetensors(dir / "model.safetensors"); }
  void write_tensors(const std::vector<StTensor>& ts) {
    write_bytes(dir / "model.safetensors", safetensors_bytes(ts));
  }
  std::string model() const { return dir.string(); }

  fs::path dir;
  std::string config_path;
  json config;
};

TEST_F(HfTest, UndamagedCopyLoads) {
  auto m = load_model(model());
  EXPECT_EQ(m->config().n_layer, 3);
  EXPECT_TRUE(m->unused_tensors().empty());  // the MTP layer is recognised, not "unused"
  write_tensors(tensors());  // our own safetensors writer gives a loadable file too
  EXPECT_NO_THROW(load_model(model()));
}

TEST_F(HfTest, ConfigMissing) {
  fs::remove(config_path);
  EXPECT_WHALE_ERROR(load_model(model()), model(), "has no config.json");
}

TEST_F(HfTest, ConfigMalformed) {
  for (std::string_view text : {"", "{", "{\"model_type\": \"deepseek_v3\",}", "[]", "\"x\""}) {
    write_text(config_path, text);
    EXPECT_WHALE_ERROR(load_model(model()), config_path, "not a valid JSON object");
  }
}

TEST_F(HfTest, ConfigWrongTypes) {
  struct Case { const char* key; const char* value; const char* problem; };
  for (auto [key, value, problem] : {
           Case{"hidden_size", "\"abc\"", "'hidden_size' should be an integer"},
           Case{"hidden_size", "1.5", "'hidden_size' should be an integer"},
           Case{"hidden_size", "1e300", "'hidden_size' should be an integer"},
           Case{"hidden_size", "-1e300", "'hidden_size' should be an integer"},
           Case{"num_hidden_layers", "[3]", "'num_hidden_layers' should be an integer"},
           Case{"rms_norm_eps", "\"small\"", "'rms_norm_eps' should be a number"},
           Case{"norm_topk_prob", "1", "'norm_topk_prob' should be true or false"},
           Case{"model_type", "3", "'model_type' should be a string"},
           Case{"rope_scaling", "5", "'rope_scaling' should be an object"},
           Case{"eos_token_id", "\"</s>\"", "'eos_token_id' should be a token id"},
           Case{"hidden_size", "-128", "hidden size = -128 is out of range"},
           Case{"hidden_size", "0", "hidden size = 0 is out of range"},
           Case{"vocab_size", "9223372036854775807", "vocab size"},
           Case{"num_attention_heads", "18446744073709551615", "head count"},
           Case{"n_shared_experts", "4611686018427387904", "n_shared_experts"},
           Case{"n_shared_experts", "-1", "n_shared_experts"},
           Case{"num_nextn_predict_layers", "9223372036854775807", "num_nextn_predict_layers"},
           Case{"scoring_func", "\"relu\"", "scoring_func 'relu' is not supported"}}) {
    SCOPED_TRACE(fmt::format("{} = {}", key, value));
    set_config(key, value);
    EXPECT_WHALE_ERROR(load_model(model()), config_path, problem);
  }
}

TEST_F(HfTest, UnsupportedModelType) {
  set_config("model_type", "\"gpt2\"");
  EXPECT_WHALE_ERROR(load_model(model()), config_path, "model_type 'gpt2' is not supported");
  json c = config;
  c.erase("model_type");
  write_text(config_path, c.dump());
  EXPECT_WHALE_ERROR(load_model(model()), config_path, "model_type '' is not supported");
}

TEST_F(HfTest, MissingTensor) {
  const std::string gone = "model.layers.1.self_attn.kv_a_layernorm.weight";
  auto ts = tensors();
  std::erase_if(ts, [&](const StTensor& t) { return t.name == gone; });
  write_tensors(ts);
  EXPECT_WHALE_ERROR(load_model(model()), model(), "missing tensor '" + gone + "'");
}

TEST_F(HfTest, TensorWithWrongShape) {
  const std::string matrix = "model.layers.0.self_attn.q_a_proj.weight";  // [96, 128]
  auto ts = tensors();
  find_st(ts, matrix).shape = {128, 96};
  write_tensors(ts);
  EXPECT_WHALE_ERROR(load_model(model()), (dir / "model.safetensors").string(),
                     "tensor '" + matrix + "' has shape [128, 96]",
                     "expected 96 rows of 128");

  const std::string norm = "model.norm.weight";  // [128]
  ts = tensors();
  find_st(ts, matrix).shape = {96, 128};
  find_st(ts, norm).shape = {2, 64};
  write_tensors(ts);
  EXPECT_WHALE_ERROR(load_model(model()), (dir / "model.safetensors").string(),
                     "tensor '" + norm + "' has shape [2, 64], expected [128]");
}

TEST_F(HfTest, Fp8WeightWithoutItsScale) {
  const std::string name = "model.layers.0.self_attn.q_a_proj.weight";  // [96, 128]
  auto ts = tensors();
  StTensor& t = find_st(ts, name);
  t.dtype = "F8_E4M3";
  t.data.assign(96 * 128, 0x38);  // 1.0
  write_tensors(ts);
  EXPECT_WHALE_ERROR(load_model(model()), "FP8 tensor '" + name + "'",
                     "model.layers.0.self_attn.q_a_proj.weight_scale_inv");

  const float one = 1.0f;
  std::vector<uint8_t> scale(16);
  for (size_t k = 0; k < 4; ++k) std::memcpy(scale.data() + 4 * k, &one, 4);
  ts.push_back({"model.layers.0.self_attn.q_a_proj.weight_scale_inv", "F32", {2, 2}, scale});
  write_tensors(ts);
  EXPECT_WHALE_ERROR(load_model(model()), "weight_scale_inv' is f32 [2, 2], expected f32 [1, 1]");
}

TEST_F(HfTest, BrokenSafetensorsInTheFolder) {
  write_bytes(dir / "model.safetensors", safetensors_raw("{\"w\": {}}"));
  EXPECT_WHALE_ERROR(load_model(model()), (dir / "model.safetensors").string(), "tensor 'w'");
  fs::remove(dir / "model.safetensors");
  EXPECT_WHALE_ERROR(load_model(model()), model(), "no *.safetensors files");
}

// =============================================================================================
// GGUF models written with GgufWriter from the fixtures, then damaged
// =============================================================================================

class GgufModelFromFixture : public TempDirTest {
 protected:
  void SetUp() override {
    src_path = kModels / "deepseek-v3-tiny" / "model-q8_0.gguf";
    if (!fs::exists(src_path)) GTEST_SKIP() << "fixture missing: " << src_path;
    src = std::make_unique<GgufFile>(src_path.string());
    out = path("model.gguf").string();
  }
  fs::path src_path;
  std::unique_ptr<GgufFile> src;
  std::string out;
};

TEST_F(GgufModelFromFixture, CopyLoads) {
  GgufWriter w;
  copy_gguf(*src, w);
  w.write(out);
  auto copy = load_model(out);
  auto orig = load_model(src_path.string());
  EXPECT_EQ(copy->config().n_embd, orig->config().n_embd);
  EXPECT_EQ(copy->config().n_expert, orig->config().n_expert);
  EXPECT_EQ(copy->unused_tensors(), orig->unused_tensors());
}

TEST_F(GgufModelFromFixture, MissingTensor) {
  GgufWriter w;
  copy_gguf(*src, w, "", "blk.1.attn_kv_a_mqa.weight");
  w.write(out);
  EXPECT_WHALE_ERROR(load_model(out), out, "missing tensor 'blk.1.attn_kv_a_mqa.weight'");
}

TEST_F(GgufModelFromFixture, TensorWithWrongShape) {
  {
    GgufWriter w;
    copy_gguf(*src, w, "", "output_norm.weight");
    const TensorRef* t = src->find_tensor("output_norm.weight");  // f32 [128]
    w.add_tensor_view(t->name, t->dtype, {2, 64}, t->data, t->nbytes);
    w.write(out);
    EXPECT_WHALE_ERROR(load_model(out), out, "tensor 'output_norm.weight' has shape [2, 64], expected [128]");
  }
  {
    GgufWriter w;
    copy_gguf(*src, w, "", "blk.0.attn_q_a.weight");
    const TensorRef* t = src->find_tensor("blk.0.attn_q_a.weight");  // q8_0 [96, 128]
    w.add_tensor_view(t->name, t->dtype, {128, 96}, t->data, t->nbytes);
    w.write(out);
    EXPECT_WHALE_ERROR(load_model(out), out, "tensor 'blk.0.attn_q_a.weight' has shape [128, 96]",
                       "expected 96 rows of 128");
  }
}

TEST_F(GgufModelFromFixture, MissingRequiredKey) {
  for (const char* key : {"deepseek2.embedding_length", "deepseek2.block_count",
                          "deepseek2.attention.kv_lora_rank", "deepseek2.rope.dimension_count",
                          "general.architecture"}) {
    GgufWriter w;
    copy_gguf(*src, w, key);
    w.write(out);
    EXPECT_WHALE_ERROR(load_model(out), out, fmt::format("missing GGUF key '{}'", key));
  }
}

TEST_F(GgufModelFromFixture, UnsupportedArchitecture) {
  GgufWriter w;
  copy_gguf(*src, w);
  w.set_string("general.architecture", "gpt2");
  w.write(out);
  EXPECT_WHALE_ERROR(load_model(out), out, "architecture 'gpt2' is not supported");
}

TEST_F(GgufModelFromFixture, KeysWithWrongTypesOrValues) {
  struct Case {
    std::function<void(GgufWriter&)> edit;
    std::string problem;
  };
  const std::vector<Case> cases = {
      {[](GgufWriter& w) { w.set_string("deepseek2.block_count", "3"); },
       "'deepseek2.block_count' should be an integer"},
      {[](GgufWriter& w) { w.set_u32("general.architecture", 2); },
       "'general.architecture' should be a string"},
      {[](GgufWriter& w) { w.set_array_i32("deepseek2.embedding_length", {128}); },
       "'deepseek2.embedding_length' should be an integer"},
      {[](GgufWriter& w) { w.set_u64("deepseek2.embedding_length", ~uint64_t(0)); },
       "hidden size = -1 is out of range"},
      {[](GgufWriter& w) { w.set_i64("deepseek2.attention.key_length_mla", INT64_MIN); },
       "key_length"},
      {[](GgufWriter& w) { w.set_i64("deepseek2.rope.dimension_count", INT64_MIN); },
       "rope"},
      {[](GgufWriter& w) { w.set_u64("deepseek2.expert_shared_count", uint64_t(1) << 62); },
       "n_shared_experts"},
      {[](GgufWriter& w) { w.set_u32("deepseek2.expert_gating_func", 7); },
       "expert_gating_func 7 is not supported"},
      {[](GgufWriter& w) { w.set_string("deepseek2.rope.scaling.type", "ntk"); },
       "rope scaling type 'ntk' is not supported"},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.problem);
    GgufWriter w;
    copy_gguf(*src, w);
    c.edit(w);
    w.write(out);
    EXPECT_WHALE_ERROR(load_model(out), out, c.problem);
  }
}

TEST_F(GgufModelTest, DenseModelMissingBias) {
  const fs::path src = kModels / "r1-distill-qwen-tiny" / "model-q8_0.gguf";
  REQUIRE_FIXTURE(src);
  GgufFile g(src.string());
  GgufWriter w;
  copy_gguf(g, w, "", "blk.0.attn_q.bias");
  const std::string out = path("qwen.gguf").string();
  w.write(out);
  EXPECT_WHALE_ERROR(load_model(out), out, "missing tensor 'blk.0.attn_q.bias'");
}

}  // namespace
}  // namespace whale
