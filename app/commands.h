// Subcommand registration: each file adds its CLI11 subcommand and a callback that runs it.
#pragma once

#include <CLI/CLI.hpp>

namespace whale::app {

void register_info(CLI::App& app);
void register_run(CLI::App& app);
void register_text(CLI::App& app);  // tokenize, render
void register_chat(CLI::App& app);
void register_convert_vocab(CLI::App& app);
void register_bench_tokenizer(CLI::App& app);
void register_bench(CLI::App& app);
void register_bench_serve(CLI::App& app);
void register_synth(CLI::App& app);
void register_quantize(CLI::App& app);
void register_serve(CLI::App& app);
void register_grad(CLI::App& app);         // training: loss + gradients
void register_bench_train(CLI::App& app);  // training-step throughput
void register_train(CLI::App& app);
void register_corpus(CLI::App& app);  // corpus, train-tokenizer

}  // namespace whale::app
