// Tree-walking evaluator for parsed templates (internal to the jinja module).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "text/jinja/ast.h"
#include "text/jinja/jinja.h"
#include "text/jinja/value.h"

namespace whale::jinja {

// A frame of variables. Jinja scoping: each for-loop iteration, macro call, {% with %} and
// block-set body gets a child frame, so `set` inside them does not leak out (hence the
// namespace() idiom); `if` does not create one. Frames are shared because macros close over
// the frame they were defined in.
class Scope {
 public:
  explicit Scope(std::shared_ptr<Scope> parent) : parent_(std::move(parent)) {}
  const Value* lookup(std::string_view name) const;
  void set(std::string_view name, Value v);

 private:
  std::shared_ptr<Scope> parent_;
  std::vector<std::pair<std::string, Value>> vars_;
};
using ScopePtr = std::shared_ptr<Scope>;

class Interpreter {
 public:
  explicit Interpreter(const Limits& limits) : limits_(limits) {}

  std::string render(const Body& body, const Value& context);

  // Used by builtins that take other filters/tests by name (map, select, ...) and by callers
  // of Function values.
  Value apply_filter(const std::string& name, const Value& v, CallArgs& args);
  bool apply_test(const std::string& name, const Value& v, CallArgs& args);
  Value call(const Value& callee, CallArgs& args);

  // Counts iterations of loops run by builtins too, against Limits::max_loop_iterations.
  void count_iterations(size_t n);

 private:
  enum class Flow { Normal, Break, Continue };

  Flow exec_body(const Body& body, const ScopePtr& scope, std::string& out);
  Flow exec(const Stmt& s, const ScopePtr& scope, std::string& out);
  Flow exec_for(const ForStmt& s, const ScopePtr& scope, std::string& out);
  void assign(const Target& t, Value v, const ScopePtr& scope);
  Value define_macro(const MacroStmt& m, const ScopePtr& scope);
  Value call_macro(const MacroStmt& m, const ScopePtr& closure, CallArgs& args);
  Value apply_block_filters(const std::vector<std::unique_ptr<FilterExpr>>& filters, Value v,
                            const ScopePtr& scope);

  Value eval(const Expr& e, const ScopePtr& scope);
  Value eval_inner(const Expr& e, const ScopePtr& scope);
  CallArgs eval_args(const ArgExprs& a, const ScopePtr& scope);
  Value eval_filter(const FilterExpr& f, Value operand, const ScopePtr& scope);
  bool eval_compare(const CompareExpr& c, const ScopePtr& scope);
  void append(std::string& out, std::string_view text) const;

  struct DepthGuard {
    Interpreter& in;
    explicit DepthGuard(Interpreter& i);
    ~DepthGuard() { --in.depth_; }
  };

  const Limits& limits_;
  int depth_ = 0;
  int64_t iterations_ = 0;
};

}  // namespace whale::jinja
