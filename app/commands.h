// Subcommand registration: each file adds its CLI11 subcommand and a callback that runs it.
#pragma once

#include <CLI/CLI.hpp>

namespace whale::app {

void register_info(CLI::App& app);
void register_run(CLI::App& app);

}  // namespace whale::app
