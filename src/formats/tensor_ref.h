// A named, typed view of tensor bytes inside a mapped file. Shapes are in row-major
// (numpy / safetensors) order, outermost dimension first: a linear weight is [out, in].
// GGUF stores ggml's reversed `ne` order; its reader reverses it so both formats agree.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace whale {

struct TensorRef {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // outermost first
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;
  const std::string* file = nullptr;  // file it lives in, for error messages

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  std::string shape_str() const;
};

}  // namespace whale
