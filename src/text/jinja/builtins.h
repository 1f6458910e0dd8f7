// Built-in filters, tests, methods of str/dict/list, and global functions — the library a
// template can call, with Jinja2 3.1 / Python semantics (filters.cpp, methods.cpp).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "text/jinja/value.h"

namespace whale::jinja {

using FilterFn = Value (*)(Interpreter&, const Value&, CallArgs&);
using TestFn = bool (*)(Interpreter&, const Value&, CallArgs&);

// nullptr when whale does not implement it.
FilterFn find_filter(std::string_view name);
TestFn find_test(std::string_view name);
// Whether Jinja2 (with HF's additions) defines it at all. Jinja reports an unknown filter when
// the template is compiled (unless it sits in an if-branch); a known one whale lacks can only
// fail when it runs.
bool jinja_has_filter(std::string_view name);
bool jinja_has_test(std::string_view name);

// obj.name for the attributes Python objects expose as methods (str.split, dict.items, ...):
// a bound Function, an Undefined that raises the sandbox's error when called (list.append
// and other mutators: HF's sandbox is immutable), or nullopt when the type has no such
// attribute.
std::optional<Value> get_method(const Value& obj, std::string_view name);

// Globals: range, dict, namespace, raise_exception, strftime_now, ...
Value make_globals();

// Python-style binding of call arguments to named parameters, for builtins.
//   Args a(args, "indent", {"width", "first", "blank"});
//   int64_t w = a.has(0) ? a.get_int(0) : 4;
class Args {
 public:
  Args(CallArgs& args, std::string_view fn, std::initializer_list<const char*> params);
  bool has(size_t i) const { return bound_[i] != nullptr; }
  const Value& get(size_t i) const { return *bound_[i]; }
  // Typed accessors raise TypeError naming the function and parameter.
  int64_t get_int(size_t i) const;
  double get_number(size_t i) const;
  const std::string& get_str(size_t i) const;
  bool get_bool(size_t i) const { return truthy(get(i)); }
  // Optional typed parameter: the default when absent (or None if none_is_default).
  int64_t int_or(size_t i, int64_t def) const { return has(i) ? get_int(i) : def; }
  bool bool_or(size_t i, bool def) const { return has(i) ? get_bool(i) : def; }
  // Positional arguments beyond the declared parameters (for select/map style *args).
  std::vector<Value> rest;

 private:
  std::string fn_;
  std::vector<const char*> names_;
  std::vector<const Value*> bound_;
};

// Python slicing: seq[start:stop:step] on a list/tuple/str (None bounds = absent).
Value slice_value(const Value& seq, const Value& start, const Value& stop, const Value& step);

// Helpers shared by filters and the interpreter.
Value getattr_value(const Value& obj, std::string_view name);  // Jinja's environment.getattr
Value getitem_value(const Value& obj, const Value& key);        // Jinja's environment.getitem

}  // namespace whale::jinja
