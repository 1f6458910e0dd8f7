#include "formats/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace whale {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
constexpr uint64_t kMaxHeaderBytes = uint64_t(256) << 20;  // real headers are a few MB
}

SafetensorsFile::SafetensorsFile(const std::string& path)
    : file_(std::make_unique<MappedFile>(path)) {
  const uint64_t size = file_->size();
  if (size < 8) fail("{}: truncated safetensors file ({} bytes)", path, size);
  uint64_t header_len;
  std::memcpy(&header_len, file_->data(), 8);
  if (header_len > size - 8 || header_len > kMaxHeaderBytes)
    fail("{}: safetensors header length {} exceeds the file ({} bytes)", path, header_len, size);
  const char* hp = reinterpret_cast<const char*>(file_->data() + 8);
  json header = json::parse(hp, hp + header_len, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object())
    fail("{}: safetensors header is not a valid JSON object", path);

  const uint8_t* data = file_->data() + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    if (!entry.is_object() || !entry.contains("dtype") || !entry["dtype"].is_string() ||
        !entry.contains("shape") || !entry["shape"].is_array() ||
        !entry.contains("data_offsets") || !entry["data_offsets"].is_array() ||
        entry["data_offsets"].size() != 2)
      fail("{}: tensor '{}': header entry needs dtype, shape and data_offsets [begin, end]",
           path, name);
    TensorRef t;
    t.name = name;
    t.file = &file_->path();
    std::string dt = entry["dtype"].get<std::string>();
    auto dtype = dtype_from_safetensors(dt);
    if (!dtype) fail("{}: tensor '{}' has unsupported dtype {}", path, name, dt);
    t.dtype = *dtype;
    uint64_t numel = 1;
    for (auto& d : entry["shape"]) {
      if (!d.is_number_unsigned()) fail("{}: tensor '{}': shape must hold non-negative integers", path, name);
      uint64_t v = d.get<uint64_t>();
      if (v > (uint64_t(1) << 40) || (v && numel > (uint64_t(1) << 50) / v))
        fail("{}: tensor '{}' shape overflows", path, name);
      numel *= v;
      t.shape.push_back(int64_t(v));
    }
    auto& off = entry["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail("{}: tensor '{}': data_offsets must be non-negative integers", path, name);
    uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end || end > data_size)
      fail("{}: tensor '{}' data [{}, {}) lies outside the file (data size {})", path, name,
           begin, end, data_size);
    auto nbytes = dtype_bytes(t.dtype, numel);
    if (!nbytes || *nbytes != end - begin)
      fail("{}: tensor '{}' is {} bytes but {} {} needs {}", path, name, end - begin,
           dtype_name(t.dtype), t.shape_str(), nbytes ? *nbytes : 0);
    t.data = data + begin;
    t.nbytes = *nbytes;
    tensors_.push_back(std::move(t));
  }
}

SafetensorsSet::SafetensorsSet(const std::string& dir) {
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  std::vector<std::string> shards;
  json weight_map;
  if (fs::exists(index_path)) {
    std::ifstream in(index_path);
    json index = json::parse(in, nullptr, false);
    if (index.is_discarded() || !index.is_object() || !index.contains("weight_map") ||
        !index["weight_map"].is_object())
      fail("{}: not a valid index (needs a weight_map object)", index_path.string());
    weight_map = index["weight_map"];
    for (auto& [name, shard] : weight_map.items()) {
      if (!shard.is_string())
        fail("{}: weight_map['{}'] is not a file name", index_path.string(), name);
      std::string s = shard.get<std::string>();
      if (s.find('/') != std::string::npos || s == ".." )
        fail("{}: weight_map['{}'] names a path outside the folder: {}", index_path.string(), name, s);
      if (std::find(shards.begin(), shards.end(), s) == shards.end()) shards.push_back(s);
    }
    std::sort(shards.begin(), shards.end());
  } else if (fs::exists(fs::path(dir) / "model.safetensors")) {
    // As Hugging Face: without an index the model is model.safetensors alone (a folder may
    // hold other safetensors files, e.g. gradients or optimizer states).
    shards.push_back("model.safetensors");
  } else {
    for (auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".safetensors") shards.push_back(e.path().filename().string());
    std::sort(shards.begin(), shards.end());
  }
  if (shards.empty()) fail("{}: no *.safetensors files", dir);

  for (auto& s : shards) {
    fs::path p = fs::path(dir) / s;
    if (!fs::exists(p)) fail("{}: shard named by the index is missing", p.string());
    files_.push_back(std::make_unique<SafetensorsFile>(p.string()));
    total_bytes_ += fs::file_size(p);
    for (auto& t : files_.back()->tensors()) {
      if (!by_name_.emplace(t.name, &t).second)
        fail("{}: tensor '{}' appears in more than one shard", p.string(), t.name);
    }
  }
  for (auto& [name, shard] : weight_map.items()) {
    auto it = by_name_.find(name);
    if (it == by_name_.end())
      fail("{}: tensor '{}' listed in the index is in no shard", index_path.string(), name);
    if (fs::path(*it->second->file).filename() != shard.get<std::string>())
      fail("{}: tensor '{}' is in {}, the index says {}", index_path.string(), name,
           *it->second->file, shard.get<std::string>());
  }
}

const TensorRef* SafetensorsSet::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

}  // namespace whale
