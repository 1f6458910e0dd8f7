// UTF-8 helpers for the text layer: strict validation, code point iteration, lossy decoding
// exactly like Rust's String::from_utf8_lossy / WHATWG TextDecoder (one U+FFFD per maximal
// invalid subsequence), a streaming variant that stops before an incomplete trailing
// character, and Unicode normalisation / character classes through utf8proc (no hand-written
// Unicode tables here).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace whale::utf8 {

// Length of the longest prefix of `s` that is well-formed UTF-8 (RFC 3629: no overlong forms,
// no surrogates, nothing above U+10FFFF). Equal to s.size() iff `s` is valid.
size_t valid_prefix(std::string_view s);
inline bool is_valid(std::string_view s) { return valid_prefix(s) == s.size(); }

// Decodes the code point starting at s[i] of VALID UTF-8 and advances i past it.
char32_t next(std::string_view s, size_t& i);
// Byte length of the character whose lead byte is `lead` (1 for ASCII and for stray bytes).
inline size_t char_len(unsigned char lead) {
  return lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}
// Appends the UTF-8 encoding of `cp` (must be a Unicode scalar value).
void append(std::string& out, char32_t cp);

// Lossy decoding: appends `bytes` to `out` with every maximal invalid subsequence replaced by
// one U+FFFD (Unicode "substitution of maximal subparts", as Rust and WHATWG do).
void append_lossy(std::string& out, std::string_view bytes);
std::string to_lossy(std::string_view bytes);
// Streaming form: like append_lossy, but stops before a trailing sequence that is a valid but
// incomplete prefix of a character (more bytes could complete it). Returns the number of bytes
// consumed; the rest must be fed again with more bytes appended. Decoding in pieces this way
// and finishing with append_lossy gives exactly append_lossy of the whole.
size_t append_lossy_partial(std::string& out, std::string_view bytes);

// Unicode normalisation forms (utf8proc). Input must be valid UTF-8.
enum class NormForm { NFC, NFD, NFKC, NFKD };
// NFC runs utf8proc only around code points that can change or combine (see utf8.cpp);
// normalize_reference always runs utf8proc_map over the whole text (for tests).
std::string normalize(std::string_view s, NormForm form);
std::string normalize_reference(std::string_view s, NormForm form);
const char* norm_form_name(NormForm form);

// Rust char::is_whitespace (Unicode White_Space): \t \n \v \f \r, U+0085 and categories
// Zs / Zl / Zp.
bool is_whitespace(char32_t cp);
// Approximates Rust char::is_alphanumeric with the general categories L* and N*.
bool is_alphanumeric(char32_t cp);

}  // namespace whale::utf8
