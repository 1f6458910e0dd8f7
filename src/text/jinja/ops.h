// Python operators on Values: arithmetic with int/float rules (7 // 2 == 3, 7 / 2 == 3.5,
// -7 % 3 == 2), sequence concatenation/repetition, and the two string formatting mini-languages
// a template can reach: `"%s" % x` (and the `format` filter) and `"{}".format(x)`.
#pragma once

#include <string>

#include "text/jinja/ast.h"
#include "text/jinja/value.h"

namespace whale::jinja {

Value binary_op(BinOp op, const Value& a, const Value& b);
Value unary_minus(const Value& v);
Value unary_plus(const Value& v);

// fmt % args (printf-style): args is a tuple, a mapping (for %(name)s) or a single value.
std::string percent_format(const std::string& fmt, const Value& args);
// fmt.format(*args, **kwargs)
std::string brace_format(const std::string& fmt, const CallArgs& args);

}  // namespace whale::jinja
