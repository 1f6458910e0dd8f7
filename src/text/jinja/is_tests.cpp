// Jinja tests — the predicates of `x is defined`, `x is divisibleby 3`, select('odd') — with
// Jinja2 3.1 semantics (jinja2/tests.py). Python's type model decides several answers:
// bool is a number but not an integer, a dict is a sequence, Undefined is iterable.
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

bool one_arg(CallArgs& c, const char* fn, Value* out) {
  Args a(c, fn, {"other"});
  no_rest(a, fn);
  if (!a.has(0)) raise("{}() missing 1 required positional argument", fn);
  *out = a.get(0);
  return true;
}

template <bool (*Pred)(const Value&)>
bool t_unary(Interpreter&, const Value& v, CallArgs& c) {
  Args a(c, "test", {});
  no_rest(a, "test");
  return Pred(v);
}

bool is_sequence(const Value& v) {
  // Python: has __len__ and __getitem__ (dict views and generators lack __getitem__).
  if (v.is_undefined() || v.is_string() || v.is_mapping()) return true;
  if (!v.is_list()) return false;
  auto k = v.list().kind;
  return k == ListObj::Kind::List || k == ListObj::Kind::Tuple || k == ListObj::Kind::Range;
}

bool is_iterable(const Value& v) {
  return v.is_undefined() || v.is_string() || v.is_list() || v.is_mapping() || v.is_loop();
}

bool mod_equals(const Value& v, const Value& d, int64_t r) {
  return equals(binary_op(BinOp::Mod, v, d), Value(r));
}

// str.islower() / str.isupper(): some cased character, none of the other case.
bool str_case_is(const std::string& s, bool lower) {
  bool any = false;
  for (char32_t ch : py::decode(s)) {
    if (lower ? py::is_upper(ch) : py::is_lower(ch)) return false;
    any = any || (lower ? py::is_lower(ch) : py::is_upper(ch));
  }
  return any;
}

bool t_compare(const Value& v, CallArgs& c, const char* fn, std::string_view op) {
  Value other;
  one_arg(c, fn, &other);
  if (op == "==") return equals(v, other);
  if (op == "!=") return !equals(v, other);
  return compare(v, other, op);
}

bool t_sameas(Interpreter&, const Value& v, CallArgs& c) {
  Value o;
  one_arg(c, "sameas", &o);
  if (v.is_none() || o.is_none()) return v.is_none() && o.is_none();
  if (v.is_bool() || o.is_bool()) return v.is_bool() && o.is_bool() && v.as_bool() == o.as_bool();
  if (v.is_list() && o.is_list()) return &v.list() == &o.list();
  if (v.is_dict() && o.is_dict()) return &v.dict() == &o.dict();
  if (v.is_function() && o.is_function()) return &v.function() == &o.function();
  if (v.type() != o.type()) return false;
  // Identity of equal strings/numbers depends on CPython's interning: not reproducible.
  raise("'sameas' on {} values is not supported", type_name(v));
}

bool p_boolean(const Value& v) { return v.is_bool(); }
bool p_callable(const Value& v) { return v.is_function() || v.is_undefined() || v.is_loop(); }
bool p_defined(const Value& v) { return !v.is_undefined(); }
bool p_undefined(const Value& v) { return v.is_undefined(); }
bool p_none(const Value& v) { return v.is_none(); }
bool p_false(const Value& v) { return v.is_bool() && !v.as_bool(); }
bool p_true(const Value& v) { return v.is_bool() && v.as_bool(); }
bool p_integer(const Value& v) { return v.is_int(); }
bool p_float(const Value& v) { return v.is_float(); }
bool p_number(const Value& v) { return v.is_number(); }
bool p_string(const Value& v) { return v.is_string(); }
bool p_mapping(const Value& v) { return v.is_mapping(); }
bool p_odd(const Value& v) { return mod_equals(v, Value(2), 1); }
bool p_even(const Value& v) { return mod_equals(v, Value(2), 0); }
bool p_lower(const Value& v) { return str_case_is(to_str(v), true); }
bool p_upper(const Value& v) { return str_case_is(to_str(v), false); }
bool p_filter(const Value& v) { return v.is_string() && jinja_has_filter(v.str()); }
bool p_test(const Value& v) { return v.is_string() && jinja_has_test(v.str()); }

const std::map<std::string_view, TestFn>& tests() {
  static const std::map<std::string_view, TestFn> m = {
      {"boolean", t_unary<p_boolean>},
      {"callable", t_unary<p_callable>},
      {"defined", t_unary<p_defined>},
      {"undefined", t_unary<p_undefined>},
      {"none", t_unary<p_none>},
      {"false", t_unary<p_false>},
      {"true", t_unary<p_true>},
      {"integer", t_unary<p_integer>},
      {"float", t_unary<p_float>},
      {"number", t_unary<p_number>},
      {"string", t_unary<p_string>},
      {"mapping", t_unary<p_mapping>},
      {"sequence", t_unary<is_sequence>},
      {"iterable", t_unary<is_iterable>},
      {"odd", t_unary<p_odd>},
      {"even", t_unary<p_even>},
      {"lower", t_unary<p_lower>},
      {"upper", t_unary<p_upper>},
      {"divisibleby", [](Interpreter&, const Value& v, CallArgs& c) {
         Value d;
         one_arg(c, "divisibleby", &d);
         return mod_equals(v, d, 0);
       }},
      {"in", [](Interpreter&, const Value& v, CallArgs& c) {
         Value seq;
         one_arg(c, "in", &seq);
         return contains(seq, v);
       }},
      {"sameas", t_sameas},
      {"eq", [](Interpreter&, const Value& v, CallArgs& c) { return t_compare(v, c, "eq", "=="); }},
      {"equalto", [](Interpreter&, const Value& v, CallArgs& c) { return t_compare(v, c, "equalto", "=="); }},
      {"==", [](Interpreter&, const Value& v, CallArgs& c) { return t_compare(v, c, "==", "=="); }},
      {"ne", [](Interpreter&, const Value& v, CallArgs& c) { return t_compare(v, c, "ne", "!="); }},
      {"!=", [](Interpreter&, const Value& v, CallArgs& c) { return t_compare(v, c, "!=", "!="); }},
      {"lt", [](Interpreter&, const Value& v, CallArgs& c) { return t_compare(v, c, "lt", "<"); }},
      {"lessthan", [](Interpreter&, const Value& v, CallArgs& c) { return t_compare(v, c, "lessthan", "<"); }},
      {"<", [](Interpreter&, const Value& v, CallArgs& c) { return t_compare(v, c, "<", "<"); }},
      {"le", [](Interpreter&, const Value& v, CallArgs& c) { return t_compare(v, c, "le", "<="); }},
      {"<=", [](Interpreter&, const Value& v, CallArgs& c) { return t_compare(v, c, "<=", "<="); }},
      {"gt", [](Interpreter&, const Value& v, CallArgs& c) { return t_compare(v, c, "gt", ">"); }},
      {"greaterthan", [](Interpreter&, const Value& v, CallArgs& c) { return t_compare(v, c, "greaterthan", ">"); }},
      {">", [](Interpreter&, const Value& v, CallArgs& c) { return t_compare(v, c, ">", ">"); }},
      {"ge", [](Interpreter&, const Value& v, CallArgs& c) { return t_compare(v, c, "ge", ">="); }},
      {">=", [](Interpreter&, const Value& v, CallArgs& c) { return t_compare(v, c, ">=", ">="); }},
      {"filter", t_unary<p_filter>},
      {"test", t_unary<p_test>},
  };
  return m;
}

constexpr std::string_view kUnsupportedTests[] = {"escaped"};

}  // namespace

TestFn find_test(std::string_view name) {
  auto it = tests().find(name);
  return it == tests().end() ? nullptr : it->second;
}

bool jinja_has_test(std::string_view name) {
  if (find_test(name)) return true;
  for (auto n : kUnsupportedTests)
    if (n == name) return true;
  return false;
}

}  // namespace whale::jinja
