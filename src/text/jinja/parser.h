// Recursive-descent parser from tokens to the syntax tree, following Jinja2's grammar
// (jinja2/parser.py): operator precedence, `is` tests, filters, tuples without parentheses,
// and the statements chat templates use. Tags that need a template loader or autoescaping
// (extends, include, import, block, call, autoescape) are rejected with a clear error.
#pragma once

#include <string_view>

#include "text/jinja/ast.h"

namespace whale::jinja {

struct ParseLimits {
  int max_depth = 100;  // nesting of blocks and of expressions
};

// Throws TemplateError with the line of the offending token.
Body parse(std::string_view source, const ParseLimits& limits = {});

}  // namespace whale::jinja
