// Attribute and item access (Jinja's sandboxed getattr/getitem), Python slicing, the methods
// of str/dict/list a template may call, and the global functions.
#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>

#include "text/jinja/builtins.h"
#include "text/jinja/interpreter.h"
#include "text/jinja/ops.h"
#include "text/jinja/pystr.h"

namespace whale::jinja {

// ---- argument binding --------------------------------------------------------------------------

Args::Args(CallArgs& args, std::string_view fn, std::initializer_list<const char*> params)
    : fn_(fn), names_(params), bound_(params.size(), nullptr) {
  for (size_t i = 0; i < args.pos.size(); ++i) {
    if (i < names_.size()) bound_[i] = &args.pos[i];
    else rest.push_back(args.pos[i]);
  }
  for (auto& [key, v] : args.kw) {
    auto it = std::find_if(names_.begin(), names_.end(), [&](const char* n) { return key == n; });
    if (it == names_.end()) raise("{}() got an unexpected keyword argument '{}'", fn_, key);
    size_t i = static_cast<size_t>(it - names_.begin());
    if (bound_[i]) raise("{}() got multiple values for argument '{}'", fn_, key);
    bound_[i] = &v;
  }
}

int64_t Args::get_int(size_t i) const {
  const Value& v = get(i);
  if (v.is_int() || v.is_bool()) return v.int_value();
  raise("{}(): '{}' must be an integer, not {}", fn_, names_[i], type_name(v));
}

double Args::get_number(size_t i) const {
  const Value& v = get(i);
  if (v.is_number()) return v.number();
  raise("{}(): '{}' must be a number, not {}", fn_, names_[i], type_name(v));
}

const std::string& Args::get_str(size_t i) const {
  const Value& v = get(i);
  if (v.is_string()) return v.str();
  raise("{}(): '{}' must be a string, not {}", fn_, names_[i], type_name(v));
}

static void no_rest(const Args& a, std::string_view fn) {
  if (!a.rest.empty()) raise("{}() got too many positional arguments", fn);
}

// ---- attribute / item access -------------------------------------------------------------------

// Jinja's Undefined messages: "'dict object' has no attribute 'x'", "list object has no
// element 3" (the latter unquoted, as Jinja prints it).
static std::string object_repr(const Value& obj) {
  return obj.is_none() ? "None" : type_name(obj) + " object";
}
static Value missing_attr(const Value& obj, std::string_view name) {
  return Value::undefined(fmt::format("'{}' has no attribute '{}'", object_repr(obj), name));
}

static Value loop_attr(const Value& obj, std::string_view name) {
  const LoopObj& l = obj.loop();
  auto n = static_cast<int64_t>(l.items->size());
  int64_t i = l.index0;
  if (name == "index") return Value(i + 1);
  if (name == "index0") return Value(i);
  if (name == "revindex") return Value(n - i);
  if (name == "revindex0") return Value(n - i - 1);
  if (name == "first") return Value(i == 0);
  if (name == "last") return Value(i == n - 1);
  if (name == "length") return Value(n);
  if (name == "depth") return Value(int64_t{1});
  if (name == "depth0") return Value(int64_t{0});
  if (name == "previtem")
    return i > 0 ? (*l.items)[static_cast<size_t>(i - 1)] : Value::undefined("there is no previous item");
  if (name == "nextitem")
    return i + 1 < n ? (*l.items)[static_cast<size_t>(i + 1)] : Value::undefined("there is no next item");
  if (name == "cycle") {
    int64_t idx = i;
    return Value::make_function("loop.cycle", [idx](Interpreter&, CallArgs& a) -> Value {
      if (!a.kw.empty()) raise("loop.cycle() takes no keyword arguments");
      if (a.pos.empty()) raise("no items for cycling given");
      return a.pos[static_cast<size_t>(idx) % a.pos.size()];
    });
  }
  if (name == "changed") {
    auto state = l.last_changed;  // shared by all iterations of this loop
    return Value::make_function("loop.changed", [state](Interpreter&, CallArgs& a) -> Value {
      Value now = Value::make_tuple(a.pos);
      if (state && !state->is_undefined() && equals(*state, now)) return Value(false);
      if (state) *state = now;
      return Value(true);
    });
  }
  return missing_attr(obj, name);
}

Value getattr_value(const Value& obj, std::string_view name) {
  require_defined(obj);
  if (obj.is_namespace()) {
    const Value* v = obj.dict().find(name);
    return v ? *v : missing_attr(obj, name);
  }
  if (obj.is_loop()) return loop_attr(obj, name);
  // Python attributes (methods) first, then the dict key: `d.items` is the method.
  if (auto m = get_method(obj, name)) return *m;
  if (obj.is_mapping()) {
    const Value* v = obj.dict().find(name);
    if (v) return *v;
  }
  return missing_attr(obj, name);
}

static bool indexable(const Value& obj) {
  if (obj.is_string()) return true;
  if (!obj.is_list()) return false;
  auto k = obj.list().kind;
  return k == ListObj::Kind::List || k == ListObj::Kind::Tuple || k == ListObj::Kind::Range;
}

Value getitem_value(const Value& obj, const Value& key) {
  require_defined(obj);
  if (indexable(obj) && (key.is_int() || key.is_bool())) {
    int64_t i = key.int_value();
    if (obj.is_string()) {
      std::u32string u = py::decode(obj.str());
      auto n = static_cast<int64_t>(u.size());
      if (i < 0) i += n;
      if (i < 0 || i >= n)
        return Value::undefined(fmt::format("{} has no element {}", object_repr(obj), key.int_value()));
      return Value(py::encode(u.substr(static_cast<size_t>(i), 1)));
    }
    const auto& items = obj.list().items;
    auto n = static_cast<int64_t>(items.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n)
      return Value::undefined(fmt::format("{} has no element {}", object_repr(obj), key.int_value()));
    return items[static_cast<size_t>(i)];
  }
  if (obj.is_mapping() && is_hashable(key)) {
    if (const Value* v = obj.dict().find(key)) return *v;
  }
  // Python's obj[key] failed: Jinja falls back to the attribute when the key is a string.
  if (key.is_string()) return getattr_value(obj, key.str());
  return Value::undefined(fmt::format("{} has no element {}", object_repr(obj), repr(key)));
}

// PySlice_AdjustIndices: clamps start/stop for a sequence of length n.
static void slice_indices(int64_t n, const Value& start, const Value& stop, const Value& step,
                          int64_t* b, int64_t* e, int64_t* s) {
  auto as_index = [](const Value& v) {
    if (!(v.is_int() || v.is_bool())) raise("slice indices must be integers or None");
    return v.int_value();
  };
  *s = step.is_none() || step.is_undefined() ? 1 : as_index(step);
  if (*s == 0) raise("slice step cannot be zero");
  auto adjust = [&](const Value& v, int64_t def_pos, int64_t def_neg) {
    if (v.is_none() || v.is_undefined()) return *s > 0 ? def_pos : def_neg;
    int64_t x = as_index(v);
    if (x < 0) {
      x += n;
      if (x < 0) x = *s < 0 ? -1 : 0;
    } else if (x >= n) {
      x = *s < 0 ? n - 1 : n;
    }
    return x;
  };
  *b = adjust(start, 0, n - 1);
  *e = adjust(stop, n, -1);
}

Value slice_value(const Value& seq, const Value& start, const Value& stop, const Value& step) {
  require_defined(seq);
  // Jinja compiles slices to a plain Python subscript (no getitem fallback): non-sequences raise.
  if (seq.is_mapping()) raise("unhashable type: 'slice'");
  if (!indexable(seq)) raise("'{}' object is not subscriptable", type_name(seq));
  int64_t b, e, s;
  if (seq.is_string()) {
    std::u32string u = py::decode(seq.str());
    slice_indices(static_cast<int64_t>(u.size()), start, stop, step, &b, &e, &s);
    std::u32string out;
    for (int64_t i = b; s > 0 ? i < e : i > e; i += s) out += u[static_cast<size_t>(i)];
    return Value(py::encode(out));
  }
  const auto& items = seq.list().items;
  slice_indices(static_cast<int64_t>(items.size()), start, stop, step, &b, &e, &s);
  std::vector<Value> out;
  for (int64_t i = b; s > 0 ? i < e : i > e; i += s) out.push_back(items[static_cast<size_t>(i)]);
  auto kind = seq.list().kind == ListObj::Kind::Tuple ? ListObj::Kind::Tuple : ListObj::Kind::List;
  return Value::make_list(std::move(out), kind);
}

// ---- str methods -------------------------------------------------------------------------------

namespace {

using StrMethod = Value (*)(Interpreter&, const std::string&, CallArgs&);

std::optional<std::string> opt_str(const Args& a, size_t i, std::string_view fn) {
  if (!a.has(i) || a.get(i).is_none()) return std::nullopt;
  if (!a.get(i).is_string()) raise("{}() arg must be None or str, not {}", fn, type_name(a.get(i)));
  return a.get(i).str();
}

Value str_list(std::vector<std::string> parts) {
  std::vector<Value> out;
  out.reserve(parts.size());
  for (auto& p : parts) out.emplace_back(std::move(p));
  return Value::make_list(std::move(out));
}

Value m_strip(const std::string& s, CallArgs& c, bool l, bool r, const char* fn) {
  Args a(c, fn, {"chars"});
  no_rest(a, fn);
  return Value(py::strip(s, opt_str(a, 0, fn), l, r));
}

Value m_split(const std::string& s, CallArgs& c, bool reverse) {
  const char* fn = reverse ? "rsplit" : "split";
  Args a(c, fn, {"sep", "maxsplit"});
  no_rest(a, fn);
  auto sep = opt_str(a, 0, fn);
  if (sep && sep->empty()) raise("empty separator");
  int64_t maxsplit = a.int_or(1, -1);
  return str_list(reverse ? py::rsplit(s, sep, maxsplit) : py::split(s, sep, maxsplit));
}

// startswith/endswith(prefix or tuple, start=None, end=None)
Value m_affix(const std::string& s, CallArgs& c, bool ends) {
  const char* fn = ends ? "endswith" : "startswith";
  Args a(c, fn, {"prefix", "start", "end"});
  no_rest(a, fn);
  if (!a.has(0)) raise("{}() takes at least 1 argument (0 given)", fn);
  std::string text = s;
  if (a.has(1) || a.has(2))
    text = slice_value(Value(s), a.has(1) ? a.get(1) : Value(None{}),
                       a.has(2) ? a.get(2) : Value(None{}), Value(None{}))
               .str();
  std::vector<Value> cands;
  if (a.get(0).is_string()) cands.push_back(a.get(0));
  else if (a.get(0).is_list() && a.get(0).list().kind == ListObj::Kind::Tuple) cands = a.get(0).list().items;
  else raise("{} first arg must be str or a tuple of str, not {}", fn, type_name(a.get(0)));
  for (const auto& p : cands) {
    if (!p.is_string()) raise("tuple for {} must only contain str, not {}", fn, type_name(p));
    const std::string& x = p.str();
    if (x.size() <= text.size() &&
        text.compare(ends ? text.size() - x.size() : 0, x.size(), x) == 0)
      return Value(true);
  }
  return Value(false);
}

Value m_find(const std::string& s, CallArgs& c, bool reverse, bool raising, const char* fn) {
  Args a(c, fn, {"sub", "start", "end"});
  no_rest(a, fn);
  if (!a.has(0)) raise("{}() takes at least 1 argument (0 given)", fn);
  const std::string& sub = a.get_str(0);
  int64_t offset = 0;
  std::string text = s;
  if (a.has(1) || a.has(2)) {
    int64_t n = static_cast<int64_t>(py::length(s)), b, e, st;
    slice_indices(n, a.has(1) ? a.get(1) : Value(None{}), a.has(2) ? a.get(2) : Value(None{}),
                  Value(None{}), &b, &e, &st);
    offset = b;
    text = slice_value(Value(s), Value(b), Value(std::max(b, e)), Value(None{})).str();
  }
  int64_t r = py::find(text, sub, reverse);
  if (r < 0 && raising) raise("substring not found");
  return Value(r < 0 ? r : r + offset);
}

Value m_justify(const std::string& s, CallArgs& c, char how, const char* fn) {
  Args a(c, fn, {"width", "fillchar"});
  no_rest(a, fn);
  if (!a.has(0)) raise("{}() takes at least 1 argument (0 given)", fn);
  int64_t width = a.get_int(0);
  std::string fill = a.has(1) ? a.get_str(1) : " ";
  if (py::length(fill) != 1) raise("The fill character must be exactly one character long");
  int64_t len = static_cast<int64_t>(py::length(s));
  if (width <= len) return Value(s);
  check_string_size(static_cast<size_t>(width) * fill.size());
  int64_t total = width - len, left = 0;
  if (how == '<') left = 0;
  else if (how == '>') left = total;
  else left = total / 2 + (total & width & 1);  // CPython's centering rule
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (int64_t i = left; i < total; ++i) out += fill;
  return Value(out);
}

template <bool (*Pred)(char32_t)>
Value m_is(Interpreter&, const std::string& s, CallArgs& c) {
  Args a(c, "is", {});
  no_rest(a, "str.is*()");
  if (s.empty()) return Value(false);
  for (char32_t ch : py::decode(s))
    if (!Pred(ch)) return Value(false);
  return Value(true);
}

Value m_islower_upper(const std::string& s, bool lower) {
  bool any = false;
  for (char32_t ch : py::decode(s)) {
    if (lower ? py::is_upper(ch) : py::is_lower(ch)) return Value(false);
    if (py::is_upper(ch) || py::is_lower(ch)) any = true;
  }
  return Value(any);
}

Value m_join(Interpreter&, const std::string& sep, CallArgs& c) {
  Args a(c, "join", {"iterable"});
  no_rest(a, "join");
  if (!a.has(0)) raise("join() takes exactly one argument (0 given)");
  std::string out;
  size_t i = 0;
  for (const Value& v : iterate(a.get(0))) {
    if (!v.is_string())
      raise("sequence item {}: expected str instance, {} found", i, type_name(v));
    if (i++) out += sep;
    out += v.str();
    check_string_size(out.size());
  }
  return Value(out);
}

Value m_partition(const std::string& s, CallArgs& c, bool reverse) {
  const char* fn = reverse ? "rpartition" : "partition";
  Args a(c, fn, {"sep"});
  no_rest(a, fn);
  if (!a.has(0)) raise("{}() takes exactly one argument (0 given)", fn);
  const std::string& sep = a.get_str(0);
  if (sep.empty()) raise("empty separator");
  size_t f = reverse ? s.rfind(sep) : s.find(sep);
  if (f == std::string::npos)
    return reverse ? Value::make_tuple({Value(""), Value(""), Value(s)})
                   : Value::make_tuple({Value(s), Value(""), Value("")});
  return Value::make_tuple({Value(s.substr(0, f)), Value(sep), Value(s.substr(f + sep.size()))});
}

const std::map<std::string_view, StrMethod>& str_methods() {
  static const std::map<std::string_view, StrMethod> m = {
      {"strip", [](Interpreter&, const std::string& s, CallArgs& c) { return m_strip(s, c, true, true, "strip"); }},
      {"lstrip", [](Interpreter&, const std::string& s, CallArgs& c) { return m_strip(s, c, true, false, "lstrip"); }},
      {"rstrip", [](Interpreter&, const std::string& s, CallArgs& c) { return m_strip(s, c, false, true, "rstrip"); }},
      {"split", [](Interpreter&, const std::string& s, CallArgs& c) { return m_split(s, c, false); }},
      {"rsplit", [](Interpreter&, const std::string& s, CallArgs& c) { return m_split(s, c, true); }},
      {"splitlines", [](Interpreter&, const std::string& s, CallArgs& c) {
         Args a(c, "splitlines", {"keepends"});
         no_rest(a, "splitlines");
         return str_list(py::splitlines(s, a.bool_or(0, false)));
       }},
      {"startswith", [](Interpreter&, const std::string& s, CallArgs& c) { return m_affix(s, c, false); }},
      {"endswith", [](Interpreter&, const std::string& s, CallArgs& c) { return m_affix(s, c, true); }},
      {"upper", [](Interpreter&, const std::string& s, CallArgs& c) { Args a(c, "upper", {}); no_rest(a, "upper"); return Value(py::upper(s)); }},
      {"lower", [](Interpreter&, const std::string& s, CallArgs& c) { Args a(c, "lower", {}); no_rest(a, "lower"); return Value(py::lower(s)); }},
      {"casefold", [](Interpreter&, const std::string& s, CallArgs& c) {
         Args a(c, "casefold", {});
         no_rest(a, "casefold");
         return Value(py::replace(py::lower(s), "\xC3\x9F", "ss", -1));
       }},
      {"title", [](Interpreter&, const std::string& s, CallArgs& c) { Args a(c, "title", {}); no_rest(a, "title"); return Value(py::title(s)); }},
      {"capitalize", [](Interpreter&, const std::string& s, CallArgs& c) { Args a(c, "capitalize", {}); no_rest(a, "capitalize"); return Value(py::capitalize(s)); }},
      {"swapcase", [](Interpreter&, const std::string& s, CallArgs& c) { Args a(c, "swapcase", {}); no_rest(a, "swapcase"); return Value(py::swapcase(s)); }},
      {"replace", [](Interpreter&, const std::string& s, CallArgs& c) {
         Args a(c, "replace", {"old", "new", "count"});
         no_rest(a, "replace");
         if (!a.has(0) || !a.has(1)) raise("replace() expected at least 2 arguments");
         const std::string& old = a.get_str(0);
         const std::string& with = a.get_str(1);
         int64_t count = a.int_or(2, -1);
         size_t n = py::count(s, old);
         if (count >= 0 && static_cast<size_t>(count) < n) n = static_cast<size_t>(count);
         check_string_size(s.size() + n * with.size());
         return Value(py::replace(s, old, with, count));
       }},
      {"find", [](Interpreter&, const std::string& s, CallArgs& c) { return m_find(s, c, false, false, "find"); }},
      {"rfind", [](Interpreter&, const std::string& s, CallArgs& c) { return m_find(s, c, true, false, "rfind"); }},
      {"index", [](Interpreter&, const std::string& s, CallArgs& c) { return m_find(s, c, false, true, "index"); }},
      {"rindex", [](Interpreter&, const std::string& s, CallArgs& c) { return m_find(s, c, true, true, "rindex"); }},
      {"count", [](Interpreter&, const std::string& s, CallArgs& c) {
         Args a(c, "count", {"sub"});
         no_rest(a, "count");
         if (!a.has(0)) raise("count() takes at least 1 argument (0 given)");
         return Value(static_cast<int64_t>(py::count(s, a.get_str(0))));
       }},
      {"join", m_join},
      {"format", [](Interpreter&, const std::string& s, CallArgs& c) { return Value(brace_format(s, c)); }},
      {"center", [](Interpreter&, const std::string& s, CallArgs& c) { return m_justify(s, c, '^', "center"); }},
      {"ljust", [](Interpreter&, const std::string& s, CallArgs& c) { return m_justify(s, c, '<', "ljust"); }},
      {"rjust", [](Interpreter&, const std::string& s, CallArgs& c) { return m_justify(s, c, '>', "rjust"); }},
      {"zfill", [](Interpreter&, const std::string& s, CallArgs& c) {
         Args a(c, "zfill", {"width"});
         no_rest(a, "zfill");
         if (!a.has(0)) raise("zfill() takes exactly one argument (0 given)");
         int64_t width = a.get_int(0), len = static_cast<int64_t>(py::length(s));
         if (width <= len) return Value(s);
         check_string_size(static_cast<size_t>(width));
         size_t sign = !s.empty() && (s[0] == '+' || s[0] == '-') ? 1 : 0;
         return Value(s.substr(0, sign) + std::string(static_cast<size_t>(width - len), '0') + s.substr(sign));
       }},
      {"partition", [](Interpreter&, const std::string& s, CallArgs& c) { return m_partition(s, c, false); }},
      {"rpartition", [](Interpreter&, const std::string& s, CallArgs& c) { return m_partition(s, c, true); }},
      {"removeprefix", [](Interpreter&, const std::string& s, CallArgs& c) {
         Args a(c, "removeprefix", {"prefix"});
         no_rest(a, "removeprefix");
         if (!a.has(0)) raise("removeprefix() takes exactly one argument (0 given)");
         const std::string& p = a.get_str(0);
         return Value(s.rfind(p, 0) == 0 ? s.substr(p.size()) : s);
       }},
      {"removesuffix", [](Interpreter&, const std::string& s, CallArgs& c) {
         Args a(c, "removesuffix", {"suffix"});
         no_rest(a, "removesuffix");
         if (!a.has(0)) raise("removesuffix() takes exactly one argument (0 given)");
         const std::string& p = a.get_str(0);
         bool ends = !p.empty() && p.size() <= s.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
         return Value(ends ? s.substr(0, s.size() - p.size()) : s);
       }},
      {"isspace", m_is<py::is_space>},
      {"isalpha", m_is<py::is_alpha>},
      {"isalnum", m_is<py::is_alnum>},
      {"isdigit", m_is<py::is_decimal>},
      {"isdecimal", m_is<py::is_decimal>},
      {"isnumeric", m_is<py::is_decimal>},
      {"islower", [](Interpreter&, const std::string& s, CallArgs& c) { Args a(c, "islower", {}); no_rest(a, "islower"); return m_islower_upper(s, true); }},
      {"isupper", [](Interpreter&, const std::string& s, CallArgs& c) { Args a(c, "isupper", {}); no_rest(a, "isupper"); return m_islower_upper(s, false); }},
  };
  return m;
}

// str attributes Python has but whale does not implement: calling them fails clearly.
constexpr std::string_view kStrUnsupported[] = {
    "encode", "expandtabs", "format_map", "isascii", "isidentifier", "isprintable",
    "istitle", "maketrans", "translate"};

// Methods the immutable sandbox refuses (they would modify the object).
constexpr std::string_view kListMutators[] = {"append", "clear", "extend", "insert", "pop",
                                              "remove", "reverse", "sort"};
constexpr std::string_view kDictMutators[] = {"clear", "pop", "popitem", "setdefault", "update"};

Value unsafe(const Value& obj, std::string_view name) {
  return Value::undefined(fmt::format("access to attribute '{}' of '{}' object is unsafe.", name,
                                      type_name(obj)));
}

Value dict_view(const DictObj& d, ListObj::Kind kind) {
  std::vector<Value> out;
  out.reserve(d.items.size());
  for (const auto& [k, v] : d.items) {
    if (kind == ListObj::Kind::DictKeys) out.push_back(k);
    else if (kind == ListObj::Kind::DictValues) out.push_back(v);
    else out.push_back(Value::make_tuple({k, v}));
  }
  return Value::make_list(std::move(out), kind);
}

}  // namespace

std::optional<Value> get_method(const Value& obj, std::string_view name) {
  if (obj.is_string()) {
    auto& m = str_methods();
    auto it = m.find(name);
    if (it != m.end()) {
      StrMethod fn = it->second;
      std::string self = obj.str();
      return Value::make_function("str." + std::string(name) + "()",
                                  [fn, self](Interpreter& in, CallArgs& a) { return fn(in, self, a); });
    }
    for (auto u : kStrUnsupported)
      if (name == u)
        return Value::make_function("str." + std::string(name) + "()", [u](Interpreter&, CallArgs&) -> Value {
          raise("str.{}() is not supported", u);
        });
    return std::nullopt;
  }
  if (obj.is_mapping()) {
    for (auto u : kDictMutators)
      if (name == u) return unsafe(obj, name);
    DictPtr d = obj.dict_ptr();
    auto view = [d](ListObj::Kind kind, const char* fn) {
      return Value::make_function(std::string("dict.") + fn + "()", [d, kind, fn](Interpreter&, CallArgs& c) {
        Args a(c, fn, {});
        no_rest(a, fn);
        return dict_view(*d, kind);
      });
    };
    if (name == "items") return view(ListObj::Kind::DictItems, "items");
    if (name == "keys") return view(ListObj::Kind::DictKeys, "keys");
    if (name == "values") return view(ListObj::Kind::DictValues, "values");
    if (name == "get")
      return Value::make_function("dict.get()", [d](Interpreter&, CallArgs& c) -> Value {
        Args a(c, "get", {"key", "default"});
        no_rest(a, "get");
        if (!c.kw.empty()) raise("get() takes no keyword arguments");
        if (!a.has(0)) raise("get expected at least 1 argument, got 0");
        if (!is_hashable(a.get(0))) raise("unhashable type: '{}'", type_name(a.get(0)));
        if (const Value* v = d->find(a.get(0))) return *v;
        return a.has(1) ? a.get(1) : Value(None{});
      });
    if (name == "copy")
      return Value::make_function("dict.copy()", [d](Interpreter&, CallArgs&) {
        Value out = Value::make_dict();
        out.dict().items = d->items;
        return out;
      });
    if (name == "fromkeys")
      return Value::make_function("dict.fromkeys()", [](Interpreter&, CallArgs&) -> Value {
        raise("dict.fromkeys() is not supported");
      });
    return std::nullopt;
  }
  if (obj.is_plain_list()) {
    bool is_list = obj.list().kind == ListObj::Kind::List;
    if (is_list)
      for (auto u : kListMutators)
        if (name == u) return unsafe(obj, name);
    ListPtr l = obj.list_ptr();
    if (name == "count")
      return Value::make_function("list.count()", [l](Interpreter&, CallArgs& c) {
        Args a(c, "count", {"value"});
        no_rest(a, "count");
        if (!a.has(0)) raise("count() takes exactly one argument (0 given)");
        int64_t n = 0;
        for (const auto& x : l->items) n += equals(x, a.get(0)) ? 1 : 0;
        return Value(n);
      });
    if (name == "index")
      return Value::make_function("list.index()", [l](Interpreter&, CallArgs& c) -> Value {
        Args a(c, "index", {"value"});
        no_rest(a, "index");
        if (!a.has(0)) raise("index expected at least 1 argument, got 0");
        for (size_t i = 0; i < l->items.size(); ++i)
          if (equals(l->items[i], a.get(0))) return Value(static_cast<int64_t>(i));
        raise("{} is not in list", repr(a.get(0)));
      });
    if (name == "copy" && is_list)
      return Value::make_function("list.copy()", [l](Interpreter&, CallArgs&) { return Value::make_list(l->items); });
  }
  return std::nullopt;
}

// ---- globals -----------------------------------------------------------------------------------

namespace {

Value g_range(Interpreter&, CallArgs& c) {
  if (!c.kw.empty()) raise("range() takes no keyword arguments");
  std::vector<int64_t> a;
  for (const auto& v : c.pos) {
    if (!(v.is_int() || v.is_bool())) raise("'{}' object cannot be interpreted as an integer", type_name(v));
    a.push_back(v.int_value());
  }
  if (a.empty() || a.size() > 3) raise("range expected 1 to 3 arguments, got {}", a.size());
  int64_t start = a.size() == 1 ? 0 : a[0], stop = a.size() == 1 ? a[0] : a[1],
          step = a.size() == 3 ? a[2] : 1;
  if (step == 0) raise("range() arg 3 must not be zero");
  // Length computed in floating point to avoid overflow; the sandbox caps it anyway.
  double n = std::ceil((static_cast<double>(stop) - static_cast<double>(start)) / static_cast<double>(step));
  if (n < 0) n = 0;
  constexpr double kMaxRange = 100000;  // Jinja's sandbox MAX_RANGE
  if (n > kMaxRange) raise("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  std::vector<Value> items;
  for (int64_t i = 0; i < static_cast<int64_t>(n); ++i) items.emplace_back(start + i * step);
  Value r = Value::make_list(std::move(items), ListObj::Kind::Range);
  r.list().range_start = start, r.list().range_stop = stop, r.list().range_step = step;
  return r;
}

// dict(*args, **kwargs) as Python builds it: a mapping or iterable of pairs, then keywords.
Value build_dict(CallArgs& c, const char* fn) {
  if (c.pos.size() > 1) raise("{} expected at most 1 argument, got {}", fn, c.pos.size());
  Value d = Value::make_dict();
  if (!c.pos.empty()) {
    const Value& src = c.pos[0];
    if (src.is_dict()) {
      d.dict().items = src.dict().items;
    } else {
      for (const Value& pair : iterate(src)) {
        std::vector<Value> kv = iterate(pair);
        if (kv.size() != 2)
          raise("dictionary update sequence element has length {}; 2 is required", kv.size());
        if (!is_hashable(kv[0])) raise("unhashable type: '{}'", type_name(kv[0]));
        d.dict().set(kv[0], kv[1]);
      }
    }
  }
  for (auto& [k, v] : c.kw) d.dict().set(Value(k), v);
  return d;
}

Value g_strftime_now(Interpreter&, CallArgs& c) {
  Args a(c, "strftime_now", {"format"});
  no_rest(a, "strftime_now");
  if (!a.has(0)) raise("strftime_now() missing 1 required positional argument: 'format'");
  const std::string& f = a.get_str(0);
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  if (f.empty()) return Value("");
  // strftime reports 0 both for "too small" and for an empty result: grow a few times.
  for (size_t cap = 256; cap <= (1u << 20); cap *= 4) {
    std::string buf(cap, '\0');
    size_t n = std::strftime(buf.data(), buf.size(), f.c_str(), &tm);
    if (n > 0) return Value(buf.substr(0, n));
  }
  return Value("");
}

}  // namespace

Value make_globals() {
  Value g = Value::make_dict();
  auto add = [&](const char* name, std::function<Value(Interpreter&, CallArgs&)> fn) {
    g.dict().items.emplace_back(Value(name), Value::make_function(name, std::move(fn)));
  };
  add("range", g_range);
  add("dict", [](Interpreter&, CallArgs& c) { return build_dict(c, "dict"); });
  add("namespace", [](Interpreter&, CallArgs& c) {
    Value ns = build_dict(c, "namespace");
    ns.dict().is_namespace = true;
    return ns;
  });
  add("raise_exception", [](Interpreter&, CallArgs& c) -> Value {
    Args a(c, "raise_exception", {"message"});
    no_rest(a, "raise_exception");
    throw TemplateError("raise_exception: " + (a.has(0) ? to_str(a.get(0)) : std::string()));
  });
  add("strftime_now", g_strftime_now);
  add("joiner", [](Interpreter&, CallArgs& c) {
    Args a(c, "joiner", {"sep"});
    no_rest(a, "joiner");
    std::string sep = a.has(0) ? to_str(a.get(0)) : ", ";
    auto used = std::make_shared<bool>(false);
    return Value::make_function("joiner", [sep, used](Interpreter&, CallArgs&) {
      if (!*used) {
        *used = true;
        return Value("");
      }
      return Value(sep);
    });
  });
  for (const char* name : {"cycler", "lipsum"})
    add(name, [name](Interpreter&, CallArgs&) -> Value { raise("{}() is not supported", name); });
  return g;
}

}  // namespace whale::jinja
