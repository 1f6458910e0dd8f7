// whale chat -m PATH: interactive multi-turn chat with the model's chat template.
// Reasoning streams dimmed (--hide-reasoning to hide it); Ctrl-C stops the current answer,
// Ctrl-C or Ctrl-D at the prompt quits; /reset, /system TEXT, /quit. The KV cache keeps the
// conversation, so each turn computes only the new tokens.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cache_type.h"
#include "chat_ui.h"
#include "commands.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "file_io.h"

namespace whale::app {

namespace {

struct ChatArgs {
  std::string model, template_file, system;
  int n_predict = 2048, n_ctx = 4096, threads = 0;
  SamplerParams sampling{.temperature = 0.6f, .top_k = 40, .top_p = 0.95f, .seed = 0};
  bool hide_reasoning = false;
  std::string cache_type;
};

void run_chat(const ChatArgs& a) {
  if (a.threads > 0) ThreadPool::set_default_threads(a.threads);
  auto model = load_model(a.model);
  TextAssets text = load_text_assets(a.model);
  const std::string tmpl = read_file_if_given(a.template_file);
  if (tmpl.empty() && text.chat_template.empty())
    fail("{}: the model has no chat template (pass --template FILE.jinja)", a.model);
  Session session(*model, a.n_ctx, cache_type_or(a.cache_type, DType::F16));
  GenerateOptions gen{.max_tokens = a.n_predict, .sampling = a.sampling, .stop_tokens = text.stop_tokens};
  ChatUiOptions ui{.hide_reasoning = a.hide_reasoning, .color = bool(isatty(STDOUT_FILENO))};
  install_interrupt_handler();

  ChatRequest req;
  auto reset = [&] {
    req.messages = nlohmann::ordered_json::array();
    if (!a.system.empty()) req.messages.push_back({{"role", "system"}, {"content", a.system}});
  };
  reset();
  std::string system = a.system;
  fmt::print(stderr, "whale chat: {} ({}); /reset, /system TEXT, /quit; Ctrl-C stops an answer\n",
             a.model, arch_name(model->config().arch));
  std::string line;
  for (;;) {
    std::fputs(ui.color ? "\033[1m> \033[0m" : "> ", stdout);
    std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;  // EOF or Ctrl-C at the prompt
    if (line.empty()) continue;
    if (line == "/quit" || line == "/exit") break;
    if (line == "/reset") {
      reset();
      session.reset();
      fmt::print(stderr, "[conversation cleared]\n");
      continue;
    }
    if (line.rfind("/system", 0) == 0) {
      system = line.size() > 8 ? line.substr(8) : "";
      nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
      if (!system.empty()) msgs.push_back({{"role", "system"}, {"content", system}});
      for (auto& m : req.messages)
        if (m["role"] != "system") msgs.push_back(m);
      req.messages = msgs;
      fmt::print(stderr, "[system prompt {}]\n", system.empty() ? "removed" : "set");
      continue;
    }
    req.messages.push_back({{"role", "user"}, {"content", line}});
    std::string prompt;
    try {
      prompt = render_chat(text, req, tmpl);
      Answer ans = stream_answer(session, text, prompt, gen, ui);
      req.messages.push_back({{"role", "assistant"}, {"content", ans.content}});
    } catch (const whale::Error& e) {
      // e.g. the context is full: keep the session usable.
      req.messages.erase(req.messages.end() - 1);
      fmt::print(stderr, "whale: error: {}\n", e.what());
    }
  }
  std::fputs("\n", stdout);
}

}  // namespace

void register_chat(CLI::App& app) {
  auto a = std::make_shared<ChatArgs>();
  CLI::App* cmd = app.add_subcommand("chat", "interactive chat with the model's template");
  cmd->add_option("-m,--model", a->model, "GGUF file or Hugging Face folder")->required();
  cmd->add_option("--template", a->template_file, "chat template file instead of the model's");
  cmd->add_option("--system", a->system, "system prompt");
  cmd->add_option("-n,--n-predict", a->n_predict, "max tokens per answer")->capture_default_str();
  cmd->add_option("-c,--ctx-size", a->n_ctx, "context size")->capture_default_str();
  cmd->add_option("-t,--threads", a->threads, "threads (default: all cores)");
  cmd->add_option("--temp", a->sampling.temperature, "temperature")->capture_default_str();
  cmd->add_option("--top-k", a->sampling.top_k, "top-k")->capture_default_str();
  cmd->add_option("--top-p", a->sampling.top_p, "top-p")->capture_default_str();
  cmd->add_option("--seed", a->sampling.seed, "random seed")->capture_default_str();
  cmd->add_flag("--hide-reasoning", a->hide_reasoning, "do not show the <think> reasoning");
  add_cache_type_option(cmd, &a->cache_type);
  cmd->callback([a] { run_chat(*a); });
}

}  // namespace whale::app
