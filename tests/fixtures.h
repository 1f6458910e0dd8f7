// Helpers shared by the tests: the fixture folder and small file utilities.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace whale::test {

inline std::string fixtures_dir() {
  if (const char* e = std::getenv("WHALE_FIXTURES")) return e;
  return WHALE_FIXTURES;
}

inline std::vector<float> read_f32(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return {};
  std::vector<float> v(size_t(in.tellg()) / 4);
  in.seekg(0);
  in.read(reinterpret_cast<char*>(v.data()), std::streamsize(v.size() * 4));
  return v;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace whale::test
