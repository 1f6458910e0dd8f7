// --cache-type for the commands that hold a KV cache (run, chat, bench, serve, bench-serve).
// f16 is the default: it halves the KV bytes per token and attention reads fewer bytes at depth
// (faster at every depth measured, bench/RESULTS.md), as llama.cpp's default f16 cache; f32
// keeps the exact path the 1e-4 fixture tests check.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "model/kv_cache.h"

namespace whale::app {

inline void add_cache_type_option(CLI::App* cmd, std::string* type, const char* default_note = "f16") {
  cmd->add_option("--cache-type,--cache-type-k", *type,
                  fmt::format("KV cache element type, K and V alike: f16 or f32 (also -ctk; default {})", default_note));
}

// The parsed type; `fallback` when the option was not given.
inline KvType cache_type_or(const std::string& type, KvType fallback) {
  return type.empty() ? fallback : parse_kv_type(type);
}

}  // namespace whale::app
