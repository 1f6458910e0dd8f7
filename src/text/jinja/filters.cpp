// Filters with Jinja2 3.1 semantics (jinja2/filters.py), plus HF's
// tojson. Filters that Jinja implements as generators (map, select, reject, selectattr,
// rejectattr, unique, items) return single-pass iterators here too, because templates can
// observe the difference: a generator is always true and has no length.
#include <algorithm>
#include <cmath>
#include <map>

#include "text/jinja/builtins.h"
#include "text/jinja/interpreter.h"
#include "text/jinja/ops.h"
#include "text/jinja/pystr.h"

namespace whale::jinja {
namespace {

void no_rest(const Args& a, std::string_view fn) {
  if (!a.rest.empty()) raise("{}() got too many positional arguments", fn);
}

Value iterator_of(std::vector<Value> items) {
  return Value::make_list(std::move(items), ListObj::Kind::Iterator);
}

// Jinja's make_attrgetter: "a.b.0" looks up item by item (digits become integer indices).
std::vector<Value> attribute_parts(const Value& attribute) {
  if (attribute.is_int()) return {attribute};
  if (!attribute.is_string()) raise("attribute must be a string or integer, not {}", type_name(attribute));
  std::vector<Value> parts;
  for (const std::string& p : py::split(attribute.str(), std::string("."), -1)) {
    if (!p.empty() && p.find_first_not_of("0123456789") == std::string::npos)
      parts.emplace_back(parse_index(p));
    else
      parts.emplace_back(p);
  }
  return parts;
}

Value get_attribute(Value item, const std::vector<Value>& parts, const Value* def) {
  for (const Value& p : parts) item = getitem_value(item, p);
  if (def && !def->is_none() && item.is_undefined()) return *def;
  return item;
}

Value ignore_case(const Value& v) { return v.is_string() ? Value(py::lower(v.str())) : v; }

// Sort key for sort/unique/min/max/dictsort: attribute(s) looked up, strings lower-cased
// unless case_sensitive. "a,b" sorts by several attributes.
struct KeyFn {
  std::vector<std::vector<Value>> attrs;  // empty: the item itself
  bool case_sensitive = false;
  Value operator()(const Value& item) const {
    auto post = [&](Value v) { return case_sensitive ? v : ignore_case(v); };
    if (attrs.empty()) return post(item);
    if (attrs.size() == 1) return post(get_attribute(item, attrs[0], nullptr));
    std::vector<Value> keys;
    for (const auto& a : attrs) keys.push_back(post(get_attribute(item, a, nullptr)));
    return Value::make_list(std::move(keys));
  }
};

KeyFn make_key(const Args& a, size_t attr_idx, size_t case_idx, bool multi) {
  KeyFn k;
  k.case_sensitive = a.bool_or(case_idx, false);
  if (a.has(attr_idx) && !a.get(attr_idx).is_none()) {
    const Value& attr = a.get(attr_idx);
    if (multi && attr.is_string()) {
      for (const std::string& p : py::split(attr.str(), std::string(","), -1))
        k.attrs.push_back(attribute_parts(Value(p)));
    } else {
      k.attrs.push_back(attribute_parts(attr));
    }
  }
  return k;
}

void sort_by(std::vector<Value>& items, const KeyFn& key, bool reverse) {
  std::vector<std::pair<Value, size_t>> keyed;
  keyed.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) keyed.emplace_back(key(items[i]), i);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? compare(y.first, x.first, "<") : compare(x.first, y.first, "<");
  });
  std::vector<Value> out;
  out.reserve(items.size());
  for (auto& k : keyed) out.push_back(items[k.second]);
  items = std::move(out);
}

// ---- filters -----------------------------------------------------------------------------------

Value f_abs(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "abs", {});
  no_rest(a, "abs");
  if (v.is_float()) return Value(std::fabs(v.as_float()));
  if (v.is_int() || v.is_bool()) return v.int_value() < 0 ? unary_minus(v) : Value(v.int_value());
  raise("bad operand type for abs(): '{}'", type_name(v));
}

Value f_attr(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "attr", {"name"});
  no_rest(a, "attr");
  if (!a.has(0)) raise("attr() missing required argument 'name'");
  const std::string& name = a.get_str(0);
  require_defined(v);
  // Python getattr only: no fallback to dict keys.
  if (v.is_namespace() || v.is_loop()) return getattr_value(v, name);
  if (auto m = get_method(v, name)) return *m;
  return Value::undefined(fmt::format("'{} object' has no attribute '{}'", type_name(v), name));
}

Value f_batch(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "batch", {"linecount", "fill_with"});
  no_rest(a, "batch");
  if (!a.has(0)) raise("batch() missing required argument 'linecount'");
  int64_t n = a.get_int(0);
  if (n <= 0) raise("batch(): linecount must be positive");
  std::vector<Value> out, tmp;
  for (const Value& item : iterate(v)) {
    if (static_cast<int64_t>(tmp.size()) == n) out.push_back(Value::make_list(std::move(tmp))), tmp.clear();
    tmp.push_back(item);
  }
  if (!tmp.empty()) {
    if (a.has(1) && !a.get(1).is_none())
      while (static_cast<int64_t>(tmp.size()) < n) tmp.push_back(a.get(1));
    out.push_back(Value::make_list(std::move(tmp)));
  }
  return iterator_of(std::move(out));
}

Value f_capitalize(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "capitalize", {});
  no_rest(a, "capitalize");
  return Value(py::capitalize(to_str(v)));
}

Value f_center(Interpreter& in, const Value& v, CallArgs& c) {
  Args a(c, "center", {"width"});
  no_rest(a, "center");
  CallArgs m;
  m.pos.push_back(a.has(0) ? a.get(0) : Value(80));
  return in.call(getattr_value(Value(to_str(v)), "center"), m);
}

Value f_default(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "default", {"default_value", "boolean"});
  no_rest(a, "default");
  bool boolean = a.bool_or(1, false);
  if (v.is_undefined() || (boolean && !truthy(v))) return a.has(0) ? a.get(0) : Value("");
  return v;
}

Value f_dictsort(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "dictsort", {"case_sensitive", "by", "reverse"});
  no_rest(a, "dictsort");
  if (!v.is_mapping()) raise("dictsort() needs a mapping, not {}", type_name(v));
  std::string by = a.has(1) ? a.get_str(1) : "key";
  if (by != "key" && by != "value") raise("You can only sort by either 'key' or 'value'");
  size_t pos = by == "key" ? 0 : 1;
  std::vector<Value> items;
  for (const auto& [k, x] : v.dict().items) items.push_back(Value::make_tuple({k, x}));
  KeyFn key;
  key.case_sensitive = a.bool_or(0, false);
  key.attrs.push_back({Value(static_cast<int64_t>(pos))});
  sort_by(items, key, a.bool_or(2, false));
  return Value::make_list(std::move(items));
}

Value f_escape(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "escape", {});
  no_rest(a, "escape");
  std::string out;
  for (char ch : to_str(v)) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += ch;
    }
  }
  return Value(out);
}

Value f_first(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "first", {});
  no_rest(a, "first");
  if (v.is_list() && v.list().kind == ListObj::Kind::Iterator) {
    ListObj& l = v.list();  // next(iter(generator)) consumes one item
    if (l.cursor < l.items.size()) return l.items[l.cursor++];
  } else {
    std::vector<Value> items = iterate(v);
    if (!items.empty()) return items.front();
  }
  return Value::undefined("No first item, sequence was empty.");
}

Value f_last(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "last", {});
  no_rest(a, "last");
  // next(iter(reversed(seq))): needs a reversible sequence.
  if (v.is_undefined() || (v.is_list() && v.list().kind == ListObj::Kind::Iterator) ||
      v.is_namespace() || !(v.is_string() || v.is_list() || v.is_dict()))
    raise("'{}' object is not reversible", type_name(v));
  std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

// Python float(str): optional whitespace, sign, digits with single underscores, inf/nan.
bool parse_py_float(std::string s, double* out) {
  s = py::strip(s, std::nullopt, true, true);
  std::string t;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      bool ok = i > 0 && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i - 1])) &&
                std::isdigit(static_cast<unsigned char>(s[i + 1]));
      if (!ok) return false;
      continue;
    }
    t += s[i];
  }
  if (t.empty()) return false;
  std::string low = py::lower(t);
  size_t sign = low[0] == '+' || low[0] == '-' ? 1 : 0;
  std::string body = low.substr(sign);
  if (body == "inf" || body == "infinity" || body == "nan") {
    double x = body == "nan" ? NAN : INFINITY;
    *out = low[0] == '-' ? -x : x;
    return true;
  }
  if (body.empty() || body.find_first_not_of("0123456789.e+-") != std::string::npos) return false;
  if (body.find('x') != std::string::npos) return false;
  char* end = nullptr;
  *out = std::strtod(t.c_str(), &end);
  return end && *end == '\0';
}

// Python int(str, base): whitespace, sign, optional prefix matching base, '_' separators.
bool parse_py_int(const std::string& str, int64_t base, int64_t* out) {
  std::string s = py::strip(str, std::nullopt, true, true);
  bool neg = false;
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  if (base == 0 || base == 16 || base == 8 || base == 2) {
    if (i + 1 < s.size() && s[i] == '0') {
      char p = static_cast<char>(s[i + 1] | 0x20);
      int64_t b = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
      if (b && (base == 0 || base == b)) base = b, i += 2;
    }
  }
  if (base == 0) base = 10;
  if (base < 2 || base > 36) raise("int() base must be >= 2 and <= 36, or 0");
  uint64_t v = 0;
  bool any = false, prev_us = true;
  for (; i < s.size(); ++i) {
    char ch = s[i];
    if (ch == '_') {
      if (prev_us) return false;
      prev_us = true;
      continue;
    }
    int d = std::isdigit(static_cast<unsigned char>(ch)) ? ch - '0'
            : std::isalpha(static_cast<unsigned char>(ch)) ? (ch | 0x20) - 'a' + 10
                                                            : 99;
    if (d >= base) return false;
    if (v > (UINT64_MAX - static_cast<uint64_t>(d)) / static_cast<uint64_t>(base)) raise("integer overflow (whale's integers are 64-bit)");
    v = v * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
    any = true, prev_us = false;
  }
  if (!any || prev_us) return false;
  if (v > static_cast<uint64_t>(INT64_MAX) + (neg ? 1 : 0)) raise("integer overflow (whale's integers are 64-bit)");
  *out = neg ? static_cast<int64_t>(0 - v) : static_cast<int64_t>(v);
  return true;
}

Value float_to_int(double d) {
  if (std::isnan(d)) raise("cannot convert float NaN to integer");
  if (std::isinf(d)) raise("cannot convert float infinity to integer");
  double t = std::trunc(d);
  if (std::fabs(t) >= 9.2233720368547758e18) raise("integer overflow (whale's integers are 64-bit)");
  return Value(static_cast<int64_t>(t));
}

Value f_float(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "float", {"default"});
  no_rest(a, "float");
  Value def = a.has(0) ? a.get(0) : Value(0.0);
  require_defined(v);  // Undefined.__float__ raises
  if (v.is_float()) return v;
  if (v.is_int() || v.is_bool()) return Value(static_cast<double>(v.int_value()));
  double d;
  if (v.is_string() && parse_py_float(v.str(), &d)) return Value(d);
  return def;
}

Value f_int(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "int", {"default", "base"});
  no_rest(a, "int");
  Value def = a.has(0) ? a.get(0) : Value(0);
  int64_t base = a.int_or(1, 10);
  require_defined(v);  // Undefined.__int__ raises
  if (v.is_int() || v.is_bool()) return Value(v.int_value());
  if (v.is_float()) return float_to_int(v.as_float());
  if (v.is_string()) {
    int64_t i;
    if (parse_py_int(v.str(), base, &i)) return Value(i);
    double d;  // "42.23"|int gives 42, as in Jinja
    if (parse_py_float(v.str(), &d)) {
      if (std::isnan(d)) return def;
      return float_to_int(d);
    }
  }
  return def;
}

Value f_format(Interpreter&, const Value& v, CallArgs& c) {
  if (!c.pos.empty() && !c.kw.empty()) raise("can't handle positional and keyword arguments at the same time");
  Value args;
  if (!c.kw.empty()) {
    args = Value::make_dict();
    for (auto& [k, x] : c.kw) args.dict().set(Value(k), x);
  } else {
    args = Value::make_tuple(c.pos);
  }
  return Value(percent_format(to_str(v), args));
}

Value f_indent(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "indent", {"width", "first", "blank"});
  no_rest(a, "indent");
  std::string ind;
  if (a.has(0) && a.get(0).is_string()) {
    ind = a.get(0).str();
  } else {
    int64_t width = std::max<int64_t>(0, a.int_or(0, 4));
    check_string_size(static_cast<size_t>(width));
    ind.assign(static_cast<size_t>(width), ' ');
  }
  // Jinja appends "\n" to the value itself (no str()), so only strings can be indented.
  require_defined(v);
  if (!v.is_string()) raise("unsupported operand type(s) for +=: '{}' and 'str'", type_name(v));
  std::string s = v.str() + "\n";  // Jinja's quirk so that splitlines keeps a last blank line
  std::vector<std::string> lines = py::splitlines(s, false);
  std::string out;
  if (a.bool_or(2, false)) {
    for (size_t i = 0; i < lines.size(); ++i) out += (i ? "\n" + ind : "") + lines[i];
  } else {
    out = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) out += "\n" + (lines[i].empty() ? "" : ind + lines[i]);
  }
  if (a.bool_or(1, false)) out = ind + out;
  check_string_size(out.size());
  return Value(out);
}

Value f_items(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "items", {});
  no_rest(a, "items");
  if (v.is_undefined()) return iterator_of({});
  if (!v.is_mapping()) raise("Can only get item pairs from a mapping.");
  std::vector<Value> out;
  for (const auto& [k, x] : v.dict().items) out.push_back(Value::make_tuple({k, x}));
  return iterator_of(std::move(out));
}

Value f_join(Interpreter& in, const Value& v, CallArgs& c) {
  Args a(c, "join", {"d", "attribute"});
  no_rest(a, "join");
  std::string sep = a.has(0) ? to_str(a.get(0)) : "";
  std::vector<Value> parts;
  bool attr = a.has(1) && !a.get(1).is_none();
  if (attr) parts = attribute_parts(a.get(1));
  std::string out;
  size_t i = 0;
  std::vector<Value> items = iterate(v);
  in.count_iterations(items.size());
  for (const Value& item : items) {
    if (i++) out += sep;
    out += to_str(attr ? get_attribute(item, parts, nullptr) : item);
    check_string_size(out.size());
  }
  return Value(out);
}

Value f_length(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "length", {});
  no_rest(a, "length");
  return Value(static_cast<int64_t>(len(v)));
}

Value f_list(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "list", {});
  no_rest(a, "list");
  return Value::make_list(iterate(v));
}

Value f_lower(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "lower", {});
  no_rest(a, "lower");
  return Value(py::lower(to_str(v)));
}

Value f_upper(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "upper", {});
  no_rest(a, "upper");
  return Value(py::upper(to_str(v)));
}

Value f_map(Interpreter& in, const Value& v, CallArgs& c) {
  if (!truthy(v)) return iterator_of({});  // Jinja: `if value:` before iterating
  std::vector<Value> items = iterate(v);
  in.count_iterations(items.size());
  std::vector<Value> out;
  if (c.pos.empty()) {
    Args a(c, "map", {"attribute", "default"});
    if (!a.has(0)) raise("map() requires a filter name or attribute=");
    std::vector<Value> parts = attribute_parts(a.get(0));
    const Value* def = a.has(1) ? &a.get(1) : nullptr;
    for (const Value& item : items) out.push_back(get_attribute(item, parts, def));
  } else {
    if (!c.pos[0].is_string()) raise("map(): filter name must be a string");
    std::string name = c.pos[0].str();
    for (const Value& item : items) {
      CallArgs rest;
      rest.pos.assign(c.pos.begin() + 1, c.pos.end());
      rest.kw = c.kw;
      out.push_back(in.apply_filter(name, item, rest));
    }
  }
  return iterator_of(std::move(out));
}

Value min_max(Interpreter&, const Value& v, CallArgs& c, bool want_max) {
  const char* fn = want_max ? "max" : "min";
  Args a(c, fn, {"case_sensitive", "attribute"});
  no_rest(a, fn);
  KeyFn key = make_key(a, 1, 0, false);
  std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  Value best_key = key(items[0]);
  for (size_t i = 1; i < items.size(); ++i) {
    Value k = key(items[i]);
    if (want_max ? compare(k, best_key, ">") : compare(k, best_key, "<")) best = i, best_key = k;
  }
  return items[best];
}

// select / reject / selectattr / rejectattr
Value select_or_reject(Interpreter& in, const Value& v, CallArgs& c, bool select, bool attr) {
  if (!truthy(v)) return iterator_of({});
  size_t off = 0;
  std::vector<Value> parts;
  if (attr) {
    if (c.pos.empty()) raise("Missing parameter for attribute name");
    parts = attribute_parts(c.pos[0]);
    off = 1;
  }
  std::string test;
  if (c.pos.size() > off) {
    if (!c.pos[off].is_string()) raise("test name must be a string");
    test = c.pos[off].str();
  }
  std::vector<Value> items = iterate(v);
  in.count_iterations(items.size());
  std::vector<Value> out;
  for (const Value& item : items) {
    Value x = attr ? get_attribute(item, parts, nullptr) : item;
    bool r;
    if (test.empty()) {
      r = truthy(x);
    } else {
      CallArgs targs;
      targs.pos.assign(c.pos.begin() + static_cast<std::ptrdiff_t>(off + 1), c.pos.end());
      targs.kw = c.kw;
      r = in.apply_test(test, x, targs);
    }
    if (r == select) out.push_back(item);
  }
  return iterator_of(std::move(out));
}

Value f_replace(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "replace", {"old", "new", "count"});
  no_rest(a, "replace");
  if (!a.has(0) || !a.has(1)) raise("replace() missing required arguments 'old' and 'new'");
  std::string s = to_str(v), old = to_str(a.get(0)), with = to_str(a.get(1));
  int64_t count = a.has(2) && !a.get(2).is_none() ? a.get_int(2) : -1;
  size_t n = py::count(s, old);
  if (count >= 0 && static_cast<size_t>(count) < n) n = static_cast<size_t>(count);
  check_string_size(s.size() + n * with.size());
  return Value(py::replace(s, old, with, count));
}

Value f_reverse(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "reverse", {});
  no_rest(a, "reverse");
  if (v.is_string()) {
    std::u32string u = py::decode(v.str());
    std::reverse(u.begin(), u.end());
    return Value(py::encode(u));
  }
  bool reversible = (v.is_list() && v.list().kind != ListObj::Kind::Iterator) || v.is_mapping();
  std::vector<Value> items = iterate(v);
  std::reverse(items.begin(), items.end());
  // reversed(seq) is an iterator; otherwise Jinja falls back to a reversed list.
  return reversible ? iterator_of(std::move(items)) : Value::make_list(std::move(items));
}

// Python's round(): correctly rounded, ties to even (printf rounds the exact binary value
// the same way).
double py_round(double x, int64_t ndigits) {
  if (!std::isfinite(x)) return x;
  if (ndigits > 300) return x;
  if (ndigits < -308) return std::copysign(0.0, x);
  if (ndigits >= 0) {
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(ndigits), x);
    return std::strtod(buf, nullptr);
  }
  double p = std::pow(10.0, static_cast<double>(-ndigits));
  return std::nearbyint(x / p) * p;
}

Value f_round(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "round", {"precision", "method"});
  no_rest(a, "round");
  int64_t precision = a.int_or(0, 0);
  std::string method = a.has(1) ? a.get_str(1) : "common";
  if (method != "common" && method != "ceil" && method != "floor")
    raise("method must be common, ceil or floor");
  if (!v.is_number()) raise("type {} doesn't define __round__ method", type_name(v));
  if (method == "common") {
    if (!v.is_float()) {  // round(int, n) stays an int
      if (precision >= 0) return Value(v.int_value());
      double p = std::pow(10.0, static_cast<double>(std::min<int64_t>(-precision, 400)));
      double r = std::nearbyint(static_cast<double>(v.int_value()) / p) * p;
      if (!(std::fabs(r) < 9.2233720368547758e18)) raise("integer overflow (whale's integers are 64-bit)");
      return Value(static_cast<int64_t>(r));
    }
    return Value(py_round(v.as_float(), precision));
  }
  if (precision > 300 || precision < -300) raise("round(): precision {} is out of range", precision);
  double p = std::pow(10.0, static_cast<double>(precision));
  double x = v.number() * p;
  return Value((method == "ceil" ? std::ceil(x) : std::floor(x)) / p);
}

Value f_safe(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "safe", {});
  no_rest(a, "safe");
  return Value(to_str(v));
}

Value f_sort(Interpreter& in, const Value& v, CallArgs& c) {
  Args a(c, "sort", {"reverse", "case_sensitive", "attribute"});
  no_rest(a, "sort");
  std::vector<Value> items = iterate(v);
  in.count_iterations(items.size());
  sort_by(items, make_key(a, 2, 1, true), a.bool_or(0, false));
  return Value::make_list(std::move(items));
}

Value f_string(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "string", {});
  no_rest(a, "string");
  return Value(to_str(v));
}

Value f_sum(Interpreter& in, const Value& v, CallArgs& c) {
  Args a(c, "sum", {"attribute", "start"});
  no_rest(a, "sum");
  Value total = a.has(1) ? a.get(1) : Value(0);
  std::vector<Value> parts;
  bool attr = a.has(0) && !a.get(0).is_none();
  if (attr) parts = attribute_parts(a.get(0));
  std::vector<Value> items = iterate(v);
  in.count_iterations(items.size());
  for (const Value& item : items)
    total = binary_op(BinOp::Add, total, attr ? get_attribute(item, parts, nullptr) : item);
  return total;
}

Value f_title(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "title", {});
  no_rest(a, "title");
  // Jinja's own title(): words start after runs of [-\s({\[<]; each chunk is
  // chunk[0].upper() + chunk[1:].lower() (unlike str.title(), "it's" stays "It's").
  std::u32string u = py::decode(to_str(v));
  auto is_sep = [](char32_t ch) {
    return ch == '-' || ch == '(' || ch == '{' || ch == '[' || ch == '<' || py::is_space(ch);
  };
  std::string out;
  size_t i = 0;
  while (i < u.size()) {
    size_t j = i;
    bool sep = is_sep(u[i]);
    while (j < u.size() && is_sep(u[j]) == sep) ++j;
    std::u32string chunk = u.substr(i, j - i);
    out += py::upper(py::encode(chunk.substr(0, 1))) + py::lower(py::encode(chunk.substr(1)));
    i = j;
  }
  return Value(out);
}

Value f_tojson(Interpreter&, const Value& v, CallArgs& c) {
  // HF: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
  Args a(c, "tojson", {"ensure_ascii", "indent", "separators", "sort_keys"});
  no_rest(a, "tojson");
  DumpOptions o;
  o.ensure_ascii = a.bool_or(0, false);
  if (a.has(1) && !a.get(1).is_none()) {
    const Value& ind = a.get(1);
    if (ind.is_string()) o.indent = ind.str();
    else if (ind.is_int() || ind.is_bool()) {
      int64_t width = std::max<int64_t>(0, ind.int_value());
      check_string_size(static_cast<size_t>(width));
      o.indent.assign(static_cast<size_t>(width), ' ');
    }
    else raise("tojson(): indent must be an integer or string, not {}", type_name(ind));
    o.has_indent = true;
    o.item_sep = ",";
  }
  if (a.has(2) && !a.get(2).is_none()) {
    std::vector<Value> seps = iterate(a.get(2));
    if (seps.size() != 2 || !seps[0].is_string() || !seps[1].is_string())
      raise("tojson(): separators must be a pair of strings");
    o.item_sep = seps[0].str();
    o.key_sep = seps[1].str();
  }
  o.sort_keys = a.bool_or(3, false);
  return Value(dumps(v, o));
}

Value f_trim(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "trim", {"chars"});
  no_rest(a, "trim");
  std::optional<std::string> chars;
  if (a.has(0) && !a.get(0).is_none()) chars = a.get_str(0);
  return Value(py::strip(to_str(v), chars, true, true));
}

Value f_truncate(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "truncate", {"length", "killwords", "end", "leeway"});
  no_rest(a, "truncate");
  int64_t length = a.int_or(0, 255), leeway = a.int_or(3, 5);
  std::u32string end = py::decode(a.has(2) ? a.get_str(2) : "...");
  if (length < static_cast<int64_t>(end.size())) raise("expected length >= {}, got {}", end.size(), length);
  if (leeway < 0) raise("expected leeway >= 0, got {}", leeway);
  // Jinja measures and slices the value itself (no str()): short non-strings pass through.
  if (static_cast<int64_t>(len(v)) <= length + leeway) return v;
  if (!v.is_string()) raise("truncate() of a long {} is not supported", type_name(v));
  std::u32string s = py::decode(v.str());
  std::u32string head = s.substr(0, static_cast<size_t>(length) - end.size());
  if (!a.bool_or(1, false)) {
    size_t sp = head.rfind(U' ');
    if (sp != std::u32string::npos) head.resize(sp);
  }
  return Value(py::encode(head + end));
}

Value f_unique(Interpreter& in, const Value& v, CallArgs& c) {
  Args a(c, "unique", {"case_sensitive", "attribute"});
  no_rest(a, "unique");
  KeyFn key = make_key(a, 1, 0, false);
  std::vector<Value> items = iterate(v), out, seen;
  in.count_iterations(items.size());
  for (const Value& item : items) {
    Value k = key(item);
    if (!is_hashable(k)) raise("unhashable type: '{}'", type_name(k));
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, k); })) {
      seen.push_back(k);
      out.push_back(item);
    }
  }
  return iterator_of(std::move(out));
}

Value f_wordcount(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "wordcount", {});
  no_rest(a, "wordcount");
  int64_t n = 0;
  bool in_word = false;
  for (char32_t ch : py::decode(to_str(v))) {
    bool w = py::is_word(ch);
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value(n);
}

const std::map<std::string_view, FilterFn>& filters() {
  static const std::map<std::string_view, FilterFn> m = {
      {"abs", f_abs},
      {"attr", f_attr},
      {"batch", f_batch},
      {"capitalize", f_capitalize},
      {"center", f_center},
      {"count", f_length},
      {"d", f_default},
      {"default", f_default},
      {"dictsort", f_dictsort},
      {"e", f_escape},
      {"escape", f_escape},
      {"first", f_first},
      {"float", f_float},
      {"forceescape", f_escape},
      {"format", f_format},
      {"indent", f_indent},
      {"int", f_int},
      {"items", f_items},
      {"join", f_join},
      {"last", f_last},
      {"length", f_length},
      {"list", f_list},
      {"lower", f_lower},
      {"map", f_map},
      {"max", [](Interpreter& in, const Value& v, CallArgs& c) { return min_max(in, v, c, true); }},
      {"min", [](Interpreter& in, const Value& v, CallArgs& c) { return min_max(in, v, c, false); }},
      {"reject", [](Interpreter& in, const Value& v, CallArgs& c) { return select_or_reject(in, v, c, false, false); }},
      {"rejectattr", [](Interpreter& in, const Value& v, CallArgs& c) { return select_or_reject(in, v, c, false, true); }},
      {"replace", f_replace},
      {"reverse", f_reverse},
      {"round", f_round},
      {"safe", f_safe},
      {"select", [](Interpreter& in, const Value& v, CallArgs& c) { return select_or_reject(in, v, c, true, false); }},
      {"selectattr", [](Interpreter& in, const Value& v, CallArgs& c) { return select_or_reject(in, v, c, true, true); }},
      {"sort", f_sort},
      {"string", f_string},
      {"sum", f_sum},
      {"title", f_title},
      {"tojson", f_tojson},
      {"trim", f_trim},
      {"truncate", f_truncate},
      {"unique", f_unique},
      {"upper", f_upper},
      {"wordcount", f_wordcount},
  };
  return m;
}

// Jinja2 3.1 filters whale does not implement (they fail when executed).
constexpr std::string_view kUnsupportedFilters[] = {
    "filesizeformat", "groupby", "pprint", "random", "slice", "striptags", "urlencode", "urlize",
    "wordwrap", "xmlattr"};

}  // namespace

FilterFn find_filter(std::string_view name) {
  auto it = filters().find(name);
  return it == filters().end() ? nullptr : it->second;
}

bool jinja_has_filter(std::string_view name) {
  if (find_filter(name)) return true;
  for (auto n : kUnsupportedFilters)
    if (n == name) return true;
  return false;
}

}  // namespace whale::jinja
