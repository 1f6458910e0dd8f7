#include "chat_ui.h"

#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <cstring>

#include "text/reasoning.h"

namespace whale::app {

namespace {
std::atomic<bool> g_interrupt{false};

void on_sigint(int) { g_interrupt.store(true); }
}  // namespace

std::atomic<bool>& interrupt_flag() { return g_interrupt; }

void install_interrupt_handler() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a read at the prompt returns, so Ctrl-C there quits
  sigaction(SIGINT, &sa, nullptr);
}

Answer stream_answer(Session& session, const TextAssets& text, const std::string& prompt_text,
                     const GenerateOptions& opts, const ChatUiOptions& ui,
                     bool add_special_tokens) {
  Answer ans;
  const bool in_reasoning = prompt_opens_reasoning(prompt_text);
  ReasoningSplitter split(in_reasoning);
  bool showing_reasoning = false;
  auto show = [&](const ReasoningDelta& d) {
    if (!d.reasoning.empty()) {
      ans.reasoning += d.reasoning;
      if (!ui.hide_reasoning) {
        if (!showing_reasoning) std::fputs(ui.color ? "\033[2m" : "<think>\n", stdout);
        showing_reasoning = true;
        std::fwrite(d.reasoning.data(), 1, d.reasoning.size(), stdout);
      }
    }
    if (!d.content.empty()) {
      if (showing_reasoning) std::fputs(ui.color ? "\033[0m\n" : "\n</think>\n", stdout);
      showing_reasoning = false;
      ans.content += d.content;
      std::fwrite(d.content.data(), 1, d.content.size(), stdout);
    }
    std::fflush(stdout);
  };
  const std::vector<int32_t> prompt = text.tokenizer->encode(prompt_text, add_special_tokens);
  g_interrupt.store(false);
  GenerateOptions o = opts;
  o.cancel = &g_interrupt;
  ans.result = generate(session, *text.tokenizer, prompt, o, [&](const std::string& s) { show(split.feed(s)); });
  show(split.finish());
  if (showing_reasoning) std::fputs(ui.color ? "\033[0m" : "\n</think>", stdout);
  std::fputs("\n", stdout);
  std::fflush(stdout);
  g_interrupt.store(false);
  const GenerateResult& r = ans.result;
  fmt::print(stderr, "[{} prompt tokens ({} computed) in {:.2f} s, {} generated at {:.1f} t/s, {}]\n",
             r.prompt_tokens, r.prompt_computed, r.prefill_seconds, r.generated,
             r.generated / std::max(r.decode_seconds, 1e-9), r.finish_reason);
  return ans;
}

}  // namespace whale::app
