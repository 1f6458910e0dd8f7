// Python operator semantics (see ops.h). Integers are 64-bit: where Python would grow a big
// integer we raise instead of wrapping, so a result is never silently wrong.
#include "text/jinja/ops.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "text/jinja/builtins.h"
#include "text/jinja/pystr.h"

namespace whale::jinja {
namespace {

[[noreturn]] void unsupported(const char* op, const Value& a, const Value& b) {
  raise("unsupported operand type(s) for {}: '{}' and '{}'", op, type_name(a), type_name(b));
}

[[noreturn]] void overflow() { raise("integer overflow (whale's integers are 64-bit)"); }

int64_t checked_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) overflow();
  return r;
}
int64_t checked_sub(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) overflow();
  return r;
}
int64_t checked_mul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) overflow();
  return r;
}

// Python's float divmod rules (Objects/floatobject.c): the remainder takes the divisor's sign.
double float_mod(double a, double b) {
  double mod = std::fmod(a, b);
  if (mod != 0) {
    if ((b < 0) != (mod < 0)) mod += b;
  } else {
    mod = std::copysign(0.0, b);
  }
  return mod;
}

double float_floordiv(double a, double b) {
  double mod = std::fmod(a, b);
  double div = (a - mod) / b;
  if (mod != 0 && ((b < 0) != (mod < 0))) div -= 1.0;
  if (div == 0) return std::copysign(0.0, a / b);
  double floordiv = std::floor(div);
  if (div - floordiv > 0.5) floordiv += 1.0;
  return floordiv;
}

Value repeat(const Value& seq, int64_t n) {
  if (n < 0) n = 0;
  if (seq.is_string()) {
    const std::string& s = seq.str();
    if (!s.empty() && static_cast<uint64_t>(n) > value_limits().max_string_bytes / s.size())
      check_string_size(value_limits().max_string_bytes + 1);
    std::string out;
    out.reserve(s.size() * static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out += s;
    return Value(std::move(out));
  }
  const auto& items = seq.list().items;
  if (!items.empty() && static_cast<uint64_t>(n) > value_limits().max_list_items / items.size())
    check_list_size(value_limits().max_list_items + 1);
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
  return Value::make_list(std::move(out), seq.list().kind);
}

bool is_int_like(const Value& v) { return v.is_int() || v.is_bool(); }

}  // namespace

Value binary_op(BinOp op, const Value& a, const Value& b) {
  // Undefined refuses arithmetic (Jinja's Undefined.__add__ etc. raise).
  require_defined(a);
  require_defined(b);
  const bool nums = a.is_number() && b.is_number();
  const bool floats = nums && (a.is_float() || b.is_float());
  switch (op) {
    case BinOp::Add:
      if (floats) return Value(a.number() + b.number());
      if (nums) return Value(checked_add(a.int_value(), b.int_value()));
      if (a.is_string() && b.is_string()) {
        check_string_size(a.str().size() + b.str().size());
        return Value(a.str() + b.str());
      }
      if (a.is_plain_list() && b.is_plain_list() && a.list().kind == b.list().kind) {
        std::vector<Value> out = a.list().items;
        check_list_size(out.size() + b.list().items.size());
        out.insert(out.end(), b.list().items.begin(), b.list().items.end());
        return Value::make_list(std::move(out), a.list().kind);
      }
      if (a.is_string() || a.is_plain_list())
        raise("can only concatenate {} (not \"{}\") to {}", type_name(a), type_name(b),
              type_name(a));
      unsupported("+", a, b);
    case BinOp::Sub:
      if (floats) return Value(a.number() - b.number());
      if (nums) return Value(checked_sub(a.int_value(), b.int_value()));
      unsupported("-", a, b);
    case BinOp::Mul:
      if (floats) return Value(a.number() * b.number());
      if (nums) return Value(checked_mul(a.int_value(), b.int_value()));
      if ((a.is_string() || a.is_plain_list()) && is_int_like(b)) return repeat(a, b.int_value());
      if ((b.is_string() || b.is_plain_list()) && is_int_like(a)) return repeat(b, a.int_value());
      if (a.is_string() || a.is_plain_list() || b.is_string() || b.is_plain_list())
        raise("can't multiply sequence by non-int of type '{}'",
              type_name(a.is_string() || a.is_plain_list() ? b : a));
      unsupported("*", a, b);
    case BinOp::Div:
      if (!nums) unsupported("/", a, b);
      if (b.number() == 0) raise("division by zero");
      return Value(a.number() / b.number());
    case BinOp::FloorDiv:
      if (!nums) unsupported("//", a, b);
      if (floats) {
        if (b.number() == 0) raise("float floor division by zero");
        return Value(float_floordiv(a.number(), b.number()));
      } else {
        int64_t x = a.int_value(), y = b.int_value();
        if (y == 0) raise("integer division or modulo by zero");
        if (x == std::numeric_limits<int64_t>::min() && y == -1) overflow();
        int64_t q = x / y;
        if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
        return Value(q);
      }
    case BinOp::Mod:
      if (a.is_string()) return Value(percent_format(a.str(), b));
      if (!nums) unsupported("%", a, b);
      if (floats) {
        if (b.number() == 0) raise("float modulo");
        return Value(float_mod(a.number(), b.number()));
      } else {
        int64_t x = a.int_value(), y = b.int_value();
        if (y == 0) raise("integer division or modulo by zero");
        if (y == -1) return Value(int64_t{0});
        int64_t r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) r += y;
        return Value(r);
      }
    case BinOp::Pow:
      if (!nums) unsupported("** or pow()", a, b);
      if (!floats && b.int_value() >= 0) {
        int64_t base = a.int_value(), e = b.int_value(), r = 1;
        while (e > 0) {  // square-and-multiply with overflow checks
          if (e & 1) r = checked_mul(r, base);
          e >>= 1;
          if (e) base = checked_mul(base, base);
        }
        return Value(r);
      } else {
        double x = a.number(), y = b.number();
        if (x == 0 && y < 0) raise("0.0 cannot be raised to a negative power");
        if (x < 0 && y != std::floor(y)) raise("complex results are not supported");
        double r = std::pow(x, y);
        if (std::isinf(r) && !std::isinf(x) && !std::isinf(y)) raise("numerical result out of range");
        return Value(r);
      }
  }
  raise("unknown operator");
}

Value unary_minus(const Value& v) {
  require_defined(v);
  if (v.is_float()) return Value(-v.as_float());
  if (is_int_like(v)) return Value(checked_sub(0, v.int_value()));
  raise("bad operand type for unary -: '{}'", type_name(v));
}

Value unary_plus(const Value& v) {
  require_defined(v);
  if (v.is_float()) return v;
  if (is_int_like(v)) return Value(v.int_value());
  raise("bad operand type for unary +: '{}'", type_name(v));
}

// ---- shared number formatting ------------------------------------------------------------------

namespace {

struct Spec {
  char fill = ' ';
  char align = 0;  // '<' '>' '^' '=' or 0 (type default)
  char sign = '-';
  bool alt = false, zero = false, left = false;
  int64_t width = -1, precision = -1;
  char grouping = 0;
  char type = 0;
};

std::string digits_of(uint64_t v, int base, bool upper) {
  if (v == 0) return "0";
  std::string s;
  const char* d = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  while (v) s.insert(s.begin(), d[v % static_cast<uint64_t>(base)]), v /= static_cast<uint64_t>(base);
  return s;
}

std::string group(const std::string& digits, char sep) {
  std::string out;
  int n = static_cast<int>(digits.size());
  for (int i = 0; i < n; ++i) {
    if (i && (n - i) % 3 == 0) out += sep;
    out += digits[static_cast<size_t>(i)];
  }
  return out;
}

// Pads `body` (with its sign/prefix split off so '=' and zero-padding go between).
std::string pad(const std::string& sign, const std::string& body, const Spec& s, char def_align) {
  size_t len = py::length(sign) + py::length(body);
  if (s.width < 0 || len >= static_cast<size_t>(s.width)) return sign + body;
  size_t n = static_cast<size_t>(s.width) - len;
  char align = s.align ? s.align : def_align;
  std::string fill;
  for (size_t i = 0; i < n; ++i) fill += s.fill;
  switch (align) {
    case '<': return sign + body + fill;
    case '^': {
      std::string l, r;
      for (size_t i = 0; i < n / 2; ++i) l += s.fill;
      for (size_t i = 0; i < n - n / 2; ++i) r += s.fill;
      return l + sign + body + r;
    }
    case '=': return sign + fill + body;
    default: return fill + sign + body;
  }
}

std::string sign_of(bool negative, char sign) {
  if (negative) return "-";
  return sign == '+' ? "+" : sign == ' ' ? " " : "";
}

std::string format_int(int64_t v, Spec s) {
  char t = s.type ? s.type : 'd';
  int base = t == 'x' || t == 'X' ? 16 : t == 'o' ? 8 : t == 'b' ? 2 : 10;
  uint64_t mag = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  std::string digits = digits_of(mag, base, t == 'X');
  if (s.precision >= 0 && static_cast<int64_t>(digits.size()) < s.precision)  // %.3d
    digits.insert(0, static_cast<size_t>(s.precision) - digits.size(), '0');
  if (s.grouping) digits = group(digits, s.grouping);
  const char* prefix = "";
  if (s.alt && base != 10) prefix = base == 16 ? (t == 'X' ? "0X" : "0x") : base == 8 ? "0o" : "0b";
  return pad(sign_of(v < 0, s.sign).append(prefix), digits, s, '>');
}

std::string format_float(double v, Spec s) {
  char t = s.type;
  bool percent = t == '%';
  if (percent) v *= 100, t = 'f';
  int prec = s.precision >= 0 ? static_cast<int>(s.precision) : 6;
  bool neg = std::signbit(v) && !std::isnan(v);
  double mag = std::fabs(v);
  std::string body;
  if (t == 0) {
    if (s.precision < 0) {
      body = py::float_repr(mag);
    } else {  // like 'g', but keeps at least one digit after the point
      char buf[512];
      std::snprintf(buf, sizeof buf, "%.*g", prec == 0 ? 1 : prec, mag);
      body = buf;
      if (std::isfinite(mag) && body.find_first_of(".e") == std::string::npos) body += ".0";
    }
  } else {
    char fmtbuf[16];
    std::snprintf(fmtbuf, sizeof fmtbuf, "%%%s.*%c", s.alt ? "#" : "", t);
    int n = std::snprintf(nullptr, 0, fmtbuf, prec, mag);
    if (n < 0 || static_cast<size_t>(n) > value_limits().max_string_bytes)
      check_string_size(value_limits().max_string_bytes + 1);
    std::string buf(static_cast<size_t>(n) + 1, '\0');
    std::snprintf(buf.data(), buf.size(), fmtbuf, prec, mag);
    buf.resize(static_cast<size_t>(n));
    body = buf;
  }
  if (s.grouping && std::isfinite(mag)) {
    size_t end = body.find_first_not_of("0123456789");
    body = group(body.substr(0, end), s.grouping) + (end == std::string::npos ? "" : body.substr(end));
  }
  if (percent) body += '%';
  return pad(sign_of(neg, s.sign), body, s, '>');
}

std::string format_str(const std::string& str, const Spec& s) {
  std::string body = str;
  if (s.precision >= 0 && py::length(body) > static_cast<size_t>(s.precision))
    body = py::encode(py::decode(body).substr(0, static_cast<size_t>(s.precision)));
  return pad("", body, s, '<');
}

}  // namespace

// ---- printf-style ----------------------------------------------------------------------------

std::string percent_format(const std::string& fmt, const Value& args) {
  std::vector<Value> pos;
  const bool tuple = args.is_list() && args.list().kind == ListObj::Kind::Tuple;
  if (tuple) pos = args.list().items;
  else pos.push_back(args);
  const DictObj* mapping = args.is_mapping() ? &args.dict() : nullptr;
  const bool dictlike = mapping || (args.is_list() && args.list().kind == ListObj::Kind::List);
  size_t argi = 0;
  auto next_arg = [&]() -> const Value& {
    if (argi >= pos.size()) raise("not enough arguments for format string");
    return pos[argi++];
  };
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) raise("incomplete format");
    const Value* arg = nullptr;
    if (fmt[i] == '(') {
      if (!mapping) raise("format requires a mapping");
      size_t depth = 1, k = i + 1;
      while (k < fmt.size() && depth) depth += fmt[k] == '(' ? 1 : fmt[k] == ')' ? -1 : 0, ++k;
      if (depth) raise("incomplete format key");
      std::string key = fmt.substr(i + 1, k - i - 2);
      arg = mapping->find(std::string_view(key));
      if (!arg) raise("KeyError: {}", py::repr(key));
      i = k;
    }
    Spec s;
    for (; i < fmt.size(); ++i) {
      char f = fmt[i];
      if (f == '-') s.left = true;
      else if (f == '+') s.sign = '+';
      else if (f == ' ') { if (s.sign != '+') s.sign = ' '; }
      else if (f == '#') s.alt = true;
      else if (f == '0') s.zero = true;
      else break;
    }
    auto read_num = [&](int64_t& dst) {
      if (i < fmt.size() && fmt[i] == '*') {
        const Value& w = next_arg();
        if (!is_int_like(w)) raise("* wants int");
        dst = w.int_value();
        if (dst > 100000 || dst < -100000) raise("width or precision too big");
        ++i;
        return;
      }
      int64_t n = -1;
      while (i < fmt.size() && fmt[i] >= '0' && fmt[i] <= '9') {
        n = (n < 0 ? 0 : n) * 10 + (fmt[i++] - '0');
        if (n > 100000) raise("width or precision too big");
      }
      dst = n;
    };
    read_num(s.width);
    if (s.width < -1) s.left = true, s.width = -s.width;
    if (i < fmt.size() && fmt[i] == '.') {
      ++i;
      read_num(s.precision);
      if (s.precision < 0) s.precision = 0;
    }
    while (i < fmt.size() && (fmt[i] == 'h' || fmt[i] == 'l' || fmt[i] == 'L')) ++i;
    if (i >= fmt.size()) raise("incomplete format");
    char conv = fmt[i];
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (!arg) arg = &next_arg();
    const Value& v = *arg;
    // printf pads on the left unless '-'; '0' pads numbers after their sign.
    if (s.left) s.align = '<';
    else if (s.zero && conv != 's' && conv != 'r' && conv != 'c') s.align = '=', s.fill = '0';
    else s.align = '>';
    switch (conv) {
      case 's': out += format_str(to_str(v), s); break;
      case 'r': out += format_str(repr(v), s); break;
      case 'c': {
        std::string ch;
        if (is_int_like(v) && v.int_value() >= 0 && v.int_value() <= 0x10FFFF) {
          py::append_utf8(ch, static_cast<char32_t>(v.int_value()));
        } else if (v.is_string() && py::length(v.str()) == 1) {
          ch = v.str();
        } else {
          raise("%c requires int or char");
        }
        s.precision = -1;
        out += format_str(ch, s);
        break;
      }
      case 'd': case 'i': case 'u': case 'x': case 'X': case 'o': {
        int64_t n;
        if (is_int_like(v)) {
          n = v.int_value();
        } else if (v.is_float() && (conv == 'd' || conv == 'i' || conv == 'u')) {
          double d = std::trunc(v.as_float());
          if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) raise("cannot convert float {} to integer", to_str(v));
          n = static_cast<int64_t>(d);
        } else {
          raise("%{} format: {} is required, not {}", conv,
                conv == 'x' || conv == 'X' || conv == 'o' ? "an integer" : "a real number",
                type_name(v));
        }
        s.type = conv == 'i' || conv == 'u' ? 'd' : conv;
        out += format_int(n, s);
        break;
      }
      case 'e': case 'E': case 'f': case 'F': case 'g': case 'G':
        if (!v.is_number()) raise("must be real number, not {}", type_name(v));
        s.type = conv;
        out += format_float(v.number(), s);
        break;
      default:
        raise("unsupported format character '{}' (0x{:x}) at index {}", conv,
              static_cast<unsigned char>(conv), i);
    }
    check_string_size(out.size());
  }
  if (argi < pos.size() && !dictlike) raise("not all arguments converted during string formatting");
  return out;
}

// ---- str.format --------------------------------------------------------------------------------

namespace {

Spec parse_spec(const std::string& spec) {
  Spec s;
  size_t i = 0;
  auto is_align = [](char c) { return c == '<' || c == '>' || c == '^' || c == '='; };
  if (spec.size() >= 2 && is_align(spec[1])) {
    s.fill = spec[0], s.align = spec[1], i = 2;
  } else if (!spec.empty() && is_align(spec[0])) {
    s.align = spec[0], i = 1;
  }
  if (i < spec.size() && (spec[i] == '+' || spec[i] == '-' || spec[i] == ' ')) s.sign = spec[i++];
  if (i < spec.size() && spec[i] == 'z') ++i;
  if (i < spec.size() && spec[i] == '#') s.alt = true, ++i;
  if (i < spec.size() && spec[i] == '0') {
    if (!s.align) s.fill = '0', s.align = '=';
    ++i;
  }
  auto num = [&]() {
    int64_t n = -1;
    while (i < spec.size() && spec[i] >= '0' && spec[i] <= '9') {
      n = (n < 0 ? 0 : n) * 10 + (spec[i++] - '0');
      if (n > 100000) raise("format width or precision too big");
    }
    return n;
  };
  s.width = num();
  if (i < spec.size() && (spec[i] == ',' || spec[i] == '_')) s.grouping = spec[i++];
  if (i < spec.size() && spec[i] == '.') {
    ++i;
    s.precision = num();
    if (s.precision < 0) raise("format specifier missing precision");
  }
  if (i < spec.size()) s.type = spec[i++];
  if (i != spec.size()) raise("invalid format specifier '{}'", spec);
  return s;
}

std::string format_value(const Value& v, const std::string& spec) {
  if (spec.empty()) return to_str(v);
  Spec s = parse_spec(spec);
  if (v.is_string()) {
    if (s.type && s.type != 's') raise("unknown format code '{}' for object of type 'str'", s.type);
    return format_str(v.str(), s);
  }
  if (is_int_like(v)) {
    if (s.type == 'c') {
      std::string ch;
      py::append_utf8(ch, static_cast<char32_t>(v.int_value()));
      s.precision = -1;
      return pad("", ch, s, '<');
    }
    if (!s.type || s.type == 'd' || s.type == 'n' || s.type == 'x' || s.type == 'X' ||
        s.type == 'o' || s.type == 'b') {
      if (s.type == 'n') s.type = 'd';
      if (s.precision >= 0) raise("precision not allowed in integer format specifier");
      return format_int(v.int_value(), s);
    }
    return format_float(static_cast<double>(v.int_value()), s);
  }
  if (v.is_float()) {
    if (s.type && std::string_view("eEfFgG%").find(s.type) == std::string_view::npos)
      raise("unknown format code '{}' for object of type 'float'", s.type);
    return format_float(v.as_float(), s);
  }
  raise("unsupported format string passed to {}.__format__", type_name(v));
}

}  // namespace

std::string brace_format(const std::string& fmt, const CallArgs& args) {
  std::string out;
  size_t auto_idx = 0;
  bool used_auto = false, used_manual = false;
  for (size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
        out += '}', ++i;
        continue;
      }
      raise("Single '}}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{', ++i;
      continue;
    }
    // Field: name [!conv] [:spec] up to the matching '}' ('[...]' may hold ':' or '}').
    size_t close = i + 1, brackets = 0;
    for (; close < fmt.size(); ++close) {
      char f = fmt[close];
      if (f == '[') ++brackets;
      else if (f == ']' && brackets) --brackets;
      else if (!brackets && f == '{') raise("nested replacement fields in format specs are not supported");
      else if (!brackets && f == '}') break;
    }
    if (close >= fmt.size()) raise("expected '}}' before end of string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    i = close;
    std::string spec, conv;
    size_t colon = std::string::npos;
    {
      size_t br = 0;
      for (size_t j = 0; j < field.size(); ++j) {
        if (field[j] == '[') ++br;
        else if (field[j] == ']' && br) --br;
        else if (!br && field[j] == ':') {
          colon = j;
          break;
        }
      }
    }
    if (colon != std::string::npos) spec = field.substr(colon + 1), field.resize(colon);
    size_t bang = field.find('!');
    if (bang != std::string::npos) conv = field.substr(bang + 1), field.resize(bang);
    // arg_name then .attr / [key] chain
    size_t e = field.find_first_of(".[");
    std::string name = field.substr(0, e);
    Value v;
    if (name.empty() || name.find_first_not_of("0123456789") == std::string::npos) {
      size_t idx;
      if (name.empty()) {
        if (used_manual) raise("cannot switch from manual field specification to automatic field numbering");
        used_auto = true;
        idx = auto_idx++;
      } else {
        if (used_auto) raise("cannot switch from automatic field numbering to manual field specification");
        used_manual = true;
        idx = static_cast<size_t>(parse_index(name));
      }
      if (idx >= args.pos.size()) raise("Replacement index {} out of range for positional args tuple", idx);
      v = args.pos[idx];
    } else {
      bool found = false;
      for (const auto& [k2, val] : args.kw)
        if (k2 == name) v = val, found = true;
      if (!found) raise("KeyError: {}", py::repr(name));
    }
    while (e != std::string::npos && e < field.size()) {
      if (field[e] == '.') {
        size_t n = field.find_first_of(".[", e + 1);
        v = getattr_value(v, field.substr(e + 1, n == std::string::npos ? std::string::npos : n - e - 1));
        e = n;
      } else {
        size_t n = field.find(']', e);
        if (n == std::string::npos) raise("Missing ']' in format string");
        std::string key = field.substr(e + 1, n - e - 1);
        Value kv = !key.empty() && key.find_first_not_of("0123456789") == std::string::npos
                       ? Value(parse_index(key))
                       : Value(key);
        v = getitem_value(v, kv);
        e = n + 1 < field.size() ? n + 1 : std::string::npos;
      }
    }
    if (conv == "r") v = Value(repr(v));
    else if (conv == "s") v = Value(to_str(v));
    else if (!conv.empty()) raise("Unknown conversion specifier {}", conv);
    out += format_value(v, spec);
    check_string_size(out.size());
  }
  return out;
}

}  // namespace whale::jinja
