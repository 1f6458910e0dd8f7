#include "formats/safetensors_writer.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"

namespace whale {

void write_safetensors_f32(const std::string& path, const std::vector<F32TensorView>& tensors,
                           const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const F32TensorView& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__" || !names.insert(t.name).second)
      fail("{}: tensor name '{}' is empty, reserved or repeated", path, t.name);
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0 || (d > 0 && numel > (uint64_t(1) << 60) / uint64_t(d)))
        fail("{}: tensor '{}' has a bad shape", path, t.name);
      numel *= uint64_t(d);
    }
    const uint64_t bytes = numel * 4;
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned

  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("{}: cannot create", tmp);
    const uint64_t len = text.size();
    char len_bytes[8];
    for (int i = 0; i < 8; ++i) len_bytes[i] = char((len >> (8 * i)) & 0xff);  // little-endian
    out.write(len_bytes, 8);
    out.write(text.data(), std::streamsize(text.size()));
    for (const F32TensorView& t : tensors) {
      uint64_t numel = 1;
      for (int64_t d : t.shape) numel *= uint64_t(d);
      if (numel) out.write(reinterpret_cast<const char*>(t.data), std::streamsize(numel * 4));
    }
    out.flush();
    if (!out) {
      out.close();
      std::remove(tmp.c_str());
      fail("{}: write failed (disk full?)", tmp);
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    fail("{}: cannot rename into place: {}", path, ec.message());
  }
}

}  // namespace whale
