// A read-only memory-mapped file. Weights are used in place from the mapping whenever their
// dtype is usable as is, so loading a model costs page faults, not copies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace whale {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws whale::Error
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace whale
