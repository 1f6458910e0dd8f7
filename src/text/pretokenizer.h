// Pre-tokenization: the regex splits that cut text into words before BPE.
//
// Regexes are compiled with PCRE2 (PCRE2_UTF | PCRE2_UCP, JIT). Hugging Face tokenizer.json
// patterns are written for Oniguruma (what the Python `tokenizers` library runs) / Rust regex;
// translate_regex() rewrites the constructs PCRE2 lacks or reads differently:
//   \uXXXX, \u{X..}, \UXXXXXXXX  ->  \x{...}             (PCRE2 has no \u escapes)
//   \s / \S                      ->  [\t\n\x0B\f\r\x{85}\p{Z}] / its negation
//        (Oniguruma's Unicode \s; PCRE2's \s also matches U+180E MONGOLIAN VOWEL SEPARATOR,
//         which stopped being whitespace in Unicode 6.3; \S inside a [...] class is left as is)
//   \h / \H                      ->  [0-9A-Fa-f] / [^0-9A-Fa-f]   (Oniguruma: hex digit)
//   a ']' right after '[' or '[^' is escaped.
// Rejected with whale::Error: nested character classes and '&&' class intersection (Oniguruma /
// Rust set operations PCRE2 does not have), a truncated or malformed \u escape.
// Not translated (identical in the patterns of the supported families): \p{..} properties,
// (?i:...) groups (PCRE2 caseless matching folds like Oniguruma, e.g. U+017F LONG S ~ 's'),
// (?!...) lookahead, \d and \w (PCRE2 UCP: \p{Nd} and [\p{L}\p{N}_]).
//
// HF Split semantics: each regex runs on each piece produced by the previous step (the piece is
// the whole subject, so lookaheads see its end), matches are found left to right without
// overlap, and the pieces are the matches and the gaps between them ("Isolated"; "Removed"
// drops the matches; `invert` swaps matches and gaps); empty pieces are dropped.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "text/utf8.h"

struct pcre2_real_code_8;
struct pcre2_real_match_data_8;
struct pcre2_real_match_context_8;
struct pcre2_real_jit_stack_8;

namespace whale {

// Oniguruma / Rust-regex syntax -> PCRE2 syntax (see above). Throws whale::Error.
std::string translate_regex(std::string_view pattern);

class RegexScratch;

// A compiled pattern; immutable and shareable between threads (each thread brings its own
// RegexScratch).
class Regex {
 public:
  // `literal`: match `pattern` as a plain string (HF Split {"String": ...}). Otherwise the
  // pattern is translated and compiled; errors (with PCRE2's message and offset) throw.
  Regex(std::string_view pattern, bool literal);
  ~Regex();
  Regex(Regex&& o) noexcept;
  Regex& operator=(Regex&& o) noexcept;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Leftmost match in subject[start..]; the subject must be valid UTF-8 (not re-checked).
  bool find(std::string_view subject, size_t start, size_t& match_begin, size_t& match_end,
            RegexScratch& scratch) const;
  const std::string& source() const { return source_; }
  const std::string& compiled_pattern() const { return translated_; }
  bool jit() const { return jit_; }

 private:
  pcre2_real_code_8* code_ = nullptr;
  bool jit_ = false;
  std::string source_, translated_;
};

// Per-thread match state (PCRE2 match data; a JIT stack allocated only if a match needs more
// than PCRE2's default 32 KiB).
class RegexScratch {
 public:
  RegexScratch();
  ~RegexScratch();
  RegexScratch(const RegexScratch&) = delete;
  RegexScratch& operator=(const RegexScratch&) = delete;

 private:
  friend class Regex;
  void grow_jit_stack();
  pcre2_real_match_data_8* md_ = nullptr;
  pcre2_real_match_context_8* mctx_ = nullptr;
  pcre2_real_jit_stack_8* stack_ = nullptr;
};

enum class SplitBehavior { Isolated, Removed };

// A sequence of regex splits; for_each() hands the final pieces (words) to a callback in
// text order, without copying (views into the input).
class PreTokenizer {
 public:
  void add_split(Regex re, SplitBehavior behavior, bool invert) {
    steps_.push_back(Step{std::move(re), behavior, invert});
  }
  size_t size() const { return steps_.size(); }

  template <class F>
  void for_each(std::string_view text, RegexScratch& scratch, F&& f) const {
    if (!text.empty()) run(0, text, scratch, f);
  }

 private:
  struct Step {
    Regex re;
    SplitBehavior behavior;
    bool invert;
  };
  std::vector<Step> steps_;

  template <class F>
  void run(size_t level, std::string_view s, RegexScratch& sc, F& f) const {
    if (level == steps_.size()) {
      f(s);
      return;
    }
    const Step& st = steps_[level];
    auto emit = [&](size_t b, size_t e, bool is_match) {
      if (b >= e) return;
      if (st.invert) is_match = !is_match;
      if (is_match && st.behavior == SplitBehavior::Removed) return;
      run(level + 1, s.substr(b, e - b), sc, f);
    };
    size_t prev = 0, pos = 0, mb = 0, me = 0;
    while (st.re.find(s, pos, mb, me, sc)) {
      emit(prev, mb, false);
      emit(mb, me, true);
      prev = me;
      if (me >= s.size()) break;  // (an empty match at the end would add nothing)
      // After an empty match, step over one character.
      pos = me > mb ? me : me + utf8::char_len(static_cast<unsigned char>(s[me]));
    }
    emit(prev, s.size(), false);
  }
};

// Pre-tokenizer regexes of the supported families, verbatim as their tokenizer.json declares
// them (Rust/Oniguruma syntax: pass through translate_regex / Regex).
namespace pretok {
// GPT-2: what HF's ByteLevel pre-tokenizer applies itself when use_regex is true.
inline constexpr const char* kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Llama 3 (R1-Distill-Llama).
inline constexpr const char* kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2 / Qwen2.5 / Qwen3 (R1-Distill-Qwen): every digit alone. (Used after an NFC normalizer.)
inline constexpr const char* kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// DeepSeek-V3 / R1: three splits in sequence.
inline constexpr const char* kDeepSeekV3Digits = R"(\p{N}{1,3})";
inline constexpr const char* kDeepSeekV3Cjk = R"([\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+)";
inline constexpr const char* kDeepSeekV3Main =
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
}  // namespace pretok

}  // namespace whale
