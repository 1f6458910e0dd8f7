// whale: one binary, subcommands. Results go to stdout, logs and errors to stderr; every
// error is one line and a non-zero exit status.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"whale: run and train DeepSeek-family models on the CPU"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "show help for all subcommands");
  whale::app::register_info(app);
  whale::app::register_run(app);
  whale::app::register_text(app);
  whale::app::register_chat(app);
  whale::app::register_convert_vocab(app);
  whale::app::register_bench_tokenizer(app);
  whale::app::register_bench(app);
  whale::app::register_bench_serve(app);
  whale::app::register_synth(app);
  whale::app::register_quantize(app);
  whale::app::register_serve(app);
  whale::app::register_grad(app);
  whale::app::register_bench_train(app);
  whale::app::register_train(app);
  whale::app::register_corpus(app);
  // llama.cpp's -ctk (KV cache type) is not a name CLI11 can declare: read it as --cache-type.
  std::vector<char*> args(argv, argv + argc);
  static char cache_type[] = "--cache-type";
  for (char*& a : args)
    if (std::strcmp(a, "-ctk") == 0) a = cache_type;
  try {
    app.parse(argc, args.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const whale::Error& e) {
    std::fprintf(stderr, "whale: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "whale: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "whale: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
