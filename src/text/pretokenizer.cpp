#include "text/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <utility>

#include "core/error.h"

namespace whale {
namespace {

// Oniguruma's Unicode \s: \t \n \v \f \r, U+0085 and General_Category Z (Zs, Zl, Zp).
constexpr std::string_view kSpaceBody = "\\t\\n\\x0B\\f\\r\\x{85}\\p{Z}";
constexpr std::string_view kHexBody = "0-9A-Fa-f";

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  int r = pcre2_get_error_message(code, buf, sizeof(buf));
  if (r < 0) return "PCRE2 error " + std::to_string(code);
  return reinterpret_cast<const char*>(buf);
}

}  // namespace

std::string translate_regex(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 32);
  bool in_class = false;
  size_t i = 0;
  const size_t n = p.size();
  while (i < n) {
    const char c = p[i];
    if (c == '\\') {
      if (i + 1 >= n) fail("regex '{}' ends with a lone backslash", p);
      const char d = p[i + 1];
      if (d == 'u' || d == 'U') {
        std::string_view hex;
        size_t len = 0;
        if (d == 'u' && i + 2 < n && p[i + 2] == '{') {
          const size_t close = p.find('}', i + 3);
          if (close == std::string_view::npos) fail("regex '{}': unterminated \\u{{...}} escape", p);
          hex = p.substr(i + 3, close - (i + 3));
          len = close + 1 - i;
        } else {
          const size_t digits = d == 'u' ? 4 : 8;
          if (i + 2 + digits > n) fail("regex '{}': truncated \\{} escape", p, d);
          hex = p.substr(i + 2, digits);
          len = 2 + digits;
        }
        if (hex.empty() || hex.size() > 8) fail("regex '{}': malformed \\{} escape", p, d);
        for (char h : hex)
          if (!is_hex(h)) fail("regex '{}': malformed \\{} escape", p, d);
        out += "\\x{";
        out += hex;
        out += '}';
        i += len;
        continue;
      }
      if (d == 's') {
        if (in_class) {
          out += kSpaceBody;
        } else {
          out += '[';
          out += kSpaceBody;
          out += ']';
        }
        i += 2;
        continue;
      }
      if (d == 'S' && !in_class) {
        out += "[^";
        out += kSpaceBody;
        out += ']';
        i += 2;
        continue;
      }
      if (d == 'h') {
        if (in_class) {
          out += kHexBody;
        } else {
          out += '[';
          out += kHexBody;
          out += ']';
        }
        i += 2;
        continue;
      }
      if (d == 'H') {
        if (in_class) fail("regex '{}': \\H inside a character class is not supported", p);
        out += "[^";
        out += kHexBody;
        out += ']';
        i += 2;
        continue;
      }
      // Any other escape means the same in PCRE2 (\p{..}, \r, \n, \t, \x{..}, \\, \[, ...).
      // Only its first byte is copied here; UTF-8 continuation bytes follow as plain bytes.
      out += c;
      out += d;
      i += 2;
      continue;
    }
    if (!in_class) {
      if (c == '[') {
        in_class = true;
        out += c;
        ++i;
        if (i < n && p[i] == '^') {
          out += '^';
          ++i;
        }
        if (i < n && p[i] == ']') {  // a leading ']' is a literal in all three dialects
          out += "\\]";
          ++i;
        }
        continue;
      }
      out += c;
      ++i;
      continue;
    }
    // Inside a character class.
    if (c == '[') {
      if (i + 1 < n && p[i + 1] == ':') {  // POSIX [:name:], same in PCRE2
        const size_t e = p.find(":]", i + 2);
        if (e == std::string_view::npos) fail("regex '{}': unterminated [: class", p);
        out += p.substr(i, e + 2 - i);
        i = e + 2;
        continue;
      }
      fail("regex '{}': nested character classes are not supported", p);
    }
    if (c == '&' && i + 1 < n && p[i + 1] == '&')
      fail("regex '{}': character class intersection (&&) is not supported", p);
    if (c == ']') in_class = false;
    out += c;
    ++i;
  }
  return out;
}

Regex::Regex(std::string_view pattern, bool literal) : source_(pattern) {
  translated_ = literal ? std::string(pattern) : translate_regex(pattern);
  int err = 0;
  PCRE2_SIZE off = 0;
  const uint32_t opts = literal ? (PCRE2_UTF | PCRE2_LITERAL) : (PCRE2_UTF | PCRE2_UCP);
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated_.data()), translated_.size(), opts,
                        &err, &off, nullptr);
  if (!code_) {
    if (translated_ == source_)
      fail("regex '{}' does not compile: {} at offset {}", source_, pcre2_message(err), off);
    fail("regex '{}' (as PCRE2: '{}') does not compile: {} at offset {}", source_, translated_,
         pcre2_message(err), off);
  }
  jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() {
  if (code_) pcre2_code_free(code_);
}

Regex::Regex(Regex&& o) noexcept
    : code_(std::exchange(o.code_, nullptr)),
      jit_(o.jit_),
      source_(std::move(o.source_)),
      translated_(std::move(o.translated_)) {}

Regex& Regex::operator=(Regex&& o) noexcept {
  if (this != &o) {
    if (code_) pcre2_code_free(code_);
    code_ = std::exchange(o.code_, nullptr);
    jit_ = o.jit_;
    source_ = std::move(o.source_);
    translated_ = std::move(o.translated_);
  }
  return *this;
}

bool Regex::find(std::string_view subject, size_t start, size_t& match_begin, size_t& match_end,
                 RegexScratch& sc) const {
  const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
  for (int attempt = 0;; ++attempt) {
    const int rc = jit_ ? pcre2_jit_match(code_, s, subject.size(), start, 0, sc.md_, sc.mctx_)
                        : pcre2_match(code_, s, subject.size(), start, PCRE2_NO_UTF_CHECK, sc.md_,
                                      sc.mctx_);
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && attempt == 0) {
      sc.grow_jit_stack();
      continue;
    }
    if (rc < 0)
      fail("regex '{}': matching failed on a {}-byte piece: {}", source_, subject.size(),
           pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(sc.md_);
    match_begin = ov[0];
    match_end = ov[1] < ov[0] ? ov[0] : ov[1];  // (\K could invert them; none of ours use it)
    return true;
  }
}

RegexScratch::RegexScratch() {
  md_ = pcre2_match_data_create(1, nullptr);
  if (!md_) throw std::bad_alloc();
}

RegexScratch::~RegexScratch() {
  if (md_) pcre2_match_data_free(md_);
  if (mctx_) pcre2_match_context_free(mctx_);
  if (stack_) pcre2_jit_stack_free(stack_);
}

void RegexScratch::grow_jit_stack() {
  if (stack_) return;  // already at the maximum; the caller reports the error
  mctx_ = pcre2_match_context_create(nullptr);
  stack_ = pcre2_jit_stack_create(64 * 1024, 512 * 1024 * 1024, nullptr);
  if (!mctx_ || !stack_) throw std::bad_alloc();
  pcre2_jit_stack_assign(mctx_, nullptr, stack_);
}

}  // namespace whale
