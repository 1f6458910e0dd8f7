// The dynamic value of the Jinja interpreter: a Python object as far as chat templates can see.
//
// Jinja2 evaluates templates with Python semantics, and chat templates depend on them (how
// None prints, int vs float division, dict key order, truthiness of an empty list...). Value
// models the Python types a template can meet: None, bool, int (64-bit here: overflow is an
// error, never a wrap), float, str (UTF-8), list/tuple, dict (insertion-ordered), Jinja's
// Undefined, its namespace and loop objects, and callables (macros, methods, globals).
//
// Containers are shared (Python references): `{% set a = b %}` aliases, as in Python. The
// sandbox HF uses is immutable, so only namespaces are ever mutated.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace whale::jinja {

class Value;
class Interpreter;

// A failure while rendering (Python's TypeError, UndefinedError, ...). The interpreter adds the
// line of the innermost node being evaluated before turning it into a whale::Error.
class TemplateError : public std::exception {
 public:
  explicit TemplateError(std::string message, int line = 0)
      : message_(std::move(message)), line_(line) {}
  const char* what() const noexcept override { return message_.c_str(); }
  const std::string& message() const { return message_; }
  int line() const { return line_; }
  void set_line(int line) { line_ = line; }

 private:
  std::string message_;
  int line_;
};

template <typename... Args>
[[noreturn]] void raise(fmt::format_string<Args...> f, Args&&... args) {
  throw TemplateError(fmt::format(f, std::forward<Args>(args)...));
}

// Jinja's Undefined: what a missing variable, key or attribute evaluates to. Printing it gives
// "", iterating it yields nothing, `is defined` is false; most other uses raise, with `hint`
// ("'foo' is undefined") as the message.
struct Undefined {
  std::string hint;
};

struct None {};

struct ListObj {
  // Python types that share the list representation but differ in how they print, whether
  // they can be indexed, measured and iterated more than once.
  enum class Kind : uint8_t {
    List,
    Tuple,
    Range,       // range(...): prints as "range(0, 3)"
    Iterator,    // generator / reversed(): single pass, truthy, no len(), no indexing
    DictItems,   // dict.items() view and friends: no indexing
    DictKeys,
    DictValues,
  };
  Kind kind = Kind::List;
  std::vector<Value> items;
  size_t cursor = 0;  // Iterator: items before the cursor were consumed
  int64_t range_start = 0, range_stop = 0, range_step = 1;
};

struct DictObj {
  std::vector<std::pair<Value, Value>> items;  // insertion order, like Python dicts
  bool is_namespace = false;                   // Jinja namespace(): attributes, assignable

  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(Value key, Value value);
};

// Arguments of a call: positional then keyword, as written.
struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};

struct Function {
  std::string name;  // for messages: "macro 'm'", "method 'split'", "raise_exception"
  std::function<Value(Interpreter&, CallArgs&)> call;
};

// Jinja's LoopContext: `loop.index` etc. are computed from the position in `items`.
struct LoopObj {
  std::shared_ptr<const std::vector<Value>> items;
  int64_t index0 = 0;
  std::shared_ptr<Value> last_changed;  // state of loop.changed(...)
};

using ListPtr = std::shared_ptr<ListObj>;
using DictPtr = std::shared_ptr<DictObj>;
using FunctionPtr = std::shared_ptr<Function>;
using LoopPtr = std::shared_ptr<LoopObj>;

class Value {
 public:
  enum class Type : uint8_t {
    Undefined, None, Bool, Int, Float, String, List, Dict, Function, Loop
  };

  Value() : v_(Undefined{}) {}
  Value(None) : v_(None{}) {}
  template <typename T, std::enable_if_t<std::is_same_v<T, bool>, int> = 0>
  Value(T b) : v_(b) {}
  Value(int i) : v_(static_cast<int64_t>(i)) {}
  Value(int64_t i) : v_(i) {}
  Value(double d) : v_(d) {}
  // Strings are immutable and shared: copying a Value never copies the text.
  Value(std::string s) : v_(make_str(std::move(s))) {}
  Value(std::string_view s) : v_(make_str(std::string(s))) {}
  Value(const char* s) : v_(make_str(std::string(s))) {}
  Value(ListPtr l) : v_(std::move(l)) {}
  Value(DictPtr d) : v_(std::move(d)) {}
  Value(FunctionPtr f) : v_(std::move(f)) {}
  Value(LoopPtr l) : v_(std::move(l)) {}

  static Value undefined(std::string hint) { return Value(Undefined{std::move(hint)}); }
  static Value make_list(std::vector<Value> items, ListObj::Kind kind = ListObj::Kind::List);
  static Value make_tuple(std::vector<Value> items) {
    return make_list(std::move(items), ListObj::Kind::Tuple);
  }
  static Value make_dict();
  static Value make_function(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn);

  Type type() const { return static_cast<Type>(v_.index()); }
  bool is_undefined() const { return type() == Type::Undefined; }
  bool is_none() const { return type() == Type::None; }
  bool is_bool() const { return type() == Type::Bool; }
  bool is_int() const { return type() == Type::Int; }
  bool is_float() const { return type() == Type::Float; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }  // Python: bool is int
  bool is_string() const { return type() == Type::String; }
  bool is_list() const { return type() == Type::List; }
  bool is_dict() const { return type() == Type::Dict; }
  bool is_function() const { return type() == Type::Function; }
  bool is_loop() const { return type() == Type::Loop; }
  bool is_namespace() const { return is_dict() && dict().is_namespace; }
  bool is_mapping() const { return is_dict() && !dict().is_namespace; }
  // list or tuple: indexable, sliceable sequences of values (not ranges/views/iterators).
  bool is_plain_list() const;

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  double as_float() const { return std::get<double>(v_); }
  const std::string& str() const { return *std::get<StrPtr>(v_); }
  ListObj& list() const { return *std::get<ListPtr>(v_); }
  const ListPtr& list_ptr() const { return std::get<ListPtr>(v_); }
  DictObj& dict() const { return *std::get<DictPtr>(v_); }
  const DictPtr& dict_ptr() const { return std::get<DictPtr>(v_); }
  Function& function() const { return *std::get<FunctionPtr>(v_); }
  LoopObj& loop() const { return *std::get<LoopPtr>(v_); }
  const std::string& undefined_hint() const { return std::get<Undefined>(v_).hint; }

  // Numeric value of an int/bool (Python: True == 1).
  int64_t int_value() const { return is_bool() ? (as_bool() ? 1 : 0) : as_int(); }
  double number() const { return is_float() ? as_float() : static_cast<double>(int_value()); }

 private:
  using StrPtr = std::shared_ptr<const std::string>;
  static StrPtr make_str(std::string s);  // counts the bytes against the render's work budget
  explicit Value(Undefined u) : v_(std::move(u)) {}
  std::variant<Undefined, None, bool, int64_t, double, StrPtr, ListPtr, DictPtr,
               FunctionPtr, LoopPtr>
      v_;
};

// ---- Python object protocol (value.cpp) ------------------------------------------------------

std::string type_name(const Value& v);    // Python's type(v).__name__: 'NoneType', 'dict', ...
bool truthy(const Value& v);              // bool(v)
std::string to_str(const Value& v);       // str(v); Undefined -> ""
std::string repr(const Value& v);         // repr(v)
bool equals(const Value& a, const Value& b);  // a == b
// a <op> b for op in "<", "<=", ">", ">="; TypeError for unorderable types.
bool compare(const Value& a, const Value& b, std::string_view op);
bool contains(const Value& container, const Value& item);          // item in container
size_t len(const Value& v);                                        // len(v) or TypeError
// list(iter(v)): the items a for-loop sees. Consumes iterators; Undefined yields nothing.
std::vector<Value> iterate(const Value& v);
bool is_hashable(const Value& v);
// Raise the Undefined's message if `v` is undefined (for operations Undefined refuses).
void require_defined(const Value& v);

// ---- conversions -----------------------------------------------------------------------------
Value from_json(const nlohmann::ordered_json& j);
// Python's json.dumps as HF's tojson calls it. indent < 0 means None.
struct DumpOptions {
  bool ensure_ascii = false;
  bool has_indent = false;
  std::string indent;
  std::string item_sep = ", ";
  std::string key_sep = ": ";
  bool sort_keys = false;
};
std::string dumps(const Value& v, const DumpOptions& opt);

// ---- limits shared by helpers that build strings and lists ----------------------------------
// Set by the interpreter for the duration of a render (thread-local), so that helpers deep in
// value/filter code can refuse to build a hostile 10 GB string without threading limits around.
struct ValueLimits {
  size_t max_string_bytes = 64u << 20;
  size_t max_list_items = 1u << 20;
  size_t max_nesting = 256;
  // Totals over a render: every string and list built counts, so that loops of operations on
  // large values cannot burn unbounded time and memory while each step stays under the caps.
  size_t max_total_string_bytes = size_t{1} << 30;
  size_t max_total_list_items = 64u << 20;
};
const ValueLimits& value_limits();
// Installs limits for this thread (nullptr restores the defaults) and resets the totals.
void set_value_limits(const ValueLimits* limits);
void check_string_size(size_t bytes);
void check_list_size(size_t items);
// Decimal digits to int64, raising (not throwing std::out_of_range) when too large.
int64_t parse_index(std::string_view digits);

}  // namespace whale::jinja
