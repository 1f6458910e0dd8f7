// Syntax tree of a parsed template: expressions and statements, each with its source line.
// Nodes mirror Jinja2's (jinja2/nodes.py) closely enough that evaluation rules carry over.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "text/jinja/value.h"

namespace whale::jinja {

// ---- expressions -----------------------------------------------------------------------------

struct Expr {
  enum class Kind : uint8_t {
    Const, Name, Getattr, Getitem, Slice, Call, Filter, Test, Not, Neg, Pos, Binary, And, Or,
    Concat, Compare, Cond, List, Tuple, Dict,
  };
  Expr(Kind k, int l) : kind(k), line(l) {}
  virtual ~Expr() = default;
  Kind kind;
  int line;
  int depth = 1;  // height of the subtree; bounded by the parser to keep recursion shallow
};
using ExprPtr = std::unique_ptr<Expr>;

struct ConstExpr : Expr {
  ConstExpr(Value v, int l) : Expr(Kind::Const, l), value(std::move(v)) {}
  Value value;
};

struct NameExpr : Expr {
  NameExpr(std::string n, int l) : Expr(Kind::Name, l), name(std::move(n)) {}
  std::string name;
};

struct GetattrExpr : Expr {  // obj.attr
  GetattrExpr(int l) : Expr(Kind::Getattr, l) {}
  ExprPtr obj;
  std::string attr;
};

struct GetitemExpr : Expr {  // obj[index]; index may be a SliceExpr
  GetitemExpr(int l) : Expr(Kind::Getitem, l) {}
  ExprPtr obj, index;
};

struct SliceExpr : Expr {  // start:stop:step, each optional
  SliceExpr(int l) : Expr(Kind::Slice, l) {}
  ExprPtr start, stop, step;
};

struct ArgExprs {
  std::vector<ExprPtr> pos;
  std::vector<std::pair<std::string, ExprPtr>> kw;
};

struct CallExpr : Expr {
  CallExpr(int l) : Expr(Kind::Call, l) {}
  ExprPtr callee;
  ArgExprs args;
};

// `operand | name(args)` and `operand is name args`. A filter's operand is null inside
// `{% filter %}` blocks and `{% set x | f %}`, where the block's text is the input.
struct FilterExpr : Expr {
  FilterExpr(Kind k, int l) : Expr(k, l) {}
  ExprPtr operand;
  std::string name;
  ArgExprs args;
};

struct UnaryExpr : Expr {  // not / - / +
  UnaryExpr(Kind k, int l) : Expr(k, l) {}
  ExprPtr operand;
};

enum class BinOp : uint8_t { Add, Sub, Mul, Div, FloorDiv, Mod, Pow };

struct BinaryExpr : Expr {  // arithmetic (Kind::Binary) and short-circuit and/or
  BinaryExpr(Kind k, int l) : Expr(k, l) {}
  BinOp op = BinOp::Add;
  ExprPtr left, right;
};

struct ConcatExpr : Expr {  // a ~ b ~ c
  ConcatExpr(int l) : Expr(Kind::Concat, l) {}
  std::vector<ExprPtr> parts;
};

struct CompareExpr : Expr {  // a < b <= c ... ; ops: == != < <= > >= in notin
  CompareExpr(int l) : Expr(Kind::Compare, l) {}
  ExprPtr first;
  std::vector<std::pair<std::string, ExprPtr>> ops;
};

struct CondExpr : Expr {  // then if test else otherwise (otherwise optional)
  CondExpr(int l) : Expr(Kind::Cond, l) {}
  ExprPtr test, then, otherwise;
};

struct SeqExpr : Expr {  // [a, b] or (a, b)
  SeqExpr(Kind k, int l) : Expr(k, l) {}
  std::vector<ExprPtr> items;
};

struct DictExpr : Expr {
  DictExpr(int l) : Expr(Kind::Dict, l) {}
  std::vector<std::pair<ExprPtr, ExprPtr>> items;
};

// ---- statements ------------------------------------------------------------------------------

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

// Left side of set / for / with: a name, a (nested) tuple of names, or `ns.attr`.
struct Target {
  enum class Kind : uint8_t { Name, Tuple, NsAttr };
  Kind kind = Kind::Name;
  std::string name, attr;
  std::vector<Target> items;
  int line = 0;
};

struct Stmt {
  enum class Kind : uint8_t {
    Output, Print, If, For, Set, SetBlock, Macro, FilterBlock, With, Break, Continue, Block,
  };
  Stmt(Kind k, int l) : kind(k), line(l) {}
  virtual ~Stmt() = default;
  Kind kind;
  int line;
};

struct OutputStmt : Stmt {  // literal text
  OutputStmt(std::string t, int l) : Stmt(Kind::Output, l), text(std::move(t)) {}
  std::string text;
};

struct PrintStmt : Stmt {  // {{ expr }}
  PrintStmt(int l) : Stmt(Kind::Print, l) {}
  ExprPtr expr;
};

struct IfStmt : Stmt {  // if / elif... / else
  IfStmt(int l) : Stmt(Kind::If, l) {}
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body else_body;
};

struct ForStmt : Stmt {
  ForStmt(int l) : Stmt(Kind::For, l) {}
  Target target;
  ExprPtr iter, filter;  // filter: `for x in xs if cond` (optional)
  Body body, else_body;
};

struct SetStmt : Stmt {
  SetStmt(int l) : Stmt(Kind::Set, l) {}
  Target target;
  ExprPtr value;
};

// {% set x | filters %}body{% endset %} and {% filter f %}body{% endfilter %}
struct SetBlockStmt : Stmt {
  SetBlockStmt(Kind k, int l) : Stmt(k, l) {}
  Target target;                                     // unused for FilterBlock
  std::vector<std::unique_ptr<FilterExpr>> filters;  // applied in order
  Body body;
};

struct MacroStmt : Stmt {
  MacroStmt(int l) : Stmt(Kind::Macro, l) {}
  std::string name;
  std::vector<std::pair<std::string, ExprPtr>> params;  // default may be null
  Body body;
  bool uses_varargs = false, uses_kwargs = false;  // body mentions `varargs` / `kwargs`
};

struct WithStmt : Stmt {
  WithStmt(int l) : Stmt(Kind::With, l) {}
  std::vector<std::pair<Target, ExprPtr>> assigns;
  Body body;
};

struct SimpleStmt : Stmt {  // break, continue
  SimpleStmt(Kind k, int l) : Stmt(k, l) {}
};

struct BlockStmt : Stmt {  // a body rendered in place: HF's {% generation %}
  BlockStmt(int l) : Stmt(Kind::Block, l) {}
  Body body;
};

}  // namespace whale::jinja
