// Jinja template tokenizer, with the whitespace rules of Hugging Face's environment.
//
// HF compiles chat templates with trim_blocks=True (the first newline after a block tag `%}`
// or comment is dropped) and lstrip_blocks=True (whitespace before a block or comment tag
// that starts a line is dropped), plus the per-tag `-` (strip all whitespace on that side)
// and `+` (disable lstrip/trim for that tag) markers. Like Jinja2, the source's newlines are
// normalized to "\n" and a single trailing newline is dropped (keep_trailing_newline=False).
// Whitespace handling is entirely resolved here: data tokens carry their final text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace whale::jinja {

enum class Tok : uint8_t {
  Data,        // literal template text
  VarBegin,    // {{
  VarEnd,      // }}
  BlockBegin,  // {%
  BlockEnd,    // %}
  Name,
  String,      // text holds the unescaped value
  Int,         // ival
  Float,       // fval
  Op,          // text holds the operator: + - * / // % ** ~ ( ) [ ] { } == != < <= > >= = . : | , ;
  Eof,
};

struct Token {
  Tok type;
  std::string text;
  int64_t ival = 0;
  double fval = 0;
  int line = 1;
};

// Throws TemplateError (with its line) on malformed input: unclosed comment/raw/string,
// unbalanced brackets, characters that start no token.
std::vector<Token> tokenize(std::string_view source);

}  // namespace whale::jinja
