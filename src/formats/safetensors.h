// safetensors reader: u64 little-endian header length, a JSON header mapping tensor names to
// {dtype, shape, data_offsets: [begin, end)} relative to the data after the header, then data.
// A Hugging Face folder may split a model across shards listed in model.safetensors.index.json.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mmap_file.h"
#include "formats/tensor_ref.h"

namespace whale {

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // throws whale::Error
  const std::string& path() const { return file_->path(); }
  const std::vector<TensorRef>& tensors() const { return tensors_; }

 private:
  std::unique_ptr<MappedFile> file_;
  std::vector<TensorRef> tensors_;
};

// All tensors of a Hugging Face folder: the shards named by model.safetensors.index.json when
// present (each mapped tensor must be found in the shard the index names), otherwise every
// *.safetensors file in the folder. Duplicate names across shards are an error.
class SafetensorsSet {
 public:
  explicit SafetensorsSet(const std::string& dir);
  const TensorRef* find(const std::string& name) const;
  const std::map<std::string, const TensorRef*>& all() const { return by_name_; }
  uint64_t total_file_bytes() const { return total_bytes_; }

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorRef*> by_name_;
  uint64_t total_bytes_ = 0;
};

}  // namespace whale
