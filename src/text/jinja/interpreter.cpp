// Evaluation of statements and expressions (see interpreter.h for the scoping model).
#include "text/jinja/interpreter.h"

#include "text/jinja/builtins.h"
#include "text/jinja/ops.h"

namespace whale::jinja {

// ---- scopes ------------------------------------------------------------------------------------

const Value* Scope::lookup(std::string_view name) const {
  for (const Scope* s = this; s; s = s->parent_.get())
    for (const auto& [k, v] : s->vars_)
      if (k == name) return &v;
  return nullptr;
}

void Scope::set(std::string_view name, Value v) {
  for (auto& [k, old] : vars_)
    if (k == name) {
      old = std::move(v);
      return;
    }
  vars_.emplace_back(std::string(name), std::move(v));
}

// ---- helpers -----------------------------------------------------------------------------------

Interpreter::DepthGuard::DepthGuard(Interpreter& i) : in(i) {
  if (++in.depth_ > in.limits_.max_render_depth) {
    --in.depth_;
    raise("recursion deeper than {} levels", in.limits_.max_render_depth);
  }
}

void Interpreter::append(std::string& out, std::string_view text) const {
  if (out.size() + text.size() > limits_.max_output_bytes)
    raise("output exceeds the limit of {} bytes", limits_.max_output_bytes);
  out.append(text);
}

void Interpreter::count_iterations(size_t n) {
  iterations_ += static_cast<int64_t>(n);
  if (iterations_ > limits_.max_loop_iterations)
    raise("more than {} loop iterations", limits_.max_loop_iterations);
}

// A namespace attribute is the only place a value can be stored across loop iterations, so it
// is where nesting could grow without bound or a reference cycle could form (which would
// leak, and make printing recurse forever). Both are refused here.
static void check_storable(const Value& v, const DictObj* ns, size_t depth) {
  if (depth > value_limits().max_nesting)
    raise("value nested more than {} levels deep", value_limits().max_nesting);
  if (v.is_list()) {
    for (const auto& x : v.list().items) check_storable(x, ns, depth + 1);
  } else if (v.is_dict()) {
    if (&v.dict() == ns) raise("cannot store a namespace inside itself");
    for (const auto& [k, x] : v.dict().items) check_storable(x, ns, depth + 1);
  }
}

// ---- render ------------------------------------------------------------------------------------

std::string Interpreter::render(const Body& body, const Value& context) {
  ValueLimits vl;
  vl.max_string_bytes = limits_.max_output_bytes;
  vl.max_list_items = limits_.max_list_items;
  vl.max_total_string_bytes = limits_.max_total_string_bytes;
  vl.max_total_list_items = limits_.max_total_list_items;
  set_value_limits(&vl);
  struct Reset {
    ~Reset() { set_value_limits(nullptr); }
  } reset;

  if (!context.is_mapping()) raise("the render context must be a JSON object");
  auto globals = std::make_shared<Scope>(nullptr);
  Value g = make_globals();
  for (const auto& [k, v] : g.dict().items) globals->set(k.str(), v);
  auto ctx = std::make_shared<Scope>(globals);
  for (const auto& [k, v] : context.dict().items) ctx->set(k.str(), v);
  auto top = std::make_shared<Scope>(ctx);
  std::string out;
  exec_body(body, top, out);
  return out;
}

// ---- statements --------------------------------------------------------------------------------

Interpreter::Flow Interpreter::exec_body(const Body& body, const ScopePtr& scope, std::string& out) {
  for (const auto& s : body) {
    Flow f = exec(*s, scope, out);
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

Interpreter::Flow Interpreter::exec(const Stmt& s, const ScopePtr& scope, std::string& out) {
  DepthGuard guard(*this);
  try {
    switch (s.kind) {
      case Stmt::Kind::Output:
        append(out, static_cast<const OutputStmt&>(s).text);
        return Flow::Normal;
      case Stmt::Kind::Print:
        append(out, to_str(eval(*static_cast<const PrintStmt&>(s).expr, scope)));
        return Flow::Normal;
      case Stmt::Kind::If: {
        const auto& st = static_cast<const IfStmt&>(s);
        for (const auto& [test, body] : st.branches)
          if (truthy(eval(*test, scope))) return exec_body(body, scope, out);
        return exec_body(st.else_body, scope, out);
      }
      case Stmt::Kind::For: return exec_for(static_cast<const ForStmt&>(s), scope, out);
      case Stmt::Kind::Set: {
        const auto& st = static_cast<const SetStmt&>(s);
        assign(st.target, eval(*st.value, scope), scope);
        return Flow::Normal;
      }
      case Stmt::Kind::SetBlock:
      case Stmt::Kind::FilterBlock: {
        const auto& st = static_cast<const SetBlockStmt&>(s);
        std::string buf;
        Flow f = exec_body(st.body, std::make_shared<Scope>(scope), buf);
        if (f != Flow::Normal) return f;
        Value v = apply_block_filters(st.filters, Value(std::move(buf)), scope);
        if (s.kind == Stmt::Kind::SetBlock) assign(st.target, std::move(v), scope);
        else append(out, to_str(v));
        return Flow::Normal;
      }
      case Stmt::Kind::Macro: {
        const auto& m = static_cast<const MacroStmt&>(s);
        scope->set(m.name, define_macro(m, scope));
        return Flow::Normal;
      }
      case Stmt::Kind::With: {
        const auto& st = static_cast<const WithStmt&>(s);
        std::vector<Value> values;  // evaluated in the outer scope, like Jinja
        for (const auto& a : st.assigns) values.push_back(eval(*a.second, scope));
        auto inner = std::make_shared<Scope>(scope);
        for (size_t i = 0; i < values.size(); ++i) assign(st.assigns[i].first, values[i], inner);
        return exec_body(st.body, inner, out);
      }
      case Stmt::Kind::Break: return Flow::Break;
      case Stmt::Kind::Continue: return Flow::Continue;
      case Stmt::Kind::Block: return exec_body(static_cast<const BlockStmt&>(s).body, scope, out);
    }
  } catch (TemplateError& e) {
    if (e.line() == 0) e.set_line(s.line);
    throw;
  }
  return Flow::Normal;
}

Interpreter::Flow Interpreter::exec_for(const ForStmt& s, const ScopePtr& scope, std::string& out) {
  std::vector<Value> items = iterate(eval(*s.iter, scope));
  if (s.filter) {  // `for x in xs if cond`: filtered before the loop, so loop.length agrees
    std::vector<Value> kept;
    for (auto& item : items) {
      count_iterations(1);
      auto fs = std::make_shared<Scope>(scope);
      assign(s.target, item, fs);
      if (truthy(eval(*s.filter, fs))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) return exec_body(s.else_body, std::make_shared<Scope>(scope), out);
  auto loop = std::make_shared<LoopObj>();
  loop->items = std::make_shared<const std::vector<Value>>(std::move(items));
  loop->last_changed = std::make_shared<Value>();
  const Value loop_value(loop);
  for (size_t i = 0; i < loop->items->size(); ++i) {
    count_iterations(1);
    loop->index0 = static_cast<int64_t>(i);
    // Each iteration is a fresh frame: a `set` in the body is gone in the next iteration.
    auto iter_scope = std::make_shared<Scope>(scope);
    iter_scope->set("loop", loop_value);
    assign(s.target, (*loop->items)[i], iter_scope);
    if (exec_body(s.body, iter_scope, out) == Flow::Break) break;
  }
  return Flow::Normal;
}

void Interpreter::assign(const Target& t, Value v, const ScopePtr& scope) {
  switch (t.kind) {
    case Target::Kind::Name: scope->set(t.name, std::move(v)); return;
    case Target::Kind::Tuple: {
      std::vector<Value> parts = iterate(v);
      if (parts.size() > t.items.size())
        raise("too many values to unpack (expected {})", t.items.size());
      if (parts.size() < t.items.size())
        raise("not enough values to unpack (expected {}, got {})", t.items.size(), parts.size());
      for (size_t i = 0; i < parts.size(); ++i) assign(t.items[i], std::move(parts[i]), scope);
      return;
    }
    case Target::Kind::NsAttr: {
      const Value* ns = scope->lookup(t.name);
      if (!ns || !ns->is_namespace()) raise("cannot assign attribute on non-namespace object");
      check_storable(v, &ns->dict(), 0);
      ns->dict().set(Value(t.attr), std::move(v));
      return;
    }
  }
}

Value Interpreter::apply_block_filters(const std::vector<std::unique_ptr<FilterExpr>>& filters,
                                       Value v, const ScopePtr& scope) {
  for (const auto& f : filters) {
    try {
      v = eval_filter(*f, std::move(v), scope);
    } catch (TemplateError& e) {
      if (e.line() == 0) e.set_line(f->line);
      throw;
    }
  }
  return v;
}

// ---- macros ------------------------------------------------------------------------------------

Value Interpreter::define_macro(const MacroStmt& m, const ScopePtr& scope) {
  // The macro lives in `scope`, so it holds its closure weakly (a strong reference would be a
  // cycle). A macro smuggled out of its frame cannot be called after the frame ends.
  std::weak_ptr<Scope> closure = scope;
  const MacroStmt* mp = &m;
  return Value::make_function("macro '" + m.name + "'", [mp, closure](Interpreter& in, CallArgs& a) {
    ScopePtr c = closure.lock();
    if (!c) raise("macro '{}' called after the scope that defined it ended", mp->name);
    return in.call_macro(*mp, c, a);
  });
}

Value Interpreter::call_macro(const MacroStmt& m, const ScopePtr& closure, CallArgs& args) {
  auto scope = std::make_shared<Scope>(closure);
  const size_t np = m.params.size();
  if (args.pos.size() > np && !m.uses_varargs)
    raise("macro '{}' takes not more than {} argument(s)", m.name, np);
  std::vector<bool> bound(np, false);
  for (size_t i = 0; i < args.pos.size() && i < np; ++i) {
    scope->set(m.params[i].first, args.pos[i]);
    bound[i] = true;
  }
  Value kwargs = Value::make_dict();
  for (auto& [key, v] : args.kw) {
    size_t i = 0;
    while (i < np && m.params[i].first != key) ++i;
    if (i < np) {
      if (bound[i]) raise("macro '{}' got multiple values for argument '{}'", m.name, key);
      scope->set(key, v);
      bound[i] = true;
    } else if (m.uses_kwargs) {
      kwargs.dict().set(Value(key), v);
    } else {
      raise("macro '{}' takes no keyword argument '{}'", m.name, key);
    }
  }
  for (size_t i = 0; i < np; ++i) {
    if (bound[i]) continue;
    const auto& [name, def] = m.params[i];
    // Defaults are evaluated in the macro's frame, so they can refer to earlier parameters.
    scope->set(name, def ? eval(*def, scope)
                         : Value::undefined(fmt::format("parameter '{}' was not provided", name)));
  }
  if (m.uses_varargs) {
    std::vector<Value> extra;
    for (size_t i = np; i < args.pos.size(); ++i) extra.push_back(args.pos[i]);
    scope->set("varargs", Value::make_tuple(std::move(extra)));
  }
  if (m.uses_kwargs) scope->set("kwargs", kwargs);
  std::string out;
  exec_body(m.body, scope, out);
  return Value(std::move(out));
}

// ---- calls, filters, tests -----------------------------------------------------------------------

Value Interpreter::call(const Value& callee, CallArgs& args) {
  if (callee.is_function()) return callee.function().call(*this, args);
  require_defined(callee);
  raise("'{}' object is not callable", type_name(callee));
}

Value Interpreter::apply_filter(const std::string& name, const Value& v, CallArgs& args) {
  FilterFn fn = find_filter(name);
  if (!fn) {
    if (jinja_has_filter(name)) raise("filter '{}' is not supported", name);
    raise("unknown filter '{}'", name);
  }
  return fn(*this, v, args);
}

bool Interpreter::apply_test(const std::string& name, const Value& v, CallArgs& args) {
  TestFn fn = find_test(name);
  if (!fn) {
    if (jinja_has_test(name)) raise("test '{}' is not supported", name);
    raise("unknown test '{}'", name);
  }
  return fn(*this, v, args);
}

CallArgs Interpreter::eval_args(const ArgExprs& a, const ScopePtr& scope) {
  CallArgs out;
  for (const auto& e : a.pos) out.pos.push_back(eval(*e, scope));
  for (const auto& [k, e] : a.kw) out.kw.emplace_back(k, eval(*e, scope));
  return out;
}

Value Interpreter::eval_filter(const FilterExpr& f, Value operand, const ScopePtr& scope) {
  CallArgs args = eval_args(f.args, scope);
  return apply_filter(f.name, operand, args);
}

// ---- expressions -------------------------------------------------------------------------------

Value Interpreter::eval(const Expr& e, const ScopePtr& scope) {
  DepthGuard guard(*this);
  try {
    return eval_inner(e, scope);
  } catch (TemplateError& err) {
    if (err.line() == 0) err.set_line(e.line);
    throw;
  }
}

bool Interpreter::eval_compare(const CompareExpr& c, const ScopePtr& scope) {
  Value left = eval(*c.first, scope);
  for (const auto& [op, expr] : c.ops) {
    Value right = eval(*expr, scope);
    bool r;
    if (op == "==") r = equals(left, right);
    else if (op == "!=") r = !equals(left, right);
    else if (op == "in") r = contains(right, left);
    else if (op == "notin") r = !contains(right, left);
    else r = compare(left, right, op);
    if (!r) return false;
    left = std::move(right);
  }
  return true;
}

Value Interpreter::eval_inner(const Expr& e, const ScopePtr& scope) {
  switch (e.kind) {
    case Expr::Kind::Const: return static_cast<const ConstExpr&>(e).value;
    case Expr::Kind::Name: {
      const auto& n = static_cast<const NameExpr&>(e);
      if (const Value* v = scope->lookup(n.name)) return *v;
      return Value::undefined(fmt::format("'{}' is undefined", n.name));
    }
    case Expr::Kind::Getattr: {
      const auto& g = static_cast<const GetattrExpr&>(e);
      return getattr_value(eval(*g.obj, scope), g.attr);
    }
    case Expr::Kind::Getitem: {
      const auto& g = static_cast<const GetitemExpr&>(e);
      Value obj = eval(*g.obj, scope);
      if (g.index->kind == Expr::Kind::Slice) {
        const auto& sl = static_cast<const SliceExpr&>(*g.index);
        auto part = [&](const ExprPtr& p) { return p ? eval(*p, scope) : Value(None{}); };
        Value start = part(sl.start), stop = part(sl.stop), step = part(sl.step);
        return slice_value(obj, start, stop, step);
      }
      return getitem_value(obj, eval(*g.index, scope));
    }
    case Expr::Kind::Slice: raise("slice outside of a subscript");
    case Expr::Kind::Call: {
      const auto& c = static_cast<const CallExpr&>(e);
      Value callee = eval(*c.callee, scope);
      CallArgs args = eval_args(c.args, scope);
      return call(callee, args);
    }
    case Expr::Kind::Filter: {
      const auto& f = static_cast<const FilterExpr&>(e);
      return eval_filter(f, eval(*f.operand, scope), scope);
    }
    case Expr::Kind::Test: {
      const auto& f = static_cast<const FilterExpr&>(e);
      Value operand = eval(*f.operand, scope);
      CallArgs args = eval_args(f.args, scope);
      return Value(apply_test(f.name, operand, args));
    }
    case Expr::Kind::Not:
      return Value(!truthy(eval(*static_cast<const UnaryExpr&>(e).operand, scope)));
    case Expr::Kind::Neg: return unary_minus(eval(*static_cast<const UnaryExpr&>(e).operand, scope));
    case Expr::Kind::Pos: return unary_plus(eval(*static_cast<const UnaryExpr&>(e).operand, scope));
    case Expr::Kind::Binary: {
      const auto& b = static_cast<const BinaryExpr&>(e);
      Value l = eval(*b.left, scope);
      return binary_op(b.op, l, eval(*b.right, scope));
    }
    case Expr::Kind::And:
    case Expr::Kind::Or: {  // Python: returns an operand, not a bool
      const auto& b = static_cast<const BinaryExpr&>(e);
      Value l = eval(*b.left, scope);
      if (truthy(l) == (e.kind == Expr::Kind::Or)) return l;
      return eval(*b.right, scope);
    }
    case Expr::Kind::Concat: {
      std::string s;
      for (const auto& p : static_cast<const ConcatExpr&>(e).parts) {
        s += to_str(eval(*p, scope));
        check_string_size(s.size());
      }
      return Value(std::move(s));
    }
    case Expr::Kind::Compare: return Value(eval_compare(static_cast<const CompareExpr&>(e), scope));
    case Expr::Kind::Cond: {
      const auto& c = static_cast<const CondExpr&>(e);
      if (truthy(eval(*c.test, scope))) return eval(*c.then, scope);
      if (c.otherwise) return eval(*c.otherwise, scope);
      return Value::undefined(fmt::format(
          "the inline if-expression on line {} evaluated to false and no else section was defined.",
          e.line));
    }
    case Expr::Kind::List:
    case Expr::Kind::Tuple: {
      std::vector<Value> items;
      for (const auto& x : static_cast<const SeqExpr&>(e).items) items.push_back(eval(*x, scope));
      return Value::make_list(std::move(items), e.kind == Expr::Kind::Tuple ? ListObj::Kind::Tuple
                                                                            : ListObj::Kind::List);
    }
    case Expr::Kind::Dict: {
      Value d = Value::make_dict();
      for (const auto& [k, v] : static_cast<const DictExpr&>(e).items) {
        Value key = eval(*k, scope);
        if (!is_hashable(key)) raise("unhashable type: '{}'", type_name(key));
        d.dict().set(std::move(key), eval(*v, scope));
      }
      return d;
    }
  }
  raise("unknown expression");
}

}  // namespace whale::jinja
