// `quantforge generate`: writes a synthetic Hugging Face checkpoint (Llama or Nemotron-H names,
// realistic heavy-tailed weights from the synth layer) for tests, benchmarks and demos. Output
// goes through an OutputTransaction: nothing is left behind on error or Ctrl-C.
#include <fmt/core.h>

#include <chrono>
#include <optional>
#include <string>

#include "quantforge/checkpoint.h"
#include "quantforge/error.h"
#include "quantforge/synth.h"
#include "tools/quantforge/commands.h"

namespace qf::cli {
namespace {

struct GenerateFlags {
  std::string out;
  std::string preset = "tiny";
  std::string arch = "llama";
  std::string dtype = "bf16";
  uint64_t seed = 0;
  uint64_t shard_bytes = 5'000'000'000;
  bool overwrite = false;
};

int RunGenerate(const GenerateFlags& flags, Context& context) {
  SynthCheckpointOptions options;
  options.seed = flags.seed;
  options.max_shard_bytes = flags.shard_bytes;
  if (flags.dtype == "bf16") {
    options.dtype = DType::kBF16;
  } else if (flags.dtype == "f32") {
    options.dtype = DType::kF32;
  } else {
    throw Error("generate: --dtype must be bf16 or f32, found '" + flags.dtype + "'");
  }
  // Presets are checked before the output directory is touched.
  std::optional<LlamaShape> llama;
  std::optional<NemotronHShape> nemotron_h;
  if (flags.arch == "llama") {
    llama = LlamaPreset(flags.preset);
    if (!llama) {
      throw Error("generate: unknown llama preset '" + flags.preset + "' (tiny, small, 1b, 8b)");
    }
  } else if (flags.arch == "nemotron-h") {
    nemotron_h = NemotronHPreset(flags.preset);
    if (!nemotron_h) {
      throw Error("generate: unknown nemotron-h preset '" + flags.preset + "' (tiny, small)");
    }
  } else {
    throw Error("generate: --arch must be llama or nemotron-h, found '" + flags.arch + "'");
  }
  const auto start = std::chrono::steady_clock::now();
  OutputTransaction output(flags.out, flags.overwrite);
  const SynthCheckpointSummary summary =
      llama ? GenerateLlamaCheckpoint(output.Dir(), *llama, options, context.pool.get())
            : GenerateNemotronHCheckpoint(output.Dir(), *nemotron_h, options, context.pool.get());
  output.Commit();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fmt::print(
      "generated {} {} checkpoint (synthetic weights, seed {}) in {}: {} tensors, {:.1f} MB "
      "in {} shard(s), {:.1f} s\n",
      flags.arch, flags.preset, flags.seed, flags.out, summary.num_tensors, summary.num_bytes / 1e6,
      summary.shard_files.size(), seconds);
  return 0;
}

}  // namespace

Action RegisterGenerate(CLI::App& app) {
  CLI::App* sub = app.add_subcommand(
      "generate", "Write a synthetic Hugging Face checkpoint with realistic heavy-tailed weights");
  auto flags = std::make_shared<GenerateFlags>();
  sub->add_option("--out", flags->out, "Output directory (must not exist unless --overwrite)")
      ->required();
  sub->add_option("--preset", flags->preset, "Size: tiny, small, 1b, 8b (nemotron-h: tiny, small)")
      ->default_val(flags->preset);
  sub->add_option("--arch", flags->arch, "llama or nemotron-h")->default_val(flags->arch);
  sub->add_option("--dtype", flags->dtype, "bf16 or f32")->default_val(flags->dtype);
  sub->add_option("--seed", flags->seed, "Seed of the weights")->default_val(flags->seed);
  sub->add_option("--shard-size", flags->shard_bytes, "Maximum tensor bytes per shard")
      ->default_val(flags->shard_bytes);
  sub->add_flag("--overwrite", flags->overwrite, "Replace an existing output directory");
  return [flags](Context& context) { return RunGenerate(*flags, context); };
}

}  // namespace qf::cli
