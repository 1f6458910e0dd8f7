#include "text/utf8.h"

#include <utf8proc.h>

#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace whale::utf8 {
namespace {

// Classification of a lead byte: how many continuation bytes follow and the allowed range
// of the FIRST continuation byte (Unicode Table 3-7, well-formed byte sequences).
struct Lead {
  uint8_t need;  // 0xFF: never valid as a lead byte
  uint8_t lo, hi;
};

inline Lead classify(unsigned char b) {
  if (b < 0x80) return {0, 0, 0};
  if (b < 0xC2) return {0xFF, 0, 0};  // continuation byte, or C0/C1 (overlong)
  if (b < 0xE0) return {1, 0x80, 0xBF};
  if (b == 0xE0) return {2, 0xA0, 0xBF};
  if (b == 0xED) return {2, 0x80, 0x9F};  // no surrogates
  if (b < 0xF0) return {2, 0x80, 0xBF};
  if (b == 0xF0) return {3, 0x90, 0xBF};
  if (b < 0xF4) return {3, 0x80, 0xBF};
  if (b == 0xF4) return {3, 0x80, 0x8F};  // <= U+10FFFF
  return {0xFF, 0, 0};
}

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// ASCII fast path: the index of the first byte >= 0x80 at or after i, 8 bytes at a time
// (the byte-wise loops after it handle the rest).
inline size_t skip_ascii(const unsigned char* p, size_t i, size_t n) {
  while (i + 8 <= n) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    if (w & 0x8080808080808080ull) break;
    i += 8;
  }
  return i;
}

// Shared by the lossy decoders. `partial`: stop before an incomplete trailing character.
size_t lossy_impl(std::string& out, std::string_view s, bool partial) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  size_t run = 0;  // start of the pending run of valid bytes (copied in one go)
  while (i < n) {
    i = skip_ascii(p, i, n);
    if (i >= n) break;
    const unsigned char b = p[i];
    if (b < 0x80) {
      ++i;
      continue;
    }
    const Lead L = classify(b);
    if (L.need == 0xFF) {
      out.append(s.data() + run, i - run);
      out += kReplacement;
      run = ++i;
      continue;
    }
    size_t j = i + 1;
    bool bad = false;
    for (unsigned k = 0; k < L.need; ++k, ++j) {
      if (j >= n) {
        // Truncated: a valid prefix of a character that more bytes could complete.
        out.append(s.data() + run, i - run);
        if (partial) return i;
        out += kReplacement;
        return n;
      }
      const unsigned char c = p[j];
      const unsigned char lo = k == 0 ? L.lo : 0x80, hi = k == 0 ? L.hi : 0xBF;
      if (c < lo || c > hi) {
        bad = true;
        break;
      }
    }
    if (bad) {
      // One U+FFFD for the maximal subpart [i, j); decoding resumes at the offending byte.
      out.append(s.data() + run, i - run);
      out += kReplacement;
      run = i = j;
      continue;
    }
    i = j;
  }
  out.append(s.data() + run, n - run);
  return n;
}

}  // namespace

size_t valid_prefix(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    i = skip_ascii(p, i, n);
    if (i >= n) break;
    const unsigned char b = p[i];
    if (b < 0x80) {
      ++i;
      continue;
    }
    const Lead L = classify(b);
    if (L.need == 0xFF || i + L.need >= n) return i;  // bad lead byte, or truncated
    if (p[i + 1] < L.lo || p[i + 1] > L.hi) return i;
    for (unsigned k = 2; k <= L.need; ++k)
      if ((p[i + k] & 0xC0) != 0x80) return i;
    i += 1 + L.need;
  }
  return n;
}

char32_t next(std::string_view s, size_t& i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const unsigned char b = p[i];
  if (b < 0x80) {
    ++i;
    return b;
  }
  if (b < 0xE0) {
    char32_t cp = (char32_t(b & 0x1F) << 6) | (p[i + 1] & 0x3F);
    i += 2;
    return cp;
  }
  if (b < 0xF0) {
    char32_t cp = (char32_t(b & 0x0F) << 12) | (char32_t(p[i + 1] & 0x3F) << 6) | (p[i + 2] & 0x3F);
    i += 3;
    return cp;
  }
  char32_t cp = (char32_t(b & 0x07) << 18) | (char32_t(p[i + 1] & 0x3F) << 12) |
                (char32_t(p[i + 2] & 0x3F) << 6) | (p[i + 3] & 0x3F);
  i += 4;
  return cp;
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

void append_lossy(std::string& out, std::string_view bytes) { lossy_impl(out, bytes, false); }

std::string to_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  lossy_impl(out, bytes, false);
  return out;
}

size_t append_lossy_partial(std::string& out, std::string_view bytes) {
  return lossy_impl(out, bytes, true);
}

const char* norm_form_name(NormForm form) {
  switch (form) {
    case NormForm::NFC: return "NFC";
    case NormForm::NFD: return "NFD";
    case NormForm::NFKC: return "NFKC";
    case NormForm::NFKD: return "NFKD";
  }
  return "?";
}

namespace {

std::string map_form(std::string_view s, NormForm form) {
  int opts = UTF8PROC_STABLE;
  switch (form) {
    case NormForm::NFC: opts |= UTF8PROC_COMPOSE; break;
    case NormForm::NFD: opts |= UTF8PROC_DECOMPOSE; break;
    case NormForm::NFKC: opts |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case NormForm::NFKD: opts |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  utf8proc_uint8_t* dst = nullptr;
  const utf8proc_ssize_t r =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), utf8proc_ssize_t(s.size()),
                   &dst, utf8proc_option_t(opts));
  if (r < 0) {
    std::free(dst);
    fail("Unicode normalisation ({}) failed: {}", norm_form_name(form), utf8proc_errmsg(r));
  }
  std::string out(reinterpret_cast<const char*>(dst), size_t(r));
  std::free(dst);
  return out;
}

// A code point NFC leaves alone and that nothing before it can combine with, so NFC(x + c + y)
// = NFC(x) + NFC(c + y): combining class 0, no canonical decomposition (compatibility ones do
// not apply to NFC), not a mark (every canonical composition's second character with class 0
// is a spacing/non-spacing mark, or a Hangul jamo), not Hangul (algorithmic L+V, LV+T
// composition). All from utf8proc's property table. The fuzz test in test_tokenizer.cpp checks
// the fast path against utf8proc_map on random text.
bool nfc_inert(char32_t cp) {
  if (cp < 0x80) return true;
  const utf8proc_property_t* p = utf8proc_get_property(utf8proc_int32_t(cp));
  if (p->combining_class != 0) return false;
  if (p->decomp_seqindex != UINT16_MAX && p->decomp_type == 0) return false;  // canonical
  switch (p->category) {
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
      return false;
    default: break;
  }
  switch (p->boundclass) {
    case UTF8PROC_BOUNDCLASS_L: case UTF8PROC_BOUNDCLASS_V: case UTF8PROC_BOUNDCLASS_T:
    case UTF8PROC_BOUNDCLASS_LV: case UTF8PROC_BOUNDCLASS_LVT:
      return false;
    default: return true;
  }
}

// NFC that only runs utf8proc over the windows around non-inert code points: from the last
// inert code point before one (it may compose with what follows) to the next inert one.
std::string nfc_windows(std::string_view s) {
  std::string out;
  size_t copied = 0, last_inert = 0, i = 0;
  const size_t n = s.size();
  while (i < n) {
    if (uint8_t(s[i]) < 0x80) {
      last_inert = i++;
      continue;
    }
    size_t j = i;
    if (nfc_inert(next(s, j))) {
      last_inert = i;
      i = j;
      continue;
    }
    size_t k = j;  // extend to the next inert code point
    while (k < n) {
      size_t m = k;
      if (nfc_inert(next(s, m))) break;
      k = m;
    }
    if (out.empty()) out.reserve(n + 16);
    out.append(s.data() + copied, last_inert - copied);
    out += map_form(s.substr(last_inert, k - last_inert), NormForm::NFC);
    copied = last_inert = i = k;
  }
  if (copied == 0) return std::string(s);
  out.append(s.data() + copied, n - copied);
  return out;
}

}  // namespace

std::string normalize(std::string_view s, NormForm form) {
  bool ascii = true;
  for (unsigned char c : s)
    if (c >= 0x80) {
      ascii = false;
      break;
    }
  if (ascii) return std::string(s);  // ASCII is invariant under all four forms
  if (form == NormForm::NFC) return nfc_windows(s);
  return map_form(s, form);
}

std::string normalize_reference(std::string_view s, NormForm form) { return map_form(s, form); }

bool is_whitespace(char32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  if (cp == 0x85) return true;
  const utf8proc_category_t c = utf8proc_category(utf8proc_int32_t(cp));
  return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

bool is_alphanumeric(char32_t cp) {
  if (cp < 0x80)
    return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  switch (utf8proc_category(utf8proc_int32_t(cp))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

}  // namespace whale::utf8
