// Parser: tokens -> Body. Grammar and precedence follow jinja2/parser.py (3.1):
//   condexpr := or ("if" or ("else" condexpr)?)*
//   or > and > not > compare (== != < <= > >= in, not in) > + - > ~ > * / // % > ** >
//   unary (- +) > primary with postfix (.attr [idx] (call)) and filters (| f, is t)
#include "text/jinja/parser.h"

#include <algorithm>
#include <initializer_list>

#include "text/jinja/builtins.h"
#include "text/jinja/lexer.h"

namespace whale::jinja {
namespace {

class Parser {
 public:
  Parser(std::vector<Token> tokens, const ParseLimits& limits)
      : toks_(std::move(tokens)), limits_(limits) {}

  Body parse_template() {
    Body body = parse_body({}, "", 0);
    // Unknown filters/tests are compile errors in Jinja unless they sit inside an if-branch or
    // an inline if (those fail only when evaluated); report the first such one.
    for (const auto& u : unknown_)
      if (!u.soft)
        throw TemplateError(fmt::format("unknown {} '{}'", u.is_filter ? "filter" : "test", u.name),
                            u.line);
    return body;
  }

 private:
  std::vector<Token> toks_;
  size_t pos_ = 0;
  ParseLimits limits_;
  int depth_ = 0;
  int loop_depth_ = 0;
  bool soft_ = false;  // inside an if statement or inline if (see parse_template)
  std::vector<MacroStmt*> macros_;
  struct Unknown {
    std::string name;
    int line;
    bool is_filter, soft;
  };
  std::vector<Unknown> unknown_;

  // ---- token helpers -------------------------------------------------------------------------

  const Token& cur() const { return toks_[pos_]; }
  const Token& peek(size_t n = 1) const { return toks_[std::min(pos_ + n, toks_.size() - 1)]; }
  const Token& next() {
    const Token& t = toks_[pos_];
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }
  bool is_op(std::string_view op) const { return cur().type == Tok::Op && cur().text == op; }
  bool is_name(std::string_view n) const { return cur().type == Tok::Name && cur().text == n; }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(std::string_view n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }

  [[noreturn]] void fail(const std::string& msg, int line = 0) const {
    throw TemplateError(msg, line ? line : cur().line);
  }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::Data: return "template text";
      case Tok::VarBegin: return "'{{'";
      case Tok::VarEnd: return "end of print statement '}}'";
      case Tok::BlockBegin: return "'{%'";
      case Tok::BlockEnd: return "end of statement block '%}'";
      case Tok::Name: return "'" + t.text + "'";
      case Tok::String: return "string literal";
      case Tok::Int:
      case Tok::Float: return "number " + t.text;
      case Tok::Op: return "'" + t.text + "'";
      case Tok::Eof: return "end of template";
    }
    return "token";
  }

  void expect_op(std::string_view op) {
    if (!skip_op(op)) fail(fmt::format("expected '{}', got {}", op, describe(cur())));
  }
  std::string expect_name() {
    if (cur().type != Tok::Name) fail("expected a name, got " + describe(cur()));
    return next().text;
  }
  void expect(Tok type, const char* what) {
    if (cur().type != type) fail(fmt::format("expected {}, got {}", what, describe(cur())));
    next();
  }
  void expect_block_end() { expect(Tok::BlockEnd, "end of statement block '%}'"); }

  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) {
      if (++p.depth_ > p.limits_.max_depth)
        p.fail(fmt::format("template nested more than {} levels deep", p.limits_.max_depth));
    }
    ~DepthGuard() { --p.depth_; }
  };

  // Sets a node's subtree height from its children and bounds it: chains like a+b+c+... are
  // built iteratively, so the recursion guard alone would not see them (and evaluating or
  // destroying a very deep tree would exhaust the stack).
  void set_depth(Expr* node, std::initializer_list<const Expr*> kids, int extra = 0) {
    int d = extra;
    for (const Expr* k : kids)
      if (k) d = std::max(d, k->depth);
    node->depth = d + 1;
    if (node->depth > 2 * limits_.max_depth)
      fail(fmt::format("expression nested more than {} levels deep", 2 * limits_.max_depth),
           node->line);
  }
  int args_depth(const ArgExprs& a) const {
    int d = 0;
    for (const auto& e : a.pos) d = std::max(d, e->depth);
    for (const auto& kv : a.kw) d = std::max(d, kv.second->depth);
    return d;
  }

  // ---- statements ----------------------------------------------------------------------------

  // Parses until `{% <one of ends> ...`; returns with the end tag's name as the current token.
  // `block`/`open_line` name the enclosing block for error messages.
  Body parse_body(std::initializer_list<std::string_view> ends, std::string_view block,
                  int open_line) {
    Body body;
    while (true) {
      const Token& t = cur();
      switch (t.type) {
        case Tok::Eof:
          if (ends.size() == 0) return body;
          fail(fmt::format("unclosed '{}' block (opened on line {}): reached the end of the "
                           "template looking for '{{% {} %}}'",
                           block, open_line, *ends.begin()));
        case Tok::Data:
          body.push_back(std::make_unique<OutputStmt>(t.text, t.line));
          next();
          break;
        case Tok::VarBegin: {
          next();
          auto s = std::make_unique<PrintStmt>(t.line);
          s->expr = parse_tuple(true, false, {});
          expect(Tok::VarEnd, "end of print statement '}}'");
          body.push_back(std::move(s));
          break;
        }
        case Tok::BlockBegin: {
          next();
          if (cur().type != Tok::Name) fail("expected a tag name, got " + describe(cur()));
          const std::string& tag = cur().text;
          for (auto e : ends)
            if (tag == e) return body;
          body.push_back(parse_statement(ends, block, open_line));
          break;
        }
        default: fail("unexpected " + describe(t));
      }
    }
  }

  StmtPtr parse_statement(std::initializer_list<std::string_view> ends, std::string_view block,
                          int open_line) {
    DepthGuard guard(*this);
    const Token& t = cur();
    const std::string tag = t.text;
    int line = t.line;
    if (tag == "if") return parse_if();
    if (tag == "for") return parse_for();
    if (tag == "set") return parse_set();
    if (tag == "macro") return parse_macro();
    if (tag == "filter") return parse_filter_block();
    if (tag == "with") return parse_with();
    if (tag == "generation") {  // HF's AssistantTracker extension: renders its body as is
      next();
      expect_block_end();
      auto s = std::make_unique<BlockStmt>(line);
      s->body = parse_body({"endgeneration"}, "generation", line);
      next();
      expect_block_end();
      return s;
    }
    if (tag == "print") {
      next();
      auto s = std::make_unique<PrintStmt>(line);
      s->expr = parse_tuple(true, false, {});
      expect_block_end();
      return s;
    }
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail(fmt::format("'{}' outside of a loop", tag));
      next();
      expect_block_end();
      return std::make_unique<SimpleStmt>(tag == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue,
                                          line);
    }
    static constexpr std::string_view kUnsupported[] = {
        "extends", "include", "import", "from", "block", "call", "autoescape"};
    for (auto u : kUnsupported)
      if (tag == u) fail(fmt::format("the '{}' tag is not supported", tag));
    if (tag.rfind("end", 0) == 0 || tag == "else" || tag == "elif") {
      if (ends.size() == 0) fail(fmt::format("unexpected '{}': no block is open", tag));
      fail(fmt::format("unexpected '{}' inside the '{}' block opened on line {} (expected '{}')",
                       tag, block, open_line, *ends.begin()));
    }
    fail(fmt::format("unknown tag '{}'", tag));
  }

  StmtPtr parse_if() {
    int line = next().line;  // 'if'
    auto s = std::make_unique<IfStmt>(line);
    bool saved = soft_;
    soft_ = true;
    while (true) {
      ExprPtr test = parse_tuple(false, false, {});
      expect_block_end();
      Body body = parse_body({"elif", "else", "endif"}, "if", line);
      s->branches.emplace_back(std::move(test), std::move(body));
      std::string tag = next().text;
      if (tag == "elif") continue;
      if (tag == "else") {
        expect_block_end();
        s->else_body = parse_body({"endif"}, "if", line);
        next();
      }
      break;
    }
    expect_block_end();
    soft_ = saved;
    return s;
  }

  StmtPtr parse_for() {
    int line = next().line;  // 'for'
    auto s = std::make_unique<ForStmt>(line);
    s->target = parse_target(false, "in");
    if (!skip_name("in")) fail("expected 'in' in for loop, got " + describe(cur()));
    s->iter = parse_tuple(false, false, {"recursive"});
    bool saved = soft_;
    soft_ = false;  // the loop body is a new frame in Jinja's compiler
    if (skip_name("if")) s->filter = parse_expression(true);
    if (is_name("recursive")) fail("recursive for loops are not supported");
    expect_block_end();
    ++loop_depth_;
    s->body = parse_body({"endfor", "else"}, "for", line);
    --loop_depth_;
    if (next().text == "else") {
      expect_block_end();
      s->else_body = parse_body({"endfor"}, "for", line);
      next();
    }
    expect_block_end();
    soft_ = saved;
    return s;
  }

  StmtPtr parse_set() {
    int line = next().line;  // 'set'
    Target target = parse_target(true, "");
    if (skip_op("=")) {
      auto s = std::make_unique<SetStmt>(line);
      s->target = std::move(target);
      s->value = parse_tuple(true, false, {});
      expect_block_end();
      return s;
    }
    auto s = std::make_unique<SetBlockStmt>(Stmt::Kind::SetBlock, line);
    s->target = std::move(target);
    parse_block_filters(s->filters);
    expect_block_end();
    bool saved = soft_;
    soft_ = false;
    s->body = parse_body({"endset"}, "set", line);
    soft_ = saved;
    next();
    expect_block_end();
    return s;
  }

  StmtPtr parse_filter_block() {
    int line = cur().line;  // 'filter'; the filter chain starts right after it
    auto s = std::make_unique<SetBlockStmt>(Stmt::Kind::FilterBlock, line);
    // `{% filter upper | trim %}`: the tag name plays the role of the first '|'.
    s->filters.push_back(parse_filter_call(nullptr));
    parse_block_filters(s->filters);
    expect_block_end();
    bool saved = soft_;
    soft_ = false;
    s->body = parse_body({"endfilter"}, "filter", line);
    soft_ = saved;
    next();
    expect_block_end();
    return s;
  }

  void parse_block_filters(std::vector<std::unique_ptr<FilterExpr>>& out) {
    while (is_op("|")) out.push_back(parse_filter_call(nullptr));
  }

  StmtPtr parse_macro() {
    int line = next().line;  // 'macro'
    auto s = std::make_unique<MacroStmt>(line);
    s->name = expect_name();
    expect_op("(");
    while (!is_op(")")) {
      if (!s->params.empty()) expect_op(",");
      if (is_op(")")) break;
      std::string name = expect_name();
      ExprPtr def;
      if (skip_op("=")) def = parse_expression(true);
      else if (!s->params.empty() && s->params.back().second)
        fail("non-default macro argument follows default argument");
      s->params.emplace_back(std::move(name), std::move(def));
    }
    expect_op(")");
    expect_block_end();
    bool saved_soft = soft_;
    int saved_loops = loop_depth_;
    soft_ = false;
    loop_depth_ = 0;
    macros_.push_back(s.get());
    s->body = parse_body({"endmacro"}, "macro", line);
    macros_.pop_back();
    soft_ = saved_soft;
    loop_depth_ = saved_loops;
    next();
    expect_block_end();
    return s;
  }

  StmtPtr parse_with() {
    int line = next().line;  // 'with'
    auto s = std::make_unique<WithStmt>(line);
    while (cur().type != Tok::BlockEnd) {
      if (!s->assigns.empty()) expect_op(",");
      Target t = parse_target(false, "");
      expect_op("=");
      s->assigns.emplace_back(std::move(t), parse_expression(true));
    }
    expect_block_end();
    bool saved = soft_;
    soft_ = false;
    s->body = parse_body({"endwith"}, "with", line);
    soft_ = saved;
    next();
    expect_block_end();
    return s;
  }

  // Assignment target: name, tuple of names (parenthesised or not), or ns.attr for `set`.
  Target parse_target(bool with_namespace, std::string_view end_name) {
    Target t;
    t.line = cur().line;
    if (with_namespace && cur().type == Tok::Name && peek().type == Tok::Op && peek().text == ".") {
      t.kind = Target::Kind::NsAttr;
      t.name = next().text;
      next();  // '.'
      t.attr = expect_name();
      return t;
    }
    std::vector<Target> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (cur().type == Tok::BlockEnd || is_op("=") || is_op(")") ||
          (!end_name.empty() && is_name(end_name)))
        break;
      items.push_back(parse_target_atom());
      if (is_op(",")) is_tuple = true;
      else break;
    }
    if (items.empty()) fail("expected an assignment target, got " + describe(cur()));
    if (!is_tuple) return std::move(items[0]);
    t.kind = Target::Kind::Tuple;
    t.items = std::move(items);
    return t;
  }

  Target parse_target_atom() {
    DepthGuard guard(*this);
    Target t;
    t.line = cur().line;
    if (skip_op("(")) {
      Target inner = parse_target(false, "");
      expect_op(")");
      return inner;
    }
    if (cur().type != Tok::Name) fail("can't assign to " + describe(cur()));
    static constexpr std::string_view kConsts[] = {"true", "false", "True", "False", "none", "None"};
    for (auto c : kConsts)
      if (cur().text == c) fail("can't assign to constant '" + cur().text + "'");
    t.name = next().text;
    return t;
  }

  // ---- expressions ---------------------------------------------------------------------------

  static bool tuple_end(const Token& t, std::initializer_list<std::string_view> extra) {
    if (t.type == Tok::VarEnd || t.type == Tok::BlockEnd) return true;
    if (t.type == Tok::Op && t.text == ")") return true;
    if (t.type == Tok::Name)
      for (auto e : extra)
        if (t.text == e) return true;
    return false;
  }

  // Comma-separated expressions; more than one (or a trailing comma) makes a tuple.
  ExprPtr parse_tuple(bool with_condexpr, bool explicit_parens,
                      std::initializer_list<std::string_view> extra_end) {
    int line = cur().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (tuple_end(cur(), extra_end)) break;
      items.push_back(parse_expression(with_condexpr));
      if (is_op(",")) is_tuple = true;
      else break;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) fail("expected an expression, got " + describe(cur()));
    }
    auto t = std::make_unique<SeqExpr>(Expr::Kind::Tuple, line);
    int d = 0;
    for (auto& e : items) d = std::max(d, e->depth);
    t->items = std::move(items);
    t->depth = d + 1;
    return t;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    DepthGuard guard(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    size_t unknown_mark = unknown_.size();
    ExprPtr expr = parse_or();
    while (is_name("if")) {
      int line = next().line;
      bool saved = soft_;
      soft_ = true;
      // The whole inline if is a soft frame in Jinja, including the part before 'if'.
      for (size_t i = unknown_mark; i < unknown_.size(); ++i) unknown_[i].soft = true;
      auto c = std::make_unique<CondExpr>(line);
      c->then = std::move(expr);
      c->test = parse_or();
      if (skip_name("else")) c->otherwise = parse_condexpr();
      soft_ = saved;
      set_depth(c.get(), {c->then.get(), c->test.get(), c->otherwise.get()});
      expr = std::move(c);
    }
    return expr;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      auto b = std::make_unique<BinaryExpr>(Expr::Kind::Or, next().line);
      b->left = std::move(left);
      b->right = parse_and();
      set_depth(b.get(), {b->left.get(), b->right.get()});
      left = std::move(b);
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      auto b = std::make_unique<BinaryExpr>(Expr::Kind::And, next().line);
      b->left = std::move(left);
      b->right = parse_not();
      set_depth(b.get(), {b->left.get(), b->right.get()});
      left = std::move(b);
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(*this);
      auto u = std::make_unique<UnaryExpr>(Expr::Kind::Not, next().line);
      u->operand = parse_not();
      set_depth(u.get(), {u->operand.get()});
      return u;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    int line = cur().line;
    ExprPtr first = parse_math1();
    std::unique_ptr<CompareExpr> cmp;
    while (true) {
      std::string op;
      if (cur().type == Tok::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                    cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
        op = next().text;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && peek().type == Tok::Name && peek().text == "in") {
        next(), next();
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = std::make_unique<CompareExpr>(line);
        cmp->first = std::move(first);
      }
      cmp->ops.emplace_back(op, parse_math1());
    }
    if (!cmp) return first;
    int d = cmp->first->depth;
    for (auto& [op, e] : cmp->ops) d = std::max(d, e->depth);
    cmp->depth = d + 1;
    return cmp;
  }

  ExprPtr binary(ExprPtr left, BinOp op, int line, ExprPtr (Parser::*rhs)()) {
    auto b = std::make_unique<BinaryExpr>(Expr::Kind::Binary, line);
    b->op = op;
    b->left = std::move(left);
    b->right = (this->*rhs)();
    set_depth(b.get(), {b->left.get(), b->right.get()});
    return b;
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& t = next();
      left = binary(std::move(left), t.text == "+" ? BinOp::Add : BinOp::Sub, t.line,
                    &Parser::parse_concat);
    }
    return left;
  }

  ExprPtr parse_concat() {
    int line = cur().line;
    ExprPtr first = parse_math2();
    if (!is_op("~")) return first;
    auto c = std::make_unique<ConcatExpr>(line);
    int d = first->depth;
    c->parts.push_back(std::move(first));
    while (skip_op("~")) {
      c->parts.push_back(parse_math2());
      d = std::max(d, c->parts.back()->depth);
    }
    c->depth = d + 1;
    return c;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& t = next();
      BinOp op = t.text == "*"   ? BinOp::Mul
                 : t.text == "/" ? BinOp::Div
                 : t.text == "//" ? BinOp::FloorDiv
                                  : BinOp::Mod;
      left = binary(std::move(left), op, t.line, &Parser::parse_pow);
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary_filtered();
    while (is_op("**")) {
      int line = next().line;
      left = binary(std::move(left), BinOp::Pow, line, &Parser::parse_unary_filtered);
    }
    return left;
  }

  ExprPtr parse_unary_filtered() { return parse_unary(true); }

  ExprPtr parse_unary(bool with_filter) {
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      DepthGuard guard(*this);
      const Token& t = next();
      auto u = std::make_unique<UnaryExpr>(t.text == "-" ? Expr::Kind::Neg : Expr::Kind::Pos, t.line);
      u->operand = parse_unary(false);
      set_depth(u.get(), {u->operand.get()});
      node = std::move(u);
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    switch (t.type) {
      case Tok::Name: {
        next();
        if (t.text == "true" || t.text == "True") return std::make_unique<ConstExpr>(Value(true), t.line);
        if (t.text == "false" || t.text == "False") return std::make_unique<ConstExpr>(Value(false), t.line);
        if (t.text == "none" || t.text == "None") return std::make_unique<ConstExpr>(Value(None{}), t.line);
        if (!macros_.empty()) {
          if (t.text == "varargs") macros_.back()->uses_varargs = true;
          if (t.text == "kwargs") macros_.back()->uses_kwargs = true;
        }
        return std::make_unique<NameExpr>(t.text, t.line);
      }
      case Tok::String: {
        // Adjacent string literals concatenate, as in Python.
        std::string s;
        int line = t.line;
        while (cur().type == Tok::String) s += next().text;
        return std::make_unique<ConstExpr>(Value(std::move(s)), line);
      }
      case Tok::Int: next(); return std::make_unique<ConstExpr>(Value(t.ival), t.line);
      case Tok::Float: next(); return std::make_unique<ConstExpr>(Value(t.fval), t.line);
      case Tok::Op:
        if (t.text == "(") {
          DepthGuard guard(*this);
          next();
          ExprPtr e = parse_tuple(true, true, {});
          expect_op(")");
          return e;
        }
        if (t.text == "[") return parse_list();
        if (t.text == "{") return parse_dict();
        break;
      default: break;
    }
    fail("unexpected " + describe(t));
  }

  ExprPtr parse_list() {
    DepthGuard guard(*this);
    auto l = std::make_unique<SeqExpr>(Expr::Kind::List, next().line);
    int d = 0;
    while (!is_op("]")) {
      if (!l->items.empty()) expect_op(",");
      if (is_op("]")) break;
      l->items.push_back(parse_expression(true));
      d = std::max(d, l->items.back()->depth);
    }
    expect_op("]");
    l->depth = d + 1;
    return l;
  }

  ExprPtr parse_dict() {
    DepthGuard guard(*this);
    auto m = std::make_unique<DictExpr>(next().line);
    int d = 0;
    while (!is_op("}")) {
      if (!m->items.empty()) expect_op(",");
      if (is_op("}")) break;
      ExprPtr k = parse_expression(true);
      expect_op(":");
      ExprPtr v = parse_expression(true);
      d = std::max({d, k->depth, v->depth});
      m->items.emplace_back(std::move(k), std::move(v));
    }
    expect_op("}");
    m->depth = d + 1;
    return m;
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        node = parse_filter_call(std::move(node));
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const Token& t = next();
    if (t.text == ".") {
      const Token& a = next();
      if (a.type == Tok::Name) {
        auto g = std::make_unique<GetattrExpr>(t.line);
        g->obj = std::move(node);
        g->attr = a.text;
        set_depth(g.get(), {g->obj.get()});
        return g;
      }
      if (a.type != Tok::Int) fail("expected a name or number after '.', got " + describe(a));
      auto g = std::make_unique<GetitemExpr>(t.line);
      g->obj = std::move(node);
      g->index = std::make_unique<ConstExpr>(Value(a.ival), a.line);
      set_depth(g.get(), {g->obj.get()});
      return g;
    }
    // '[': one subscript, or several making a tuple key.
    DepthGuard guard(*this);
    std::vector<ExprPtr> args;
    while (!is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    auto g = std::make_unique<GetitemExpr>(t.line);
    g->obj = std::move(node);
    if (args.size() == 1) {
      g->index = std::move(args[0]);
    } else {
      auto tup = std::make_unique<SeqExpr>(Expr::Kind::Tuple, t.line);
      for (auto& a : args) tup->depth = std::max(tup->depth, a->depth + 1);
      tup->items = std::move(args);
      g->index = std::move(tup);
    }
    set_depth(g.get(), {g->obj.get(), g->index.get()});
    return g;
  }

  ExprPtr parse_subscribed() {
    int line = cur().line;
    ExprPtr start;
    if (!is_op(":")) {
      start = parse_expression(true);
      if (!is_op(":")) return start;
    }
    next();  // ':'
    auto s = std::make_unique<SliceExpr>(line);
    s->start = std::move(start);
    if (!is_op("]") && !is_op(",") && !is_op(":")) s->stop = parse_expression(true);
    if (skip_op(":") && !is_op("]") && !is_op(",")) s->step = parse_expression(true);
    set_depth(s.get(), {s->start.get(), s->stop.get(), s->step.get()});
    return s;
  }

  ArgExprs parse_call_args() {
    DepthGuard guard(*this);
    expect_op("(");
    ArgExprs a;
    while (!is_op(")")) {
      if (!a.pos.empty() || !a.kw.empty()) {
        expect_op(",");
        if (is_op(")")) break;  // trailing comma
      }
      if (is_op("*") || is_op("**")) fail("*args / **kwargs in calls are not supported");
      if (cur().type == Tok::Name && peek().type == Tok::Op && peek().text == "=") {
        std::string key = next().text;
        next();  // '='
        for (const auto& kv : a.kw)
          if (kv.first == key) fail("keyword argument repeated: " + key);
        a.kw.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!a.kw.empty()) fail("positional argument follows keyword argument");
        a.pos.push_back(parse_expression(true));
      }
    }
    expect_op(")");
    return a;
  }

  ExprPtr parse_call(ExprPtr node) {
    auto c = std::make_unique<CallExpr>(cur().line);
    c->callee = std::move(node);
    c->args = parse_call_args();
    set_depth(c.get(), {c->callee.get()}, args_depth(c->args));
    return c;
  }

  // `| name(.name)* (args)?` — or, for block filters, the same after the tag name.
  std::unique_ptr<FilterExpr> parse_filter_call(ExprPtr operand) {
    int line = next().line;  // '|' or 'filter'
    auto f = std::make_unique<FilterExpr>(Expr::Kind::Filter, line);
    f->operand = std::move(operand);
    f->name = expect_name();
    while (skip_op(".")) f->name += "." + expect_name();
    if (is_op("(")) f->args = parse_call_args();
    note_unknown(f->name, f->line, true);
    set_depth(f.get(), {f->operand.get()}, args_depth(f->args));
    return f;
  }

  ExprPtr parse_test(ExprPtr operand) {
    int line = next().line;  // 'is'
    bool negated = skip_name("not");
    auto f = std::make_unique<FilterExpr>(Expr::Kind::Test, line);
    f->operand = std::move(operand);
    f->name = expect_name();
    while (skip_op(".")) f->name += "." + expect_name();
    if (is_op("(")) {
      f->args = parse_call_args();
    } else if ((cur().type == Tok::Name || cur().type == Tok::String || cur().type == Tok::Int ||
                cur().type == Tok::Float || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      // `x is divisibleby 3`: a single argument without parentheses.
      if (is_name("is")) fail("you cannot chain multiple tests with 'is'");
      f->args.pos.push_back(parse_postfix(parse_primary()));
    }
    note_unknown(f->name, f->line, false);
    set_depth(f.get(), {f->operand.get()}, args_depth(f->args));
    if (!negated) return f;
    auto n = std::make_unique<UnaryExpr>(Expr::Kind::Not, line);
    n->operand = std::move(f);
    set_depth(n.get(), {n->operand.get()});
    return n;
  }

  void note_unknown(const std::string& name, int line, bool is_filter) {
    bool known = is_filter ? jinja_has_filter(name) : jinja_has_test(name);
    if (!known) unknown_.push_back({name, line, is_filter, soft_});
  }
};

}  // namespace

Body parse(std::string_view source, const ParseLimits& limits) {
  return Parser(tokenize(source), limits).parse_template();
}

}  // namespace whale::jinja
