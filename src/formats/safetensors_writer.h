// safetensors writer for F32 tensors (gradients, training checkpoints): u64 header length,
// a JSON header {name: {dtype, shape, data_offsets}} padded with spaces to a multiple of 8
// bytes, then the data in the order given. Written to PATH.tmp and renamed into place, so a
// reader never sees a half-written file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace whale {

struct F32TensorView {
  std::string name;
  std::vector<int64_t> shape;  // outermost first
  const float* data = nullptr; // product(shape) floats
};

// Throws whale::Error on duplicate names, size overflow or I/O failure.
void write_safetensors_f32(const std::string& path, const std::vector<F32TensorView>& tensors,
                           const std::map<std::string, std::string>& metadata = {});

}  // namespace whale
