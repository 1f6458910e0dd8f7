// Whole-file reads for the subcommands; a missing file is a one-line whale::Error.
#pragma once

#include <fstream>
#include <iterator>
#include <string>

#include "core/error.h"

namespace whale::app {

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// An optional file argument: "" when none was given.
inline std::string read_file_if_given(const std::string& path) {
  return path.empty() ? std::string() : read_file(path);
}

}  // namespace whale::app
