// Python object protocol for Value: str/repr, ==, <, in, len, iter, and JSON in/out.
#include "text/jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "text/jinja/pystr.h"

namespace whale::jinja {

// ---- limits ----------------------------------------------------------------------------------

namespace {
const ValueLimits kDefaultLimits;
thread_local const ValueLimits* g_limits = nullptr;
thread_local size_t g_total_string_bytes = 0;
thread_local size_t g_total_list_items = 0;
}  // namespace

const ValueLimits& value_limits() { return g_limits ? *g_limits : kDefaultLimits; }
void set_value_limits(const ValueLimits* limits) {
  g_limits = limits;
  g_total_string_bytes = 0;
  g_total_list_items = 0;
}

Value::StrPtr Value::make_str(std::string s) {
  // Only while a render has installed limits: values built outside a render (tests, the
  // parser's constants) are not part of any budget.
  if (g_limits) {
    g_total_string_bytes += s.size();
    if (g_total_string_bytes > g_limits->max_total_string_bytes)
      raise("the template built more than {} bytes of strings", g_limits->max_total_string_bytes);
  }
  return std::make_shared<const std::string>(std::move(s));
}

void check_string_size(size_t bytes) {
  if (bytes > value_limits().max_string_bytes)
    raise("string of {} bytes exceeds the limit of {} bytes", bytes,
          value_limits().max_string_bytes);
}

void check_list_size(size_t items) {
  if (items > value_limits().max_list_items)
    raise("list of {} items exceeds the limit of {} items", items, value_limits().max_list_items);
}

int64_t parse_index(std::string_view digits) {
  int64_t v = 0;
  auto res = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (res.ec != std::errc() || res.ptr != digits.data() + digits.size())
    raise("index '{}' is out of range", digits);
  return v;
}

static void check_depth(int depth) {
  if (static_cast<size_t>(depth) > value_limits().max_nesting)
    raise("value nested more than {} levels deep", value_limits().max_nesting);
}

// ---- construction ----------------------------------------------------------------------------

Value Value::make_list(std::vector<Value> items, ListObj::Kind kind) {
  check_list_size(items.size());
  if (g_limits) {
    g_total_list_items += items.size();
    if (g_total_list_items > g_limits->max_total_list_items)
      raise("the template built more than {} list items", g_limits->max_total_list_items);
  }
  auto l = std::make_shared<ListObj>();
  l->kind = kind;
  l->items = std::move(items);
  return Value(std::move(l));
}

Value Value::make_dict() { return Value(std::make_shared<DictObj>()); }

Value Value::make_function(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn) {
  auto f = std::make_shared<Function>();
  f->name = std::move(name);
  f->call = std::move(fn);
  return Value(std::move(f));
}

bool Value::is_plain_list() const {
  if (!is_list()) return false;
  auto k = list().kind;
  return k == ListObj::Kind::List || k == ListObj::Kind::Tuple;
}

const Value* DictObj::find(const Value& key) const {
  if (key.is_string()) return find(std::string_view(key.str()));
  for (const auto& [k, v] : items)
    if (equals(k, key)) return &v;
  return nullptr;
}

const Value* DictObj::find(std::string_view key) const {
  for (const auto& [k, v] : items)
    if (k.is_string() && k.str() == key) return &v;
  return nullptr;
}

void DictObj::set(Value key, Value value) {
  for (auto& [k, v] : items) {
    if (equals(k, key)) {
      v = std::move(value);
      return;
    }
  }
  check_list_size(items.size() + 1);
  items.emplace_back(std::move(key), std::move(value));
}

// ---- type names, truthiness ------------------------------------------------------------------

std::string type_name(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined: return "Undefined";
    case Value::Type::None: return "NoneType";
    case Value::Type::Bool: return "bool";
    case Value::Type::Int: return "int";
    case Value::Type::Float: return "float";
    case Value::Type::String: return "str";
    case Value::Type::List:
      switch (v.list().kind) {
        case ListObj::Kind::List: return "list";
        case ListObj::Kind::Tuple: return "tuple";
        case ListObj::Kind::Range: return "range";
        case ListObj::Kind::Iterator: return "generator";
        case ListObj::Kind::DictItems: return "dict_items";
        case ListObj::Kind::DictKeys: return "dict_keys";
        case ListObj::Kind::DictValues: return "dict_values";
      }
      return "list";
    case Value::Type::Dict: return v.dict().is_namespace ? "Namespace" : "dict";
    case Value::Type::Function: return "function";
    case Value::Type::Loop: return "LoopContext";
  }
  return "object";
}

bool truthy(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined:
    case Value::Type::None: return false;
    case Value::Type::Bool: return v.as_bool();
    case Value::Type::Int: return v.as_int() != 0;
    case Value::Type::Float: return v.as_float() != 0.0;
    case Value::Type::String: return !v.str().empty();
    case Value::Type::List:
      // A generator object is always true in Python, even when it would yield nothing.
      return v.list().kind == ListObj::Kind::Iterator || !v.list().items.empty();
    case Value::Type::Dict: return v.dict().is_namespace || !v.dict().items.empty();
    case Value::Type::Function:
    case Value::Type::Loop: return true;
  }
  return true;
}

void require_defined(const Value& v) {
  if (v.is_undefined()) throw TemplateError(v.undefined_hint());
}

// ---- str / repr ------------------------------------------------------------------------------

static void repr_into(const Value& v, std::string& out, int depth);

static void repr_items(const std::vector<Value>& items, std::string& out, int depth) {
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    repr_into(items[i], out, depth + 1);
  }
}

static void repr_dict(const DictObj& d, std::string& out, int depth) {
  out += '{';
  for (size_t i = 0; i < d.items.size(); ++i) {
    if (i) out += ", ";
    repr_into(d.items[i].first, out, depth + 1);
    out += ": ";
    repr_into(d.items[i].second, out, depth + 1);
  }
  out += '}';
}

static void repr_into(const Value& v, std::string& out, int depth) {
  check_depth(depth);
  switch (v.type()) {
    case Value::Type::Undefined: out += "Undefined"; return;
    case Value::Type::String: out += py::repr(v.str()); return;
    case Value::Type::List: {
      const ListObj& l = v.list();
      switch (l.kind) {
        case ListObj::Kind::List:
          out += '[', repr_items(l.items, out, depth), out += ']';
          return;
        case ListObj::Kind::Tuple:
          out += '(', repr_items(l.items, out, depth);
          out += l.items.size() == 1 ? ",)" : ")";
          return;
        case ListObj::Kind::Range:
          out += fmt::format("range({}, {}", l.range_start, l.range_stop);
          out += l.range_step == 1 ? ")" : fmt::format(", {})", l.range_step);
          return;
        case ListObj::Kind::DictItems:
        case ListObj::Kind::DictKeys:
        case ListObj::Kind::DictValues:
          out += type_name(v) + "([", repr_items(l.items, out, depth), out += "])";
          return;
        case ListObj::Kind::Iterator:
          // Python prints "<generator object ... at 0x7f...>": an address, never useful text.
          raise("cannot print a generator/iterator (apply |list first)");
      }
      return;
    }
    case Value::Type::Dict:
      if (v.dict().is_namespace) {
        out += "<Namespace ", repr_dict(v.dict(), out, depth), out += '>';
      } else {
        repr_dict(v.dict(), out, depth);
      }
      return;
    case Value::Type::Function:
      // Python prints "<function ... at 0x7f...>" (an address): refuse rather than invent.
      raise("cannot print {} (did you forget to call it?)", v.function().name);
    case Value::Type::Loop:
      out += fmt::format("<LoopContext {}/{}>", v.loop().index0 + 1, v.loop().items->size());
      return;
    default: out += to_str(v); return;
  }
}

std::string to_str(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined: return "";
    case Value::Type::None: return "None";
    case Value::Type::Bool: return v.as_bool() ? "True" : "False";
    case Value::Type::Int: return std::to_string(v.as_int());
    case Value::Type::Float: return py::float_repr(v.as_float());
    case Value::Type::String: return v.str();
    default: {
      std::string out;
      repr_into(v, out, 0);
      return out;
    }
  }
}

std::string repr(const Value& v) {
  std::string out;
  repr_into(v, out, 0);
  return out;
}

// ---- comparison ------------------------------------------------------------------------------

static bool equals_depth(const Value& a, const Value& b, int depth);

static bool seq_equal(const std::vector<Value>& a, const std::vector<Value>& b, int depth) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!equals_depth(a[i], b[i], depth + 1)) return false;
  return true;
}

// dict_keys / dict_items compare like sets.
static bool set_equal(const std::vector<Value>& a, const std::vector<Value>& b, int depth) {
  if (a.size() != b.size()) return false;
  for (const auto& x : a) {
    bool found = false;
    for (const auto& y : b)
      if (equals_depth(x, y, depth + 1)) {
        found = true;
        break;
      }
    if (!found) return false;
  }
  return true;
}

static bool equals_depth(const Value& a, const Value& b, int depth) {
  check_depth(depth);
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.number() == b.number();
    return a.int_value() == b.int_value();
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case Value::Type::Undefined:
    case Value::Type::None: return true;
    case Value::Type::String: return a.str() == b.str();
    case Value::Type::List: {
      const ListObj& x = a.list();
      const ListObj& y = b.list();
      if (&x == &y) return true;
      if (x.kind != y.kind) return false;
      switch (x.kind) {
        case ListObj::Kind::List:
        case ListObj::Kind::Tuple:
        case ListObj::Kind::Range: return seq_equal(x.items, y.items, depth);
        case ListObj::Kind::DictKeys:
        case ListObj::Kind::DictItems: return set_equal(x.items, y.items, depth);
        default: return false;  // generators, dict_values: identity only
      }
    }
    case Value::Type::Dict: {
      const DictObj& x = a.dict();
      const DictObj& y = b.dict();
      if (&x == &y) return true;
      if (x.is_namespace || y.is_namespace || x.items.size() != y.items.size()) return false;
      for (const auto& [k, v] : x.items) {
        const Value* o = y.find(k);
        if (!o || !equals_depth(v, *o, depth + 1)) return false;
      }
      return true;
    }
    case Value::Type::Function: return &a.function() == &b.function();
    case Value::Type::Loop: return &a.loop() == &b.loop();
    default: return false;
  }
}

bool equals(const Value& a, const Value& b) { return equals_depth(a, b, 0); }

static int compare_depth(const Value& a, const Value& b, std::string_view op, int depth) {
  check_depth(depth);
  require_defined(a);
  require_defined(b);
  if (a.is_number() && b.is_number()) {
    if (!a.is_float() && !b.is_float()) {
      int64_t x = a.int_value(), y = b.int_value();
      return x < y ? -1 : x > y ? 1 : 0;
    }
    double x = a.number(), y = b.number();
    if (std::isnan(x) || std::isnan(y)) return 2;  // unordered: every comparison is false
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    int c = a.str().compare(b.str());  // UTF-8 byte order is code point order
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_list() && b.is_list() && a.list().kind == b.list().kind &&
      (a.is_plain_list())) {
    const auto& x = a.list().items;
    const auto& y = b.list().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i)
      if (!equals_depth(x[i], y[i], depth + 1)) return compare_depth(x[i], y[i], op, depth + 1);
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  raise("'{}' not supported between instances of '{}' and '{}'", op, type_name(a), type_name(b));
}

bool compare(const Value& a, const Value& b, std::string_view op) {
  int c = compare_depth(a, b, op, 0);
  if (c == 2) return false;  // NaN involved: unordered
  if (op == "<") return c < 0;
  if (op == "<=") return c <= 0;
  if (op == ">") return c > 0;
  return c >= 0;
}

bool is_hashable(const Value& v) {
  if (v.is_list()) {
    auto k = v.list().kind;
    if (k == ListObj::Kind::Tuple) {
      for (const auto& x : v.list().items)
        if (!is_hashable(x)) return false;
      return true;
    }
    return k == ListObj::Kind::Range || k == ListObj::Kind::Iterator;
  }
  if (v.is_dict()) return v.dict().is_namespace;
  return true;
}

bool contains(const Value& container, const Value& item) {
  switch (container.type()) {
    case Value::Type::Undefined: return false;  // iterating Undefined yields nothing
    case Value::Type::String:
      if (!item.is_string())
        raise("'in <string>' requires string as left operand, not {}", type_name(item));
      return container.str().find(item.str()) != std::string::npos;
    case Value::Type::List: {
      ListObj& l = container.list();
      if (l.kind == ListObj::Kind::Iterator) {
        // `x in generator` consumes the generator up to and including the match.
        while (l.cursor < l.items.size())
          if (equals(l.items[l.cursor++], item)) return true;
        return false;
      }
      for (const auto& x : l.items)
        if (equals(x, item)) return true;
      return false;
    }
    case Value::Type::Dict:
      if (!container.dict().is_namespace) {
        if (!is_hashable(item)) raise("unhashable type: '{}'", type_name(item));
        return container.dict().find(item) != nullptr;
      }
      [[fallthrough]];
    default: raise("argument of type '{}' is not iterable", type_name(container));
  }
}

size_t len(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined: return 0;
    case Value::Type::String: return py::length(v.str());
    case Value::Type::List:
      if (v.list().kind != ListObj::Kind::Iterator) return v.list().items.size();
      break;
    case Value::Type::Dict:
      if (!v.dict().is_namespace) return v.dict().items.size();
      break;
    default: break;
  }
  raise("object of type '{}' has no len()", type_name(v));
}

std::vector<Value> iterate(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined: return {};
    case Value::Type::String: {
      check_list_size(py::length(v.str()));
      std::vector<Value> out;
      std::string ch;
      for (char32_t c : py::decode(v.str())) {
        ch.clear();
        py::append_utf8(ch, c);
        out.emplace_back(ch);
      }
      return out;
    }
    case Value::Type::List: {
      ListObj& l = v.list();
      if (l.kind == ListObj::Kind::Iterator) {
        std::vector<Value> out(l.items.begin() + static_cast<std::ptrdiff_t>(l.cursor),
                               l.items.end());
        l.cursor = l.items.size();
        return out;
      }
      return l.items;
    }
    case Value::Type::Dict:
      if (!v.dict().is_namespace) {
        std::vector<Value> keys;
        keys.reserve(v.dict().items.size());
        for (const auto& kv : v.dict().items) keys.push_back(kv.first);
        return keys;
      }
      [[fallthrough]];
    default: raise("'{}' object is not iterable", type_name(v));
  }
}

// ---- JSON ------------------------------------------------------------------------------------

static Value from_json_depth(const nlohmann::ordered_json& j, int depth) {
  check_depth(depth);
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value(None{});
    case nlohmann::ordered_json::value_t::boolean: return Value(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      auto u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        raise("integer {} in the context is out of the 64-bit range", u);
      return Value(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string: {
      const auto& s = j.get_ref<const std::string&>();
      if (!py::utf8_valid(s)) raise("context string is not valid UTF-8");
      return Value(s);
    }
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& x : j) items.push_back(from_json_depth(x, depth + 1));
      return Value::make_list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Value d = Value::make_dict();
      for (const auto& [k, x] : j.items()) {
        if (!py::utf8_valid(k)) raise("context key is not valid UTF-8");
        d.dict().items.emplace_back(Value(k), from_json_depth(x, depth + 1));
      }
      return d;
    }
    default: raise("unsupported JSON value in the context (binary data)");
  }
}

Value from_json(const nlohmann::ordered_json& j) { return from_json_depth(j, 0); }

// json.dumps string encoding: ensure_ascii=False leaves non-ASCII as is.
static void dump_string(std::string_view s, bool ensure_ascii, std::string& out) {
  out += '"';
  char buf[16];
  for (char32_t c : py::decode(s)) {
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    if (c < 0x20 || (ensure_ascii && c > 0x7E)) {
      if (c > 0xFFFF) {
        char32_t v = c - 0x10000;
        std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", static_cast<unsigned>(0xD800 + (v >> 10)),
                      static_cast<unsigned>(0xDC00 + (v & 0x3FF)));
      } else {
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      }
      out += buf;
    } else {
      py::append_utf8(out, c);
    }
  }
  out += '"';
}

static std::string json_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return py::float_repr(d);
}

static void dump_into(const Value& v, const DumpOptions& o, int level, std::string& out) {
  check_depth(level);
  check_string_size(out.size());
  auto newline = [&](int lvl) {
    if (!o.has_indent) return;
    out += '\n';
    for (int i = 0; i < lvl; ++i) out += o.indent;
  };
  switch (v.type()) {
    case Value::Type::None: out += "null"; return;
    case Value::Type::Bool: out += v.as_bool() ? "true" : "false"; return;
    case Value::Type::Int: out += std::to_string(v.as_int()); return;
    case Value::Type::Float: out += json_float(v.as_float()); return;
    case Value::Type::String: dump_string(v.str(), o.ensure_ascii, out); return;
    case Value::Type::List: {
      if (!v.is_plain_list()) break;
      const auto& items = v.list().items;
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += o.item_sep;
        newline(level + 1);
        dump_into(items[i], o, level + 1, out);
      }
      newline(level);
      out += ']';
      return;
    }
    case Value::Type::Dict: {
      if (v.dict().is_namespace) break;
      std::vector<const std::pair<Value, Value>*> items;
      for (const auto& kv : v.dict().items) items.push_back(&kv);
      if (items.empty()) {
        out += "{}";
        return;
      }
      if (o.sort_keys)
        std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) {
          return compare(a->first, b->first, "<");
        });
      out += '{';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += o.item_sep;
        newline(level + 1);
        const Value& k = items[i]->first;
        if (k.is_string()) {
          dump_string(k.str(), o.ensure_ascii, out);
        } else if (k.is_float()) {
          out += '"' + json_float(k.as_float()) + '"';
        } else if (k.is_bool()) {
          out += k.as_bool() ? "\"true\"" : "\"false\"";
        } else if (k.is_none()) {
          out += "\"null\"";
        } else if (k.is_int()) {
          out += '"' + std::to_string(k.as_int()) + '"';
        } else {
          raise("keys must be str, int, float, bool or None, not {}", type_name(k));
        }
        out += o.key_sep;
        dump_into(items[i]->second, o, level + 1, out);
      }
      newline(level);
      out += '}';
      return;
    }
    default: break;
  }
  raise("Object of type {} is not JSON serializable", type_name(v));
}

std::string dumps(const Value& v, const DumpOptions& opt) {
  std::string out;
  dump_into(v, opt, 0, out);
  check_string_size(out.size());
  return out;
}

}  // namespace whale::jinja
