// Jinja2 chat-template interpreter: renders Hugging Face chat templates byte-for-byte as
// Python's Jinja2 3.1 does under transformers' apply_chat_template, i.e. an immutable sandbox
// with trim_blocks=True, lstrip_blocks=True, the loopcontrols extension (break/continue), and
// HF's globals/filters: raise_exception(msg), strftime_now(fmt), and
// tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) = json.dumps.
//
//   whale::jinja::Template t(source);                 // parses; throws whale::Error
//   std::string text = t.render(context);             // throws whale::Error
//
// The context is a JSON object whose members become template variables: JSON null is Python's
// None, objects are dicts in their key order, arrays are lists. A variable the context lacks
// is Jinja's Undefined (HF passes bos_token only when the tokenizer has one, for example).
//
// Errors name the template line: "line 12: unknown filter 'foo'", "line 3: raise_exception:
// <message>". Anything the interpreter does not support fails this way too — it never
// renders a guess.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace whale::jinja {

// Bounds that keep a hostile template from exhausting memory, stack or time. Exceeding one
// is a whale::Error naming the limit.
struct Limits {
  size_t max_output_bytes = 64u << 20;        // rendered text, and any string built on the way
  size_t max_list_items = 1u << 20;           // any list or dict built on the way
  size_t max_total_string_bytes = size_t{1} << 30;  // all strings built during one render
  size_t max_total_list_items = 64u << 20;          // all list items built during one render
  int64_t max_loop_iterations = 1'000'000;    // for-loop iterations in one render, all loops
  int max_render_depth = 400;                 // nested evaluation: macro recursion and the like
  int max_parse_depth = 100;                  // nesting of blocks and expressions in the source
};

struct Program;

class Template {
 public:
  explicit Template(std::string source, Limits limits = {});
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // Preferred: ordered_json keeps the context's key order, which Python dicts also keep and
  // which `tojson` and `|items` expose. render() is const and keeps no state between calls:
  // one Template may be rendered from several threads at once.
  std::string render(const nlohmann::ordered_json& context) const;
  // Convenience for nlohmann::json, whose objects are sorted by key (so renders see sorted
  // dicts). Pass a typed object: a bare braced list would be ambiguous between the two.
  std::string render(const nlohmann::json& context) const;

 private:
  std::unique_ptr<Program> program_;
  Limits limits_;
};

}  // namespace whale::jinja
