// Tokenizer: a hand-written equivalent of Jinja2 3.1's regex lexer for the default delimiters
// ({{ }}, {% %}, {# #}) with trim_blocks and lstrip_blocks on.
#include "text/jinja/lexer.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "text/jinja/pystr.h"
#include "text/jinja/value.h"

namespace whale::jinja {
namespace {

// Operators, longest first so that "//" wins over "/".
constexpr std::string_view kOperators[] = {
    "//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]", "(", ")",
    "{",  "}",  ">",  "<",  "=",  ".",  ":", "|", ",", ";"};

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_bin_digit(char c) { return c == '0' || c == '1'; }
bool is_oct_digit(char c) { return c >= '0' && c <= '7'; }
bool is_hex_digit(char c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
bool is_zero(char c) { return c == '0'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

class Lexer {
 public:
  explicit Lexer(std::string_view source) {
    // Newlines: \r\n and \r become \n; one trailing newline is dropped.
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_ += source[i];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') newlines_.push_back(i);
  }

  std::vector<Token> run() {
    while (pos_ < src_.size()) lex_root();
    push(Tok::Eof, "", src_.size());
    return std::move(out_);
  }

 private:
  std::string src_;
  std::vector<size_t> newlines_;
  size_t pos_ = 0;
  bool line_starting_ = true;  // the previous match ended with a newline (or nothing yet)
  std::vector<Token> out_;

  int line_at(size_t pos) const {
    return 1 + static_cast<int>(std::lower_bound(newlines_.begin(), newlines_.end(), pos) -
                                newlines_.begin());
  }

  [[noreturn]] void fail(size_t pos, const std::string& msg) const {
    throw TemplateError(msg, line_at(pos));
  }

  Token& push(Tok type, std::string text, size_t pos) {
    Token t;
    t.type = type;
    t.text = std::move(text);
    t.line = line_at(pos);
    out_.push_back(std::move(t));
    return out_.back();
  }

  bool at(size_t pos, std::string_view s) const { return src_.compare(pos, s.size(), s) == 0; }

  // Length of the (Unicode) whitespace code point at pos, or 0.
  size_t space_at(size_t pos) const {
    if (pos >= src_.size()) return 0;
    auto c = static_cast<unsigned char>(src_[pos]);
    if (c < 0x80) return py::is_space(c) ? 1 : 0;
    size_t n = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
    std::u32string u = py::decode(std::string_view(src_).substr(pos, n));
    return !u.empty() && py::is_space(u[0]) ? n : 0;
  }

  static bool all_space(std::string_view s) {
    for (char32_t c : py::decode(s))
      if (!py::is_space(c)) return false;
    return true;
  }

  // Length of the identifier character at pos (0 if none). Like Python identifiers, names
  // may use non-ASCII letters (and, after the first, digits and combining marks).
  size_t name_char_at(size_t pos, bool first) const {
    if (pos >= src_.size()) return 0;
    auto c = static_cast<unsigned char>(src_[pos]);
    if (c < 0x80) return (first ? is_name_start(src_[pos]) : is_name_char(src_[pos])) ? 1 : 0;
    size_t n = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
    std::u32string u = py::decode(std::string_view(src_).substr(pos, n));
    if (u.empty()) return 0;
    return (first ? py::is_alpha(u[0]) : py::is_word(u[0])) ? n : 0;
  }

  size_t skip_spaces(size_t pos) const {
    while (size_t n = space_at(pos)) pos += n;
    return pos;
  }

  // Whitespace control for the text before a tag (Jinja's OptionalLStrip rule). `sign` is the
  // tag's '-' / '+' marker; lstrip applies to block and comment tags, not to {{.
  void emit_data(std::string text, char sign, bool lstrip_applies, size_t pos) {
    if (sign == '-') {
      size_t e = text.size();
      while (e > 0) {
        // Step back one code point and test it.
        size_t b = e - 1;
        while (b > 0 && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
        std::u32string u = py::decode(std::string_view(text).substr(b, e - b));
        if (u.empty() || !py::is_space(u[0])) break;
        e = b;
      }
      text.resize(e);
    } else if (sign != '+' && lstrip_applies) {
      // lstrip_blocks: drop the whitespace between the line start and the tag (Jinja 3.1's
      // `\s+` fullmatch, i.e. Unicode whitespace) when nothing else precedes it on the line.
      size_t nl = text.rfind('\n');
      size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting_) && all_space(std::string_view(text).substr(l_pos)))
        text.resize(l_pos);
    }
    if (!text.empty()) push(Tok::Data, std::move(text), pos);
  }

  // Matches `{%[-+]? \s* raw \s* (-%}\s* | %})` at pos; returns the end or npos.
  size_t match_raw_begin(size_t pos, char* sign) const {
    size_t p = pos + 2;
    *sign = 0;
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) *sign = src_[p++];
    p = skip_spaces(p);
    if (!at(p, "raw")) return std::string::npos;
    p = skip_spaces(p + 3);
    if (at(p, "-%}")) return skip_spaces(p + 3);
    if (at(p, "%}")) return p + 2;  // no trim_blocks newline removal after raw's %}
    return std::string::npos;
  }

  void lex_root() {
    // Find the first tag opener.
    size_t i = pos_;
    while (true) {
      i = src_.find('{', i);
      if (i == std::string::npos || i + 1 >= src_.size()) {
        push(Tok::Data, src_.substr(pos_), pos_);
        pos_ = src_.size();
        return;
      }
      char k = src_[i + 1];
      if (k == '{' || k == '%' || k == '#') break;
      ++i;
    }
    char kind = src_[i + 1];
    char sign = 0;
    if (i + 2 < src_.size() && (src_[i + 2] == '-' || src_[i + 2] == '+')) sign = src_[i + 2];
    std::string text = src_.substr(pos_, i - pos_);
    if (kind == '%') {
      char raw_sign;
      size_t raw_end = match_raw_begin(i, &raw_sign);
      if (raw_end != std::string::npos) {
        emit_data(std::move(text), raw_sign, true, pos_);
        line_starting_ = src_[raw_end - 1] == '\n';
        lex_raw(i, raw_end);
        return;
      }
    }
    emit_data(std::move(text), sign, kind != '{', pos_);
    line_starting_ = false;
    size_t content = i + 2 + (sign ? 1 : 0);
    if (kind == '#') {
      lex_comment(i, content);
    } else {
      push(kind == '{' ? Tok::VarBegin : Tok::BlockBegin, "", i);
      lex_tag(i, content, kind == '{');
    }
  }

  void lex_comment(size_t open, size_t content) {
    size_t q = src_.find("#}", content);
    if (q == std::string::npos) {
      // Jinja's lexer stops silently when the template ends right after the opener.
      if (content >= src_.size()) {
        pos_ = src_.size();
        return;
      }
      fail(open, "unclosed comment: missing '#}'");
    }
    size_t end = q + 2;
    if (q > content && src_[q - 1] == '-') {
      end = skip_spaces(end);
    } else if (!(q > content && src_[q - 1] == '+')) {
      if (end < src_.size() && src_[end] == '\n') ++end;  // trim_blocks
    }
    line_starting_ = src_[end - 1] == '\n';
    pos_ = end;
  }

  void lex_raw(size_t open, size_t content) {
    // Find the first `{%[-+]? \s* endraw \s* (+%} | -%}\s* | %}\n?)`.
    size_t p = content;
    while (true) {
      p = src_.find("{%", p);
      if (p == std::string::npos) {
        if (content >= src_.size()) {  // as for comments: nothing after the opener
          pos_ = src_.size();
          return;
        }
        fail(open, "unclosed 'raw' block: missing '{% endraw %}'");
      }
      size_t q = p + 2;
      char sign = 0;
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) sign = src_[q++];
      q = skip_spaces(q);
      if (!at(q, "endraw")) {
        ++p;
        continue;
      }
      q = skip_spaces(q + 6);
      size_t end;
      if (at(q, "+%}")) {
        end = q + 3;
      } else if (at(q, "-%}")) {
        end = skip_spaces(q + 3);
      } else if (at(q, "%}")) {
        end = q + 2;
        if (end < src_.size() && src_[end] == '\n') ++end;
      } else {
        ++p;
        continue;
      }
      emit_data(src_.substr(content, p - content), sign, true, content);
      line_starting_ = src_[end - 1] == '\n';
      pos_ = end;
      return;
    }
  }

  void lex_tag(size_t open, size_t p, bool is_var) {
    std::vector<char> balance;  // expected closers of open brackets
    while (true) {
      if (p >= src_.size())
        fail(open, is_var ? "unclosed '{{' tag: missing '}}'" : "unclosed '{%' tag: missing '%}'");
      if (balance.empty()) {
        // End tags are only recognised outside brackets, like Jinja.
        if (is_var) {
          if (at(p, "-}}")) {
            push(Tok::VarEnd, "", p);
            pos_ = skip_spaces(p + 3);
            line_starting_ = src_[pos_ - 1] == '\n';
            return;
          }
          if (at(p, "}}")) {
            push(Tok::VarEnd, "", p);
            pos_ = p + 2;
            line_starting_ = false;
            return;
          }
        } else {
          if (at(p, "+%}")) {
            push(Tok::BlockEnd, "", p);
            pos_ = p + 3;
            line_starting_ = false;
            return;
          }
          if (at(p, "-%}")) {
            push(Tok::BlockEnd, "", p);
            pos_ = skip_spaces(p + 3);
            line_starting_ = src_[pos_ - 1] == '\n';
            return;
          }
          if (at(p, "%}")) {
            push(Tok::BlockEnd, "", p);
            pos_ = p + 2;
            if (pos_ < src_.size() && src_[pos_] == '\n') ++pos_;  // trim_blocks
            line_starting_ = src_[pos_ - 1] == '\n';
            return;
          }
        }
      }
      if (size_t n = space_at(p)) {
        p += n;
        continue;
      }
      char c = src_[p];
      if (is_digit(c)) {
        p = lex_number(p);
      } else if (size_t n = name_char_at(p, true)) {
        size_t e = p + n;
        while (size_t k = name_char_at(e, false)) e += k;
        push(Tok::Name, src_.substr(p, e - p), p);
        p = e;
      } else if (c == '\'' || c == '"') {
        p = lex_string(p);
      } else {
        p = lex_operator(p, balance);
      }
    }
  }

  // Digits with optional single '_' separators; returns the end or `p` if none.
  size_t digits(size_t p, bool (*ok)(char)) const {
    size_t e = p;
    while (e < src_.size()) {
      if (ok(src_[e])) {
        ++e;
      } else if (src_[e] == '_' && e > p && e + 1 < src_.size() && ok(src_[e + 1])) {
        ++e;
      } else {
        break;
      }
    }
    return e;
  }

  size_t lex_number(size_t p) {
    bool (*dec)(char) = is_digit;
    auto strip_us = [](std::string s) {
      s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
      return s;
    };
    // Float: digits ((.digits)? e[+-]?digits | .digits), not right after a '.' (so that
    // `x.0.1` is two subscripts).
    if (p == 0 || src_[p - 1] != '.') {
      size_t e = digits(p, dec);
      size_t f = e;
      bool frac = false, expo = false;
      if (f < src_.size() && src_[f] == '.' && f + 1 < src_.size() && dec(src_[f + 1])) {
        f = digits(f + 1, dec);
        frac = true;
      }
      if (f < src_.size() && (src_[f] == 'e' || src_[f] == 'E')) {
        size_t g = f + 1;
        if (g < src_.size() && (src_[g] == '+' || src_[g] == '-')) ++g;
        if (g < src_.size() && dec(src_[g])) f = digits(g, dec), expo = true;
      }
      if (frac || expo) {
        std::string s = strip_us(src_.substr(p, f - p));
        Token& t = push(Tok::Float, s, p);
        t.fval = std::strtod(s.c_str(), nullptr);  // overflow gives inf, like Python
        return f;
      }
    }
    // Integer: 0b / 0o / 0x prefixes, decimal without leading zeros, or zeros.
    int base = 10;
    size_t start = p, e;
    if (src_[p] == '0' && p + 1 < src_.size() && std::string_view("bBoOxX").find(src_[p + 1]) !=
                                                     std::string_view::npos) {
      char k = static_cast<char>(src_[p + 1] | 0x20);
      base = k == 'b' ? 2 : k == 'o' ? 8 : 16;
      start = p + 2;
      if (start < src_.size() && src_[start] == '_') ++start;
      bool (*ok)(char) = base == 2 ? is_bin_digit : base == 8 ? is_oct_digit : is_hex_digit;
      e = digits(start, ok);
      if (e == start) fail(p, "invalid integer literal");
    } else if (src_[p] == '0') {
      e = digits(p, is_zero);
    } else {
      e = digits(p, dec);
    }
    std::string s = strip_us(src_.substr(start, e - start));
    errno = 0;
    long long v = std::strtoll(s.c_str(), nullptr, base);
    if (errno == ERANGE) fail(p, "integer literal " + src_.substr(p, e - p) + " is too large");
    Token& t = push(Tok::Int, src_.substr(p, e - p), p);
    t.ival = v;
    return e;
  }

  size_t lex_string(size_t p) {
    char q = src_[p];
    size_t e = p + 1;
    while (e < src_.size() && src_[e] != q) e += src_[e] == '\\' ? 2 : 1;
    if (e >= src_.size()) fail(p, "unterminated string literal");
    std::string value = unescape(std::string_view(src_).substr(p + 1, e - p - 1), p);
    push(Tok::String, std::move(value), p);
    return e + 1;
  }

  // Jinja decodes string literals with Python's `.encode("ascii", "backslashreplace")
  // .decode("unicode-escape")`: non-ASCII characters survive (they round-trip through
  // \x/\u/\U escapes, which is also why a backslash right before one stays literal), the
  // usual escapes are interpreted and unknown ones are kept as written.
  std::string unescape(std::string_view body, size_t pos) const {
    std::string ascii;
    char buf[16];
    for (char32_t c : py::decode(body)) {
      if (c < 0x80) {
        ascii += static_cast<char>(c);
      } else {
        std::snprintf(buf, sizeof buf, c <= 0xFF ? "\\x%02x" : c <= 0xFFFF ? "\\u%04x" : "\\U%08x",
                      static_cast<unsigned>(c));
        ascii += buf;
      }
    }
    std::string out;
    auto hex = [&](size_t at, size_t n, const char* what) -> char32_t {
      if (at + n > ascii.size()) fail(pos, std::string("truncated ") + what + " escape");
      char32_t v = 0;
      for (size_t k = 0; k < n; ++k) {
        char h = static_cast<char>(ascii[at + k] | 0x20);
        if (ascii[at + k] >= '0' && ascii[at + k] <= '9') {
          v = v * 16 + static_cast<char32_t>(ascii[at + k] - '0');
        } else if (h >= 'a' && h <= 'f') {
          v = v * 16 + static_cast<char32_t>(h - 'a' + 10);
        } else {
          fail(pos, std::string("truncated ") + what + " escape");
        }
      }
      return v;
    };
    auto put = [&](char32_t cp) {
      if (cp > 0x10FFFF) fail(pos, "illegal Unicode character in string literal");
      if (cp >= 0xD800 && cp <= 0xDFFF) fail(pos, "surrogate code point in string literal");
      py::append_utf8(out, cp);
    };
    for (size_t i = 0; i < ascii.size(); ++i) {
      char c = ascii[i];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i + 1 >= ascii.size()) fail(pos, "\\ at end of string literal");
      char n = ascii[++i];
      switch (n) {
        case '\n': break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case 'x': put(hex(i + 1, 2, "\\xXX")), i += 2; break;
        case 'u': put(hex(i + 1, 4, "\\uXXXX")), i += 4; break;
        case 'U': put(hex(i + 1, 8, "\\UXXXXXXXX")), i += 8; break;
        case 'N': fail(pos, "\\N{...} escapes are not supported");
        default:
          if (n >= '0' && n <= '7') {
            char32_t v = static_cast<char32_t>(n - '0');
            for (int k = 0; k < 2 && i + 1 < ascii.size() && ascii[i + 1] >= '0' &&
                            ascii[i + 1] <= '7';
                 ++k)
              v = v * 8 + static_cast<char32_t>(ascii[++i] - '0');
            put(v);
          } else {
            out += '\\';
            out += n;
          }
      }
    }
    return out;
  }

  size_t lex_operator(size_t p, std::vector<char>& balance) {
    for (std::string_view op : kOperators) {
      if (!at(p, op)) continue;
      char c = op[0];
      if (op.size() == 1 && (c == '(' || c == '[' || c == '{')) {
        balance.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
      } else if (op.size() == 1 && (c == ')' || c == ']' || c == '}')) {
        if (balance.empty()) fail(p, std::string("unexpected '") + c + "'");
        if (balance.back() != c)
          fail(p, std::string("unexpected '") + c + "', expected '" + balance.back() + "'");
        balance.pop_back();
      }
      push(Tok::Op, std::string(op), p);
      return p + op.size();
    }
    size_t n = 1;
    auto c = static_cast<unsigned char>(src_[p]);
    if (c >= 0x80) n = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
    fail(p, "unexpected character '" + src_.substr(p, n) + "' in tag");
  }
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) { return Lexer(source).run(); }

}  // namespace whale::jinja
