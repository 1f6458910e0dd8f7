#include "train/batch_json.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <limits>

#include "core/error.h"

namespace whale::train {

namespace {
void read_rows(const nlohmann::json& j, const std::string& path, const char* key, Batch& b,
               std::vector<int32_t>& out) {
  if (!j.contains(key) || !j[key].is_array() || j[key].empty())
    fail("{}: '{}' should be a non-empty list of token lists", path, key);
  const auto& rows = j[key];
  if (b.B == 0) {
    b.B = int64_t(rows.size());
    b.T = rows[0].is_array() ? int64_t(rows[0].size()) : 0;
  }
  if (int64_t(rows.size()) != b.B) fail("{}: '{}' has {} rows, expected {}", path, key, rows.size(), b.B);
  for (size_t r = 0; r < rows.size(); ++r) {
    if (!rows[r].is_array() || int64_t(rows[r].size()) != b.T || b.T == 0)
      fail("{}: {}[{}] should be a list of {} token ids", path, key, r, b.T);
    for (const auto& v : rows[r]) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 ||
          v.get<int64_t>() > std::numeric_limits<int32_t>::max())
        fail("{}: {}[{}] holds something other than a token id", path, key, r);
      out.push_back(int32_t(v.get<int64_t>()));
    }
  }
}
}  // namespace

Batch read_batch_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("{}: cannot open", path);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) fail("{}: not a valid JSON object", path);
  Batch b;
  read_rows(j, path, "tokens", b, b.tokens);
  read_rows(j, path, "targets", b, b.targets);
  return b;
}

}  // namespace whale::train
