#include "text/tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <queue>
#include <unordered_map>

#include "core/error.h"
#include "formats/gguf.h"
#include "text/pretokenizer.h"
#include "text/utf8.h"

namespace whale {
namespace {

using json = nlohmann::json;

// ---- GPT-2 byte <-> printable character mapping (bytes_to_unicode) -------------------------
// Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') map to themselves; the other 68 bytes
// map, in increasing order, to U+0100, U+0101, ...
struct ByteLevelTable {
  std::array<char32_t, 256> byte_to_cp{};
  std::array<int16_t, 324> cp_to_byte{};  // -1: not a byte-level character
  std::array<std::string, 256> byte_to_str;

  ByteLevelTable() {
    cp_to_byte.fill(-1);
    auto printable = [](int b) {
      return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    char32_t extra = 0x100;
    for (int b = 0; b < 256; ++b) byte_to_cp[b] = printable(b) ? char32_t(b) : extra++;
    for (int b = 0; b < 256; ++b) {
      cp_to_byte[byte_to_cp[b]] = int16_t(b);
      utf8::append(byte_to_str[b], byte_to_cp[b]);
    }
  }
};

const ByteLevelTable& byte_level() {
  static const ByteLevelTable t;
  return t;
}

// ByteLevel decoding of one token string, as HF's ByteLevel decoder does it: when every
// character is a byte-level character the token stands for those bytes; otherwise (e.g. an
// added token such as "<｜User｜>") for its own UTF-8 bytes. `ok` tells which case applied.
std::string byte_level_decode(std::string_view tok, bool* ok = nullptr) {
  const auto& bl = byte_level();
  std::string out;
  out.reserve(tok.size());
  size_t i = 0;
  while (i < tok.size()) {
    const char32_t cp = utf8::next(tok, i);
    if (cp >= bl.cp_to_byte.size() || bl.cp_to_byte[cp] < 0) {
      if (ok) *ok = false;
      return std::string(tok);
    }
    out += char(bl.cp_to_byte[cp]);
  }
  if (ok) *ok = true;
  return out;
}

// ---- hashing helpers ------------------------------------------------------------------------
struct SvHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
struct SvEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const noexcept { return a == b; }
};
template <class V>
using StrMap = std::unordered_map<std::string, V, SvHash, SvEq>;

// Bytes -> list of ids, open addressing over flat arrays (one probe is usually one cache line;
// the key is compared only when the 64-bit hashes agree). Insert-only, fixed capacity.
class FlatStrMap {
 public:
  static uint64_t hash(std::string_view s) {
    constexpr uint64_t K = 0x9E3779B97F4A7C15ull;
    uint64_t h = K ^ (uint64_t(s.size()) * 0xBF58476D1CE4E5B9ull);
    const char* p = s.data();
    size_t n = s.size();
    while (n >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      h = (h ^ w) * K;
      h ^= h >> 29;
      p += 8;
      n -= 8;
    }
    if (n) {
      uint64_t w = 0;
      std::memcpy(&w, p, n);
      h = (h ^ w) * K;
    }
    h ^= h >> 32;
    h *= 0xD6E8FEB86659FD93ull;
    h ^= h >> 32;
    return h | 1;  // 0 marks an empty slot
  }

  // capacity: the most entries it will hold; max_key_bytes: the most key bytes in all.
  void init(size_t capacity, size_t max_key_bytes = UINT32_MAX / 2) {
    size_t cap = 16;
    while (cap < 2 * capacity) cap *= 2;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    max_size_ = capacity;
    max_key_bytes_ = max_key_bytes;
  }
  bool initialized() const { return !slots_.empty(); }
  bool full() const { return size_ >= max_size_; }
  size_t size() const { return size_; }

  // The ids stored for `key`, or nullptr.
  const int32_t* find(std::string_view key, uint64_t h, uint32_t& n_ids) const {
    if (slots_.empty()) return nullptr;
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.h == 0) return nullptr;
      if (s.h == h && s.klen == key.size() &&
          std::memcmp(keys_.data() + s.koff, key.data(), key.size()) == 0) {
        n_ids = s.vlen;
        return vals_.data() + s.voff;
      }
    }
  }
  // Single-id form: stores or overwrites (the later of duplicate keys wins).
  bool assign(std::string_view key, int32_t id) {
    const uint64_t h = hash(key);
    uint32_t n = 0;
    if (const int32_t* v = find(key, h, n)) {
      vals_[size_t(v - vals_.data())] = id;
      return true;
    }
    return insert(key, h, &id, 1);
  }
  std::optional<int32_t> find_id(std::string_view key) const {
    uint32_t n = 0;
    const int32_t* v = find(key, hash(key), n);
    if (!v) return std::nullopt;
    return *v;
  }
  // Calls f(key, first id) for every entry.
  template <class F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_)
      if (s.h) f(std::string_view(keys_).substr(s.koff, s.klen), vals_[s.voff]);
  }

  // Returns false (and stores nothing) when full or when the key is present.
  bool insert(std::string_view key, uint64_t h, const int32_t* ids, size_t n_ids) {
    if (full() || slots_.empty() || keys_.size() + key.size() > max_key_bytes_ ||
        vals_.size() + n_ids > UINT32_MAX / 2)
      return false;
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.h == h && s.klen == key.size() &&
          std::memcmp(keys_.data() + s.koff, key.data(), key.size()) == 0)
        return false;
      if (s.h == 0) {
        s = Slot{h, uint32_t(keys_.size()), uint32_t(key.size()), uint32_t(vals_.size()),
                 uint32_t(n_ids)};
        keys_.append(key);
        vals_.insert(vals_.end(), ids, ids + n_ids);
        ++size_;
        return true;
      }
    }
  }

 private:
  struct Slot {
    uint64_t h = 0;
    uint32_t koff = 0, klen = 0, voff = 0, vlen = 0;
  };
  std::vector<Slot> slots_;
  std::string keys_;
  std::vector<int32_t> vals_;
  size_t mask_ = 0, size_ = 0, max_size_ = 0, max_key_bytes_ = 0;
};

// (left id, right id) -> (rank, merged id), open addressing.
class MergeTable {
 public:
  struct Slot {
    uint64_t key;
    int32_t rank;
    int32_t id;
  };
  void init(size_t n_merges) {
    size_t cap = 16;
    shift_ = 60;
    while (cap < 2 * n_merges + 1) {
      cap *= 2;
      --shift_;
    }
    slots_.assign(cap, Slot{kEmpty, 0, 0});
    mask_ = cap - 1;
  }
  void insert(int32_t a, int32_t b, int32_t rank, int32_t id) {  // a later insert overwrites
    const uint64_t k = key(a, b);
    for (size_t h = hash(k);; h = (h + 1) & mask_) {
      Slot& s = slots_[h];
      if (s.key == kEmpty || s.key == k) {
        s = Slot{k, rank, id};
        return;
      }
    }
  }
  const Slot* find(int32_t a, int32_t b) const {
    const uint64_t k = key(a, b);
    for (size_t h = hash(k);; h = (h + 1) & mask_) {
      const Slot& s = slots_[h];
      if (s.key == k) return &s;
      if (s.key == kEmpty) return nullptr;
    }
  }
  bool empty() const { return slots_.empty(); }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  static uint64_t key(int32_t a, int32_t b) {
    return (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
  }
  size_t hash(uint64_t k) const { return size_t((k * 0x9E3779B97F4A7C15ull) >> shift_); }
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  int shift_ = 60;
};

// ---- added tokens: leftmost-longest matching over a byte trie --------------------------------
class AddedMatcher {
 public:
  struct Tok {
    int32_t id;
    bool lstrip, rstrip, single_word;
  };

  AddedMatcher() { root_.fill(-1); }
  bool empty() const { return toks_.empty(); }

  void add(std::string_view content, const Tok& t) {
    if (content.empty()) return;  // can never match
    int32_t node = root_[uint8_t(content[0])];
    if (node < 0) {
      node = new_node();
      root_[uint8_t(content[0])] = node;
    }
    for (size_t k = 1; k < content.size(); ++k) {
      const uint8_t c = uint8_t(content[k]);
      int32_t child = -1;
      for (const auto& [b, nx] : nodes_[node].next)
        if (b == c) child = nx;
      if (child < 0) {
        child = new_node();
        nodes_[node].next.emplace_back(c, child);
      }
      node = child;
    }
    if (nodes_[node].tok >= 0) {
      toks_[nodes_[node].tok] = t;  // same content twice: the later declaration wins
    } else {
      nodes_[node].tok = int32_t(toks_.size());
      toks_.push_back(t);
    }
  }

  // Calls f(piece, -1) for the text between matches and f({}, id) for each matched token, in
  // text order. Semantics of HF's AddedVocabulary::find_matches (Aho-Corasick, leftmost
  // longest, non-overlapping; single_word / lstrip / rstrip).
  template <class F>
  void split(std::string_view s, F&& f) const {
    if (toks_.empty()) {
      if (!s.empty()) f(s, -1);
      return;
    }
    const size_t n = s.size();
    size_t seg = 0, i = 0;
    while (i < n) {
      int32_t node = root_[uint8_t(s[i])];
      if (node < 0) {
        ++i;
        continue;
      }
      int32_t best = nodes_[node].tok;
      size_t best_end = i + 1;
      for (size_t j = i + 1; j < n; ++j) {
        int32_t child = -1;
        for (const auto& [b, nx] : nodes_[node].next)
          if (b == uint8_t(s[j])) {
            child = nx;
            break;
          }
        if (child < 0) break;
        node = child;
        if (nodes_[node].tok >= 0) {
          best = nodes_[node].tok;
          best_end = j + 1;
        }
      }
      if (best < 0) {
        ++i;
        continue;
      }
      const Tok& t = toks_[best];
      size_t start = i, stop = best_end;
      if (t.single_word) {
        const bool start_ok = start == 0 || !utf8::is_alphanumeric(last_char(s.substr(0, start)));
        const bool stop_ok = stop == n || !utf8::is_alphanumeric(first_char(s.substr(stop)));
        if (!start_ok || !stop_ok) {
          i = stop;  // the automaton resumes after the rejected match
          continue;
        }
      }
      if (t.lstrip) start = std::max(trailing_space_start(s.substr(0, start)), seg);
      if (t.rstrip) stop += leading_space_len(s.substr(stop));
      if (start > seg) f(s.substr(seg, start - seg), -1);
      f(std::string_view(), t.id);
      seg = i = stop;
    }
    if (seg < n) f(s.substr(seg), -1);
  }

 private:
  struct Node {
    int32_t tok = -1;
    std::vector<std::pair<uint8_t, int32_t>> next;
  };
  int32_t new_node() {
    nodes_.emplace_back();
    return int32_t(nodes_.size() - 1);
  }
  static char32_t first_char(std::string_view s) {
    size_t i = 0;
    return utf8::next(s, i);
  }
  static char32_t last_char(std::string_view s) {
    size_t b = s.size() - 1;
    while (b > 0 && (uint8_t(s[b]) & 0xC0) == 0x80) --b;
    return first_char(s.substr(b));
  }
  static size_t trailing_space_start(std::string_view s) {
    size_t e = s.size();
    while (e > 0) {
      size_t b = e - 1;
      while (b > 0 && (uint8_t(s[b]) & 0xC0) == 0x80) --b;
      if (!utf8::is_whitespace(first_char(s.substr(b)))) break;
      e = b;
    }
    return e;
  }
  static size_t leading_space_len(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
      size_t j = i;
      if (!utf8::is_whitespace(utf8::next(s, j))) break;
      i = j;
    }
    return i;
  }

  std::array<int32_t, 256> root_{};
  std::vector<Node> nodes_;
  std::vector<Tok> toks_;
};

// ---- what both loaders produce ------------------------------------------------------------------
struct AddedSpec {
  int32_t id = 0;
  std::string content;
  bool special = false, lstrip = false, rstrip = false, normalized = false, single_word = false;
};
struct SplitSpec {
  std::string pattern;
  bool literal = false;
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
};
struct Spec {
  std::vector<std::pair<std::string, int64_t>> vocab;  // byte-level spelling -> id
  std::vector<std::pair<std::string, std::string>> merges;
  bool ignore_merges = false;
  std::optional<std::string> unk_token;
  bool fuse_unk = false;
  std::vector<AddedSpec> added;
  std::vector<utf8::NormForm> normalizers;
  std::vector<SplitSpec> splits;
  std::vector<int32_t> prefix, suffix;  // post-processor
  std::optional<std::string> bos_content, eos_content;
  int32_t bos = -1, eos = -1;
  bool clean_up = false;
};

constexpr int64_t kMaxVocab = int64_t(1) << 26;

enum : uint8_t { kExists = 1, kAdded = 2, kSpecial = 4 };

}  // namespace

// ---- the tokenizer proper -----------------------------------------------------------------------
struct Tokenizer::Impl {
  std::string name;
  int64_t n_vocab = 0;
  std::vector<std::string> id_text;  // byte-level spelling, or content for added tokens
  std::vector<uint8_t> flags;
  std::string bytes_blob;            // decoded bytes of every id, concatenated
  std::vector<uint32_t> bytes_off;   // n_vocab + 1 offsets into bytes_blob
  FlatStrMap vocab_by_text;          // BPE vocabulary by byte-level spelling
  StrMap<int32_t> added_by_content;
  FlatStrMap vocab_by_bytes;         // BPE vocabulary by raw bytes (ignore_merges lookups)
  std::array<int32_t, 256> byte_id{};
  MergeTable merges;
  bool ignore_merges = false;
  int32_t unk_id = -1;
  bool fuse_unk = false;
  AddedMatcher raw_added, norm_added;
  std::vector<utf8::NormForm> normalizers;
  PreTokenizer pre;
  std::vector<int32_t> prefix, suffix;
  int32_t bos = -1, eos = -1;
  bool clean_up = false;

  // Word -> ids cache. Bounded (entries and key bytes): once full, new words are merged but
  // not stored.
  static constexpr size_t kCacheMax = size_t(1) << 17;
  static constexpr size_t kCacheMaxBytes = size_t(16) << 20;
  mutable std::mutex cache_mu;
  mutable FlatStrMap cache;

  std::string normalize(std::string_view s) const {
    std::string cur(s);
    for (auto f : normalizers) cur = utf8::normalize(cur, f);
    return cur;
  }
  void bpe(std::string_view word, std::vector<int32_t>& out) const;
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;
  void encode_plain(std::string_view piece, RegexScratch& sc, std::vector<int32_t>& out) const {
    pre.for_each(piece, sc, [&](std::string_view w) { bpe(w, out); });
  }
};

namespace {

std::unique_ptr<Tokenizer::Impl> build(Spec&& s, const std::string& name) {
  auto im = std::make_unique<Tokenizer::Impl>();
  im->name = name;

  int64_t max_id = -1;
  for (const auto& [t, id] : s.vocab) {
    if (id < 0 || id >= kMaxVocab) fail("vocabulary token '{}' has id {} (out of range)", t, id);
    max_id = std::max(max_id, id);
  }
  for (const auto& a : s.added) {
    if (a.id < 0 || a.id >= kMaxVocab) fail("added token '{}' has id {} (out of range)", a.content, a.id);
    max_id = std::max<int64_t>(max_id, a.id);
  }
  if (max_id < 0) fail("empty vocabulary");
  // Ids index dense tables: refuse wildly sparse ones (a hostile file could ask for gigabytes).
  const int64_t n_entries = int64_t(s.vocab.size() + s.added.size());
  if (max_id >= 4 * n_entries + 65536)
    fail("token ids are too sparse (largest id {} for {} tokens)", max_id, n_entries);
  im->n_vocab = max_id + 1;
  im->id_text.assign(size_t(im->n_vocab), std::string());
  im->flags.assign(size_t(im->n_vocab), 0);

  im->vocab_by_text.init(s.vocab.size());
  for (auto& [t, id] : s.vocab) {
    if (!utf8::is_valid(t)) fail("vocabulary token with id {} is not valid UTF-8", id);
    im->id_text[size_t(id)] = t;
    im->flags[size_t(id)] |= kExists;
    im->vocab_by_text.assign(t, int32_t(id));
  }
  // Raw-byte view of the vocabulary: byte ids, and whole-word lookups for ignore_merges.
  const auto& bl = byte_level();
  for (int b = 0; b < 256; ++b) im->byte_id[b] = im->vocab_by_text.find_id(bl.byte_to_str[b]).value_or(-1);
  im->ignore_merges = s.ignore_merges;
  if (s.ignore_merges) {
    im->vocab_by_bytes.init(im->vocab_by_text.size());
    im->vocab_by_text.for_each([&](std::string_view t, int32_t id) {
      bool ok = false;
      const std::string raw = byte_level_decode(t, &ok);
      if (ok) im->vocab_by_bytes.assign(raw, id);
    });
  }
  im->cache.init(Tokenizer::Impl::kCacheMax, Tokenizer::Impl::kCacheMaxBytes);
  if (s.unk_token) {
    const auto id = im->vocab_by_text.find_id(*s.unk_token);
    if (!id) fail("unk_token '{}' is not in the vocabulary", *s.unk_token);
    im->unk_id = *id;
    im->fuse_unk = s.fuse_unk;
  }

  im->merges.init(s.merges.size());
  std::string joined;
  for (size_t r = 0; r < s.merges.size(); ++r) {
    const auto& [a, b] = s.merges[r];
    const auto ia = im->vocab_by_text.find_id(a);
    const auto ib = im->vocab_by_text.find_id(b);
    joined.assign(a).append(b);
    const auto in = im->vocab_by_text.find_id(joined);
    const std::string* missing = !ia ? &a : !ib ? &b : !in ? &joined : nullptr;
    if (missing)
      fail("merges[{}] \"{} {}\": token '{}' is not in the vocabulary", r, a, b, *missing);
    im->merges.insert(*ia, *ib, int32_t(r), *in);
  }

  im->normalizers = s.normalizers;
  for (const auto& a : s.added) {
    if (!utf8::is_valid(a.content)) fail("added token {} is not valid UTF-8", a.id);
    im->id_text[size_t(a.id)] = a.content;
    im->flags[size_t(a.id)] = uint8_t(kExists | kAdded | (a.special ? kSpecial : 0));
    im->added_by_content[a.content] = a.id;
    const AddedMatcher::Tok t{a.id, a.lstrip, a.rstrip, a.single_word};
    if (a.normalized)
      im->norm_added.add(im->normalize(a.content), t);
    else
      im->raw_added.add(a.content, t);
  }

  // Decoded bytes of every id.
  im->bytes_off.resize(size_t(im->n_vocab) + 1);
  for (size_t id = 0; id < size_t(im->n_vocab); ++id) {
    im->bytes_off[id] = uint32_t(im->bytes_blob.size());
    if (im->flags[id] & kExists) im->bytes_blob += byte_level_decode(im->id_text[id]);
    if (im->bytes_blob.size() > UINT32_MAX / 2) fail("vocabulary too large");
  }
  im->bytes_off[size_t(im->n_vocab)] = uint32_t(im->bytes_blob.size());

  for (const auto& sp : s.splits) im->pre.add_split(Regex(sp.pattern, sp.literal), sp.behavior, sp.invert);

  auto check_ids = [&](const std::vector<int32_t>& v, const char* what) {
    for (int32_t id : v)
      if (id < 0 || id >= im->n_vocab || !(im->flags[size_t(id)] & kExists))
        fail("post-processor {} token id {} is not in the vocabulary", what, id);
  };
  check_ids(s.prefix, "prefix");
  check_ids(s.suffix, "suffix");
  im->prefix = std::move(s.prefix);
  im->suffix = std::move(s.suffix);

  auto resolve = [&](const std::optional<std::string>& content, int32_t fallback) -> int32_t {
    if (content) {
      if (auto it = im->added_by_content.find(*content); it != im->added_by_content.end())
        return it->second;
      if (auto id = im->vocab_by_text.find_id(*content)) return *id;
    }
    return fallback;
  };
  im->bos = resolve(s.bos_content, s.bos);
  im->eos = resolve(s.eos_content, s.eos);
  for (int32_t id : {im->bos, im->eos})
    if (id != -1 && (id < 0 || id >= im->n_vocab)) fail("bos/eos id {} is out of range", id);
  im->clean_up = s.clean_up;
  return im;
}

// ---- tokenizer.json ---------------------------------------------------------------------------
const json* member(const json& o, const char* key) {
  if (!o.is_object()) return nullptr;
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return nullptr;
  return &*it;
}
bool get_bool(const json& o, const char* key, bool def, const char* where) {
  const json* v = member(o, key);
  if (!v) return def;
  if (!v->is_boolean()) fail("{}.{} should be a boolean", where, key);
  return v->get<bool>();
}
std::string get_string(const json& o, const char* key, const char* where) {
  const json* v = member(o, key);
  if (!v || !v->is_string()) fail("{}.{} should be a string", where, key);
  return v->get<std::string>();
}
std::string type_of(const json& o, const char* where) {
  if (!o.is_object()) fail("{} should be an object", where);
  return get_string(o, "type", where);
}

void parse_normalizer(const json& n, std::vector<utf8::NormForm>& out) {
  const std::string t = type_of(n, "normalizer");
  if (t == "Sequence") {
    const json* list = member(n, "normalizers");
    if (!list || !list->is_array()) fail("normalizer Sequence without a 'normalizers' list");
    for (const auto& x : *list) parse_normalizer(x, out);
  } else if (t == "NFC") {
    out.push_back(utf8::NormForm::NFC);
  } else if (t == "NFD") {
    out.push_back(utf8::NormForm::NFD);
  } else if (t == "NFKC") {
    out.push_back(utf8::NormForm::NFKC);
  } else if (t == "NFKD") {
    out.push_back(utf8::NormForm::NFKD);
  } else {
    fail("normalizer type '{}' is not supported (null, NFC, NFD, NFKC, NFKD, Sequence)", t);
  }
}

// Flattens the pre-tokenizer into splits; returns whether a ByteLevel step was seen (it must
// be the last step: later splits would see byte-level characters).
void parse_pretokenizer(const json& p, std::vector<SplitSpec>& out, bool& byte_level_seen) {
  const std::string t = type_of(p, "pre_tokenizer");
  if (t == "Sequence") {
    const json* list = member(p, "pretokenizers");
    if (!list || !list->is_array()) fail("pre_tokenizer Sequence without a 'pretokenizers' list");
    for (const auto& x : *list) parse_pretokenizer(x, out, byte_level_seen);
    return;
  }
  if (byte_level_seen) fail("pre_tokenizer: a '{}' step after ByteLevel is not supported", t);
  if (t == "Split") {
    SplitSpec sp;
    const json* pat = member(p, "pattern");
    if (!pat || !pat->is_object()) fail("pre_tokenizer Split without a pattern");
    if (const json* r = member(*pat, "Regex"); r && r->is_string()) {
      sp.pattern = r->get<std::string>();
    } else if (const json* s = member(*pat, "String"); s && s->is_string()) {
      sp.pattern = s->get<std::string>();
      sp.literal = true;
    } else {
      fail("pre_tokenizer Split pattern should be {{\"Regex\": ...}} or {{\"String\": ...}}");
    }
    const std::string beh = get_string(p, "behavior", "pre_tokenizer Split");
    if (beh == "Isolated") sp.behavior = SplitBehavior::Isolated;
    else if (beh == "Removed") sp.behavior = SplitBehavior::Removed;
    else fail("pre_tokenizer Split behavior '{}' is not supported (Isolated, Removed)", beh);
    sp.invert = get_bool(p, "invert", false, "pre_tokenizer Split");
    out.push_back(std::move(sp));
  } else if (t == "ByteLevel") {
    if (get_bool(p, "add_prefix_space", false, "pre_tokenizer ByteLevel"))
      fail("pre_tokenizer ByteLevel with add_prefix_space=true is not supported");
    if (get_bool(p, "use_regex", true, "pre_tokenizer ByteLevel"))
      out.push_back(SplitSpec{pretok::kGpt2, false, SplitBehavior::Isolated, false});
    byte_level_seen = true;
  } else {
    fail("pre_tokenizer type '{}' is not supported (Split, ByteLevel, Sequence)", t);
  }
}

void check_decoder(const json& d) {
  const std::string t = type_of(d, "decoder");
  if (t == "ByteLevel") return;
  if (t == "Sequence") {
    const json* list = member(d, "decoders");
    if (!list || !list->is_array() || list->empty()) fail("decoder Sequence without 'decoders'");
    for (const auto& x : *list) check_decoder(x);
    return;
  }
  fail("decoder type '{}' is not supported (only ByteLevel)", t);
}

int32_t json_id(const json& v, const char* where) {
  if (!v.is_number_integer()) fail("{} should be an integer id", where);
  const int64_t id = v.get<int64_t>();
  if (id < 0 || id >= kMaxVocab) fail("{} id {} is out of range", where, id);
  return int32_t(id);
}

// Post-processors wrap the encoding; a Sequence applies them in order (later ones outermost).
void parse_post_processor(const json& p, std::vector<int32_t>& prefix, std::vector<int32_t>& suffix) {
  const std::string t = type_of(p, "post_processor");
  if (t == "ByteLevel") return;  // offsets only
  if (t == "Sequence") {
    const json* list = member(p, "processors");
    if (!list || !list->is_array()) fail("post_processor Sequence without 'processors'");
    for (const auto& x : *list) parse_post_processor(x, prefix, suffix);
    return;
  }
  std::vector<int32_t> pre, suf;
  if (t == "TemplateProcessing") {
    const json* single = member(p, "single");
    if (!single || !single->is_array()) fail("post_processor TemplateProcessing without 'single'");
    const json* specials = member(p, "special_tokens");
    bool seen_a = false;
    for (const auto& item : *single) {
      if (member(item, "Sequence")) {
        if (seen_a) fail("post_processor TemplateProcessing: 'single' has two sequences");
        seen_a = true;
      } else if (const json* st = member(item, "SpecialToken")) {
        const std::string key = get_string(*st, "id", "post_processor SpecialToken");
        const json* entry = specials ? member(*specials, key.c_str()) : nullptr;
        const json* ids = entry ? member(*entry, "ids") : nullptr;
        if (!ids || !ids->is_array())
          fail("post_processor TemplateProcessing: special token '{}' is not in special_tokens", key);
        for (const auto& v : *ids) (seen_a ? suf : pre).push_back(json_id(v, "post_processor special token"));
      } else {
        fail("post_processor TemplateProcessing: unknown item in 'single'");
      }
    }
    if (!seen_a) fail("post_processor TemplateProcessing: 'single' has no sequence");
  } else if (t == "BertProcessing" || t == "RobertaProcessing") {
    const json* cls = member(p, "cls");
    const json* sep = member(p, "sep");
    if (!cls || !sep || !cls->is_array() || !sep->is_array() || cls->size() != 2 || sep->size() != 2)
      fail("post_processor {} needs cls and sep as [token, id]", t);
    pre.push_back(json_id((*cls)[1], "post_processor cls"));
    suf.push_back(json_id((*sep)[1], "post_processor sep"));
  } else {
    fail("post_processor type '{}' is not supported", t);
  }
  prefix.insert(prefix.begin(), pre.begin(), pre.end());
  suffix.insert(suffix.end(), suf.begin(), suf.end());
}

std::optional<std::string> config_token(const json& cfg, const char* key) {
  const json* v = member(cfg, key);
  if (!v) return std::nullopt;
  if (v->is_string()) return v->get<std::string>();
  if (v->is_object()) {
    if (const json* c = member(*v, "content"); c && c->is_string()) return c->get<std::string>();
  }
  fail("tokenizer_config.json: {} should be a string or an AddedToken object", key);
}

Spec parse_hf(const json& j, const json* cfg) {
  Spec s;
  if (!j.is_object()) fail("not a JSON object");
  const json* model = member(j, "model");
  if (!model) fail("no \"model\"");
  if (!model->is_object()) fail("\"model\" should be an object");
  std::string mtype = "BPE";
  if (const json* t = member(*model, "type")) {
    if (!t->is_string()) fail("model.type should be a string");
    mtype = t->get<std::string>();
  }
  if (mtype != "BPE") fail("model type '{}' is not supported (only byte-level BPE)", mtype);
  if (get_bool(*model, "byte_fallback", false, "model"))
    fail("model.byte_fallback=true is not supported (byte-level BPE needs no byte fallback)");
  if (const json* d = member(*model, "dropout"); d && !(d->is_number() && d->get<double>() == 0.0))
    fail("model.dropout is not supported");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const json* v = member(*model, k); v && !(v->is_string() && v->get<std::string>().empty()))
      fail("model.{} is not supported", k);
  if (const json* u = member(*model, "unk_token")) {
    if (!u->is_string()) fail("model.unk_token should be a string");
    s.unk_token = u->get<std::string>();
  }
  s.fuse_unk = get_bool(*model, "fuse_unk", false, "model");
  s.ignore_merges = get_bool(*model, "ignore_merges", false, "model");

  const json* vocab = member(*model, "vocab");
  if (!vocab || !vocab->is_object()) fail("model.vocab should be an object");
  s.vocab.reserve(vocab->size());
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it->is_number_integer()) fail("model.vocab['{}'] should be an integer id", it.key());
    s.vocab.emplace_back(it.key(), it->get<int64_t>());
  }
  if (const json* merges = member(*model, "merges")) {
    if (!merges->is_array()) fail("model.merges should be an array");
    s.merges.reserve(merges->size());
    size_t r = 0;
    for (const auto& m : *merges) {
      if (m.is_string()) {
        const std::string& str = m.get_ref<const std::string&>();
        const size_t sp = str.find(' ');
        if (sp == std::string::npos || str.find(' ', sp + 1) != std::string::npos)
          fail("model.merges[{}] \"{}\" should be two tokens separated by one space", r, str);
        s.merges.emplace_back(str.substr(0, sp), str.substr(sp + 1));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        s.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        fail("model.merges[{}] should be \"a b\" or [\"a\", \"b\"]", r);
      }
      ++r;
    }
  }

  if (const json* added = member(j, "added_tokens")) {
    if (!added->is_array()) fail("added_tokens should be an array");
    for (const auto& a : *added) {
      if (!a.is_object()) fail("added_tokens entries should be objects");
      AddedSpec t;
      const json* id = member(a, "id");
      if (!id) fail("added token without an id");
      t.id = json_id(*id, "added token");
      t.content = get_string(a, "content", "added token");
      t.special = get_bool(a, "special", false, "added token");
      t.lstrip = get_bool(a, "lstrip", false, "added token");
      t.rstrip = get_bool(a, "rstrip", false, "added token");
      t.single_word = get_bool(a, "single_word", false, "added token");
      t.normalized = get_bool(a, "normalized", !t.special, "added token");
      s.added.push_back(std::move(t));
    }
  }

  if (const json* n = member(j, "normalizer")) parse_normalizer(*n, s.normalizers);
  const json* pre = member(j, "pre_tokenizer");
  if (!pre) fail("no pre_tokenizer: only byte-level BPE (ByteLevel pre-tokenizer) is supported");
  bool seen_bl = false;
  parse_pretokenizer(*pre, s.splits, seen_bl);
  if (!seen_bl) fail("pre_tokenizer has no ByteLevel step: only byte-level BPE is supported");
  const json* dec = member(j, "decoder");
  if (!dec) fail("no decoder: only the ByteLevel decoder is supported");
  check_decoder(*dec);
  if (const json* pp = member(j, "post_processor")) parse_post_processor(*pp, s.prefix, s.suffix);

  if (cfg) {
    if (!cfg->is_object()) fail("tokenizer_config.json is not a JSON object");
    s.bos_content = config_token(*cfg, "bos_token");
    s.eos_content = config_token(*cfg, "eos_token");
    s.clean_up = get_bool(*cfg, "clean_up_tokenization_spaces", false, "tokenizer_config");
    std::string cls;
    if (const json* c = member(*cfg, "tokenizer_class"); c && c->is_string()) cls = c->get<std::string>();
    const bool llama = cls == "LlamaTokenizerFast" || cls == "LlamaTokenizer";
    const json* ab = member(*cfg, "add_bos_token");
    const json* ae = member(*cfg, "add_eos_token");
    const bool add_bos = get_bool(*cfg, "add_bos_token", llama, "tokenizer_config");
    const bool add_eos = get_bool(*cfg, "add_eos_token", false, "tokenizer_config");
    // transformers' LlamaTokenizerFast.update_post_processor(): [bos] $A [eos].
    if (llama || (ab && add_bos) || (ae && add_eos)) {
      s.prefix.clear();
      s.suffix.clear();
      auto id_of = [&](const std::optional<std::string>& content, const char* what) -> int32_t {
        if (!content) fail("tokenizer_config.json: add_{}_token is set but {}_token is not", what, what);
        for (const auto& a : s.added)
          if (a.content == *content) return a.id;
        for (const auto& [t, id] : s.vocab)
          if (t == *content) return int32_t(id);
        fail("tokenizer_config.json: {}_token '{}' is not a token", what, *content);
      };
      if (add_bos) s.prefix.push_back(id_of(s.bos_content, "bos"));
      if (add_eos) s.suffix.push_back(id_of(s.eos_content, "eos"));
    }
  }
  return s;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) fail("{}: cannot open: {}", p.string(), std::strerror(errno));
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail("{}: read error", p.string());
  return data;
}

// ---- GGUF -----------------------------------------------------------------------------------------
struct GgufPre {
  std::vector<std::string> patterns;
  bool nfc = false, ignore_merges = false, clean_up = false, add_bos = false;
};

GgufPre gguf_pre(const std::string& pre) {
  GgufPre g;
  if (pre == "deepseek-v3") {
    g.patterns = {pretok::kDeepSeekV3Digits, pretok::kDeepSeekV3Cjk, pretok::kDeepSeekV3Main};
    g.add_bos = true;
  } else if (pre == "qwen2" || pre == "deepseek-r1-qwen") {
    g.patterns = {pretok::kQwen2};
    g.nfc = true;
  } else if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") {
    g.patterns = {pretok::kLlama3};
    g.ignore_merges = true;
    g.clean_up = true;
    g.add_bos = true;
  } else if (pre == "default" || pre == "gpt2") {
    g.patterns = {pretok::kGpt2};
  } else {
    fail("tokenizer.ggml.pre '{}' is not supported (deepseek-v3, qwen2, deepseek-r1-qwen, "
         "llama-bpe, default, gpt2)", pre);
  }
  return g;
}

Spec parse_gguf(const GgufFile& f) {
  Spec s;
  const auto model = f.get_string("tokenizer.ggml.model");
  if (!model) fail("no tokenizer.ggml.model");
  if (*model != "gpt2")
    fail("tokenizer.ggml.model '{}' is not supported (only gpt2 byte-level BPE)", *model);
  const GgufValue* tokens = f.find("tokenizer.ggml.tokens");
  if (!tokens || tokens->type != GgufType::ARRAY || tokens->elem_type != GgufType::STRING)
    fail("tokenizer.ggml.tokens should be an array of strings");
  const size_t n = tokens->strs.size();
  if (n == 0 || int64_t(n) > kMaxVocab) fail("tokenizer.ggml.tokens has {} entries", n);
  const GgufValue* types = f.find("tokenizer.ggml.token_type");
  if (types) {
    const GgufType et = types->elem_type;
    const bool int_elems = et == GgufType::U8 || et == GgufType::I8 || et == GgufType::U16 ||
                           et == GgufType::I16 || et == GgufType::U32 || et == GgufType::I32 ||
                           et == GgufType::U64 || et == GgufType::I64;
    if (types->type != GgufType::ARRAY || !types->raw || !int_elems)
      fail("tokenizer.ggml.token_type should be an array of integers");
    if (types->count != n)
      fail("tokenizer.ggml.token_type has {} entries, tokenizer.ggml.tokens {}", types->count, n);
  }
  for (size_t i = 0; i < n; ++i) {
    const int64_t type = types ? types->array_i64(i) : 1;
    const std::string_view t = tokens->strs[i];
    if (type == 3 || type == 4) {  // control / user-defined: matched whole in the raw text
      AddedSpec a;
      a.id = int32_t(i);
      a.content = std::string(t);
      a.special = type == 3;
      s.added.push_back(std::move(a));
    } else {
      s.vocab.emplace_back(std::string(t), int64_t(i));
    }
  }
  if (const GgufValue* merges = f.find("tokenizer.ggml.merges")) {
    if (merges->type != GgufType::ARRAY || merges->elem_type != GgufType::STRING)
      fail("tokenizer.ggml.merges should be an array of strings");
    s.merges.reserve(merges->strs.size());
    for (size_t r = 0; r < merges->strs.size(); ++r) {
      const std::string_view m = merges->strs[r];
      const size_t sp = m.find(' ');
      if (sp == std::string_view::npos || m.find(' ', sp + 1) != std::string_view::npos)
        fail("tokenizer.ggml.merges[{}] \"{}\" should be two tokens separated by one space", r, m);
      s.merges.emplace_back(std::string(m.substr(0, sp)), std::string(m.substr(sp + 1)));
    }
  }
  const std::string pre = f.get_string("tokenizer.ggml.pre").value_or("default");
  GgufPre g = gguf_pre(pre);
  for (auto& p : g.patterns) s.splits.push_back(SplitSpec{p, false, SplitBehavior::Isolated, false});
  if (g.nfc) s.normalizers.push_back(utf8::NormForm::NFC);
  s.ignore_merges = g.ignore_merges;
  s.clean_up = g.clean_up;
  auto id_key = [&](const char* key) -> int32_t {
    const auto v = f.get_int(key);
    if (!v) return -1;
    if (*v < 0 || *v >= int64_t(n)) fail("{} = {} is out of range (vocabulary of {})", key, *v, n);
    return int32_t(*v);
  };
  s.bos = id_key("tokenizer.ggml.bos_token_id");
  s.eos = id_key("tokenizer.ggml.eos_token_id");
  const bool add_bos = f.get_bool("tokenizer.ggml.add_bos_token").value_or(g.add_bos);
  const bool add_eos = f.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
  if (add_bos) {
    if (s.bos < 0) fail("tokenizer.ggml.add_bos_token is set but there is no bos_token_id");
    s.prefix.push_back(s.bos);
  }
  if (add_eos) {
    if (s.eos < 0) fail("tokenizer.ggml.add_eos_token is set but there is no eos_token_id");
    s.suffix.push_back(s.eos);
  }
  return s;
}

}  // namespace

// ---- BPE --------------------------------------------------------------------------------------
void Tokenizer::Impl::bpe(std::string_view w, std::vector<int32_t>& out) const {
  if (w.size() == 1) {
    const int32_t id = byte_id[uint8_t(w[0])];
    if (id >= 0) out.push_back(id);
    else if (unk_id >= 0) out.push_back(unk_id);
    return;
  }
  const uint64_t h = FlatStrMap::hash(w);
  uint32_t n = 0;
  if (ignore_merges) {
    if (const int32_t* id = vocab_by_bytes.find(w, h, n)) {
      out.push_back(*id);
      return;
    }
  }
  if (w.size() <= 3) {  // cheaper to merge than to look up
    merge_word(w, out);
    return;
  }
  {
    std::lock_guard<std::mutex> lk(cache_mu);
    if (const int32_t* ids = cache.find(w, h, n)) {
      out.insert(out.end(), ids, ids + n);
      return;
    }
  }
  const size_t before = out.size();
  merge_word(w, out);
  std::lock_guard<std::mutex> lk(cache_mu);
  cache.insert(w, h, out.data() + before, out.size() - before);
}

void Tokenizer::Impl::merge_word(std::string_view w, std::vector<int32_t>& out) const {
  constexpr size_t kSmall = 64;
  constexpr int32_t kNone = INT32_MAX;
  // Initial symbols: one per byte (bytes missing from the vocabulary are dropped, or become
  // unk, fused when fuse_unk, as HF's BPE does with characters it does not know).
  std::array<int32_t, kSmall> small_ids;
  std::vector<int32_t> big_ids;
  int32_t* ids = small_ids.data();
  if (w.size() > kSmall) {
    big_ids.resize(w.size());
    ids = big_ids.data();
  }
  size_t n = 0;
  bool last_unk = false;
  for (unsigned char c : w) {
    const int32_t id = byte_id[c];
    if (id >= 0) {
      ids[n++] = id;
      last_unk = false;
    } else if (unk_id >= 0) {
      if (!(fuse_unk && last_unk)) ids[n++] = unk_id;
      last_unk = true;
    }
  }
  if (n <= 1 || merges.empty()) {
    out.insert(out.end(), ids, ids + n);
    return;
  }

  if (n <= kSmall) {
    // Few symbols: keep the rank of every adjacent pair, merge the lowest (leftmost on ties).
    std::array<int32_t, kSmall> rank, nid;
    auto pair_at = [&](size_t i) {
      const MergeTable::Slot* m = merges.find(ids[i], ids[i + 1]);
      rank[i] = m ? m->rank : kNone;
      nid[i] = m ? m->id : -1;
    };
    for (size_t i = 0; i + 1 < n; ++i) pair_at(i);
    while (n > 1) {
      size_t best = 0;
      for (size_t i = 1; i + 1 < n; ++i)
        if (rank[i] < rank[best]) best = i;
      if (rank[best] == kNone) break;
      ids[best] = nid[best];
      for (size_t k = best + 1; k + 1 < n; ++k) {
        ids[k] = ids[k + 1];
        rank[k] = rank[k + 1];
        nid[k] = nid[k + 1];
      }
      --n;
      if (best + 1 < n) pair_at(best);
      if (best > 0) pair_at(best - 1);
    }
    out.insert(out.end(), ids, ids + n);
    return;
  }

  // Many symbols: linked list + min-heap on (rank, position).
  struct Cand {
    int32_t rank, pos, left, right, merged;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<int32_t> prev(n), next(n);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = int32_t(i) - 1;
    next[i] = i + 1 < n ? int32_t(i + 1) : -1;
  }
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int32_t pos) {
    const int32_t r = next[size_t(pos)];
    if (r < 0) return;
    if (const MergeTable::Slot* m = merges.find(ids[pos], ids[r]))
      heap.push(Cand{m->rank, pos, ids[pos], ids[r], m->id});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(int32_t(i));
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    if (ids[c.pos] != c.left) continue;  // left symbol gone (-1) or changed
    const int32_t r = next[size_t(c.pos)];
    if (r < 0 || ids[r] != c.right) continue;
    ids[c.pos] = c.merged;
    ids[r] = -1;
    next[size_t(c.pos)] = next[size_t(r)];
    if (next[size_t(r)] >= 0) prev[size_t(next[size_t(r)])] = c.pos;
    if (prev[size_t(c.pos)] >= 0) push(prev[size_t(c.pos)]);
    push(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = next[size_t(i)]) out.push_back(ids[i]);
}

// ---- public API -----------------------------------------------------------------------------------
Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::from_hf_json(std::string_view tokenizer_json,
                                                   std::string_view config_json,
                                                   const std::string& name) {
  try {
    json j;
    try {
      j = json::parse(tokenizer_json);
    } catch (const json::exception& e) {
      fail("not valid JSON: {}", e.what());
    }
    json cfg;
    if (!config_json.empty()) {
      try {
        cfg = json::parse(config_json);
      } catch (const json::exception& e) {
        fail("tokenizer_config.json is not valid JSON: {}", e.what());
      }
    }
    Spec s = parse_hf(j, config_json.empty() ? nullptr : &cfg);
    return std::unique_ptr<Tokenizer>(new Tokenizer(build(std::move(s), name)));
  } catch (const json::exception& e) {
    fail("{}: malformed tokenizer: {}", name, e.what());
  } catch (const Error& e) {
    fail("{}: {}", name, e.what());
  }
}

std::unique_ptr<Tokenizer> Tokenizer::from_hf(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p(path);
  std::error_code ec;
  if (fs::is_directory(p, ec)) p /= "tokenizer.json";
  const std::string text = read_file(p);
  const fs::path cfg_path = p.parent_path() / "tokenizer_config.json";
  std::string cfg;
  if (fs::exists(cfg_path, ec)) cfg = read_file(cfg_path);
  if (!cfg.empty()) {
    // Name the config file itself in errors about it.
    try {
      const json probe = json::parse(cfg);
      (void)probe;
    } catch (const json::exception& e) {
      fail("{}: not valid JSON: {}", cfg_path.string(), e.what());
    }
  }
  return from_hf_json(text, cfg, p.string());
}

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& gguf) {
  const std::string name = gguf.path();
  try {
    Spec s = parse_gguf(gguf);
    return std::unique_ptr<Tokenizer>(new Tokenizer(build(std::move(s), name)));
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (msg.rfind(name, 0) == 0) throw;
    fail("{}: {}", name, msg);
  }
}

void Tokenizer::encode_into(std::string_view text, bool add_special_tokens,
                            std::vector<int32_t>& out) const {
  const Impl& im = *impl_;
  const size_t valid = utf8::valid_prefix(text);
  if (valid != text.size())
    fail("tokenizer ({}): input text is not valid UTF-8 (byte 0x{:02X} at offset {} of {})",
         im.name, uint8_t(text[valid]), valid, text.size());
  RegexScratch sc;
  if (add_special_tokens) out.insert(out.end(), im.prefix.begin(), im.prefix.end());
  auto second = [&](std::string_view piece, int32_t id) {
    if (id >= 0) out.push_back(id);
    else im.encode_plain(piece, sc, out);
  };
  im.raw_added.split(text, [&](std::string_view piece, int32_t id) {
    if (id >= 0) {
      out.push_back(id);
    } else if (im.normalizers.empty()) {
      im.norm_added.split(piece, second);
    } else {
      const std::string nrm = im.normalize(piece);
      im.norm_added.split(nrm, second);
    }
  });
  if (add_special_tokens) out.insert(out.end(), im.suffix.begin(), im.suffix.end());
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  encode_into(text, add_special_tokens, out);
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (!is_valid_id(id)) continue;  // HF: unknown ids decode to nothing
    if (skip_special_tokens && (impl_->flags[size_t(id)] & kSpecial)) continue;
    bytes += token_bytes(id);
  }
  std::string text = utf8::to_lossy(bytes);
  if (impl_->clean_up) text = clean_up_tokenization(std::move(text));
  return text;
}

int32_t Tokenizer::bos() const { return impl_->bos; }
int32_t Tokenizer::eos() const { return impl_->eos; }
const std::vector<int32_t>& Tokenizer::special_prefix() const { return impl_->prefix; }
const std::vector<int32_t>& Tokenizer::special_suffix() const { return impl_->suffix; }
int64_t Tokenizer::n_vocab() const { return impl_->n_vocab; }
bool Tokenizer::is_valid_id(int32_t id) const {
  return id >= 0 && id < impl_->n_vocab && (impl_->flags[size_t(id)] & kExists);
}
bool Tokenizer::is_special(int32_t id) const {
  return is_valid_id(id) && (impl_->flags[size_t(id)] & kSpecial);
}
bool Tokenizer::is_added(int32_t id) const {
  return is_valid_id(id) && (impl_->flags[size_t(id)] & kAdded);
}
std::string Tokenizer::token_text(int32_t id) const {
  return is_valid_id(id) ? impl_->id_text[size_t(id)] : std::string();
}
std::string_view Tokenizer::token_bytes(int32_t id) const {
  if (!is_valid_id(id)) return {};
  const uint32_t b = impl_->bytes_off[size_t(id)], e = impl_->bytes_off[size_t(id) + 1];
  return std::string_view(impl_->bytes_blob).substr(b, e - b);
}
std::optional<int32_t> Tokenizer::find_token(std::string_view content) const {
  if (auto it = impl_->added_by_content.find(content); it != impl_->added_by_content.end())
    return it->second;
  return impl_->vocab_by_text.find_id(content);
}
bool Tokenizer::clean_up_tokenization_spaces() const { return impl_->clean_up; }
const std::string& Tokenizer::name() const { return impl_->name; }

// ---- clean-up and streaming ---------------------------------------------------------------------
std::string clean_up_tokenization(std::string text) {
  static constexpr std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."},   {" ?", "?"},     {" !", "!"},     {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
  };
  for (const auto& [from, to] : kRules) {
    size_t pos = text.find(from);
    if (pos == std::string::npos) continue;
    std::string out;
    out.reserve(text.size());
    size_t last = 0;
    while (pos != std::string::npos) {
      out.append(text, last, pos - last);
      out += to;
      last = pos + from.size();
      pos = text.find(from, last);
    }
    out.append(text, last, std::string::npos);
    text = std::move(out);
  }
  return text;
}

namespace {
// A cut after position i-1 cannot be crossed by any clean-up rule when text[i-1] is a character
// that appears in no rule: the rules only delete spaces, so that character stays and a match
// spanning the cut would have to contain it.
size_t safe_cleanup_cut(std::string_view t) {
  static constexpr std::string_view kRuleChars = " .?!,'ntmsvre";
  for (size_t i = t.size(); i > 0; --i) {
    const char c = t[i - 1];
    if (kRuleChars.find(c) != std::string_view::npos) continue;
    if (i < t.size() && (uint8_t(t[i]) & 0xC0) == 0x80) continue;  // inside a character
    return i;
  }
  return 0;
}
}  // namespace

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tok_(&tokenizer), skip_special_(skip_special_tokens) {}

std::string StreamDecoder::push(int32_t id) {
  if (!tok_->is_valid_id(id) || (skip_special_ && tok_->is_special(id))) return {};
  bytes_ += tok_->token_bytes(id);
  return take(false);
}

std::string StreamDecoder::push(std::span<const int32_t> ids) {
  for (int32_t id : ids)
    if (tok_->is_valid_id(id) && !(skip_special_ && tok_->is_special(id))) bytes_ += tok_->token_bytes(id);
  return take(false);
}

std::string StreamDecoder::flush() {
  std::string out = take(true);
  reset();
  return out;
}

void StreamDecoder::reset() {
  bytes_.clear();
  text_.clear();
}

std::string StreamDecoder::take(bool final) {
  std::string t;
  if (final) {
    utf8::append_lossy(t, bytes_);
    bytes_.clear();
  } else {
    const size_t used = utf8::append_lossy_partial(t, bytes_);
    bytes_.erase(0, used);
  }
  if (!tok_->clean_up_tokenization_spaces()) return t;
  text_ += t;
  const size_t cut = final ? text_.size() : safe_cleanup_cut(text_);
  std::string out = clean_up_tokenization(text_.substr(0, cut));
  text_.erase(0, cut);
  return out;
}

}  // namespace whale
