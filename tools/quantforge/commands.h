// The subcommands of the quantforge CLI. Each lives in its own file and registers itself on the
// CLI11 app; it returns the action to run when the subcommand was chosen.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>

#include "quantforge/thread_pool.h"

namespace qf::cli {

// Shared by all subcommands: created once in main after parsing.
struct Context {
  size_t num_threads = 0;  // 0 = all hardware threads
  std::unique_ptr<ThreadPool> pool;
  bool is_terminal = false;  // stderr is a TTY: progress bars are drawn
};

using Action = std::function<int(Context&)>;

// --tokenizer of the subcommands that score text against a model directory (eval, sweep,
// autoquant): one wording for all of them.
inline CLI::Option* AddTokenizerOption(CLI::App* sub, std::string* path) {
  return sub->add_option("--tokenizer", *path,
                         "tokenizer.json, SentencePiece .model or llama2.c .bin (default: found "
                         "in --model)");
}

// Each Register* adds one subcommand to `app` and returns what to run when it was chosen.
Action RegisterDemo(CLI::App& app);
Action RegisterEval(CLI::App& app);
Action RegisterGenerate(CLI::App& app);
Action RegisterInspect(CLI::App& app);
Action RegisterCompare(CLI::App& app);
Action RegisterQuantize(CLI::App& app);
Action RegisterAutoquant(CLI::App& app);
Action RegisterSweep(CLI::App& app);
Action RegisterSample(CLI::App& app);

}  // namespace qf::cli
