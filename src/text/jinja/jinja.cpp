// Public API: parse once, render many times; internal errors become whale::Error with the line.
#include "text/jinja/jinja.h"

#include "core/error.h"
#include "text/jinja/interpreter.h"
#include "text/jinja/parser.h"
#include "text/jinja/pystr.h"

namespace whale::jinja {

struct Program {
  Body body;
};

static Error to_error(const TemplateError& e) {
  if (e.line() > 0) return Error(fmt::format("line {}: {}", e.line(), e.message()));
  return Error(e.message());
}

Template::Template(std::string source, Limits limits) : limits_(limits) {
  if (!py::utf8_valid(source)) throw Error("template is not valid UTF-8");
  program_ = std::make_unique<Program>();
  try {
    ParseLimits pl;
    pl.max_depth = limits_.max_parse_depth;
    program_->body = parse(source, pl);
  } catch (const TemplateError& e) {
    throw to_error(e);
  }
}

Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const nlohmann::ordered_json& context) const {
  try {
    Value ctx = from_json(context);
    Interpreter in(limits_);
    return in.render(program_->body, ctx);
  } catch (const TemplateError& e) {
    throw to_error(e);
  } catch (const std::bad_alloc&) {
    throw Error("out of memory while rendering the template");
  }
}

std::string Template::render(const nlohmann::json& context) const {
  return render(nlohmann::ordered_json(context));
}

}  // namespace whale::jinja
