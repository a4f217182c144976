// quantforge command-line entry point: parses flags, builds the shared Context (thread pool) and
// runs the chosen subcommand. Every qf::Error ends here as "quantforge: error: ..." and exit 1.
// It also turns on ByteBuffer's cache of freed large blocks, sized for the machine.
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <vector>

#include "quantforge/byte_buffer.h"
#include "quantforge/error.h"
#include "quantforge/version.h"
#include "tools/quantforge/commands.h"

int main(int argc, char** argv) {
  CLI::App app{
      "quantforge " QF_VERSION_STRING
      ": turn LLM checkpoints into NVFP4 / FP8 / MX / BF16 checkpoints that vLLM, TensorRT-LLM "
      "and SGLang load."};
  app.set_version_flag("--version", "quantforge " QF_VERSION_STRING);
  app.require_subcommand(1);
  // `quantforge quantize ... --threads 4` as well as `quantforge --threads 4 quantize ...`.
  app.fallthrough();
  qf::cli::Context context;
  app.add_option("--threads", context.num_threads, "Worker threads (0 = all cores)")
      ->default_val(0);

  std::vector<std::pair<size_t, qf::cli::Action>> actions;
  const auto add = [&](qf::cli::Action action) {
    actions.emplace_back(app.get_subcommands({}).size() - 1, std::move(action));
  };
  add(qf::cli::RegisterQuantize(app));
  add(qf::cli::RegisterCompare(app));
  add(qf::cli::RegisterDemo(app));
  add(qf::cli::RegisterEval(app));
  add(qf::cli::RegisterGenerate(app));
  add(qf::cli::RegisterInspect(app));
  add(qf::cli::RegisterAutoquant(app));
  add(qf::cli::RegisterSweep(app));
  add(qf::cli::RegisterSample(app));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    context.is_terminal = isatty(fileno(stderr)) != 0;
    // Recycle large output buffers between tensors (byte_buffer.h): at most 512 MiB, or 1/32 of
    // the machine's memory where that is less.
    const long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
    const size_t memory = pages > 0 && page_size > 0 ? static_cast<size_t>(pages) * page_size : 0;
    qf::SetByteBufferCacheLimit(std::min<size_t>(size_t{512} << 20, memory / 32));
    context.pool = std::make_unique<qf::ThreadPool>(context.num_threads);
    const std::vector<CLI::App*> subs = app.get_subcommands({});
    for (auto& [idx, action] : actions) {
      if (subs[idx]->parsed()) return action(context);
    }
    std::fprintf(stderr, "quantforge: error: no subcommand given (see --help)\n");
    return 2;
  } catch (const qf::Error& e) {
    std::fprintf(stderr, "quantforge: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quantforge: error: %s\n", e.what());
    return 1;
  }
}
