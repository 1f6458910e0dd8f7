// Python `str` semantics on UTF-8 strings, for the Jinja interpreter.
//
// Jinja2 runs on Python strings: lengths, indices and slices count code points, `strip()`
// without arguments removes Unicode whitespace, `repr()` picks its quote character and escapes
// non-printable characters, floats print as the shortest round-trip repr. Chat templates are
// rendered byte-for-byte against Python, so these helpers reproduce CPython's rules rather than
// C's <ctype.h> ones. All strings are UTF-8 and assumed valid (checked where they enter:
// the template source and the JSON context).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace whale::jinja::py {

// ---- UTF-8 -----------------------------------------------------------------------------------
bool utf8_valid(std::string_view s);
bool is_ascii(std::string_view s);
std::u32string decode(std::string_view s);
std::string encode(std::u32string_view s);
void append_utf8(std::string& out, char32_t cp);
size_t length(std::string_view s);  // number of code points

// ---- character classes (CPython's str.isspace/isalpha/... definitions) ----------------------
bool is_space(char32_t c);
bool is_printable(char32_t c);  // str.isprintable, used by repr()
bool is_alpha(char32_t c);
bool is_decimal(char32_t c);
bool is_alnum(char32_t c);
bool is_word(char32_t c);  // regex \w: alphanumeric or '_'
bool is_upper(char32_t c);
bool is_lower(char32_t c);

// ---- str methods -----------------------------------------------------------------------------
std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string title(std::string_view s);       // str.title(): "it's" -> "It'S"
std::string capitalize(std::string_view s);  // str.capitalize()
std::string swapcase(std::string_view s);
// str.strip/lstrip/rstrip: without `chars` strips Unicode whitespace; with it, any of its
// code points.
std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left,
                  bool right);
// str.split(sep, maxsplit) / rsplit: sep == nullopt splits on whitespace runs. An empty sep
// is the caller's error to report (Python raises ValueError).
std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep,
                               int64_t maxsplit);
std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep,
                                int64_t maxsplit);
std::vector<std::string> splitlines(std::string_view s, bool keepends);
std::string replace(std::string_view s, std::string_view old, std::string_view with,
                    int64_t count);
size_t count(std::string_view s, std::string_view sub);
// str.find / rfind in code points; -1 when absent.
int64_t find(std::string_view s, std::string_view sub, bool reverse);

// ---- repr ------------------------------------------------------------------------------------
std::string repr(std::string_view s);  // 'it' / "it's" with Python's escapes
std::string float_repr(double d);      // 1.0, 1e+16, 1e-05, inf, nan

}  // namespace whale::jinja::py
