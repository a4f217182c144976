// `quantforge compare`: reconstruction error of every weight under several formats and
// algorithms, without writing a checkpoint.
#include <cstdio>

#include "quantforge/compare.h"
#include "tools/quantforge/commands.h"

namespace qf::cli {
namespace {

struct CompareArgs {
  CompareOptions options;
  bool json = false;
  bool per_tensor = false;
};

}  // namespace

Action RegisterCompare(CLI::App& app) {
  auto args = std::make_shared<CompareArgs>();
  CLI::App* sub = app.add_subcommand(
      "compare", "Reconstruction error (MSE, relative RMS, SQNR) of each weight per format and "
                 "algorithm, without writing a checkpoint");
  sub->add_option("--model", args->options.model, "Checkpoint directory or .safetensors file")
      ->required();
  sub->add_option("--recipe", args->options.recipe,
                  "Only the weights this recipe quantizes (default: every linear weight)");
  sub->add_option("--formats", args->options.formats,
                  "Comma-separated: nvfp4, mxfp4, mxfp8, fp8, fp8_per_channel")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--algorithms", args->options.algorithms,
                  "NVFP4 block-scale algorithms, comma-separated: max, mse, four_over_six")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--tensors", args->options.tensor_glob,
                  "Glob over tensor names, e.g. '*experts*'");
  sub->add_flag("--per-tensor", args->per_tensor, "Print one row per tensor and variant");
  sub->add_flag("--json", args->json, "End standard output with one JSON line");
  return [args](Context& context) {
    const CompareReport report = RunCompare(args->options, context.pool.get());
    std::fputs(CompareReportText(report, args->per_tensor).c_str(), stdout);
    if (args->json) std::printf("%s\n", CompareReportJson(report).c_str());
    return 0;
  };
}

}  // namespace qf::cli
