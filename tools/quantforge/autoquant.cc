// `quantforge autoquant`: AutoQuantize a checkpoint. Scores every decision group under every
// candidate format with the gradient score on calibration text, solves for the assignment of
// least total score within --bits bits per element, writes it as a recipe (Model Optimizer
// schema) and, with --out, quantizes the checkpoint with that recipe. docs/AUTOQUANT.md.
#include "quantforge/autoquant.h"

#include <fmt/core.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "quantforge/autoquant_score.h"
#include "quantforge/error.h"
#include "quantforge/pipeline.h"
#include "tools/quantforge/commands.h"
#include "tools/quantforge/progress.h"

namespace qf::cli {
namespace {

struct AutoquantArgs {
  std::string model;
  std::string calib;
  std::string tokenizer;
  double bits = 0.0;
  std::string formats = "nvfp4,fp8,none";
  int64_t calib_samples = 64;
  int64_t seq_len = 256;
  int64_t batch_tokens = 2048;
  int64_t max_nodes = 20'000'000;
  double tolerance = 0.02;
  bool resident = false;
  std::string recipe_out;
  std::string out;
  bool overwrite = false;
};

// "autoquant: scoring batch 3/8, 12.3 s" redrawn on a terminal; start and end lines otherwise.
std::function<void(const ScoreProgress&)> ScoreProgressPrinter(bool is_terminal) {
  return [is_terminal](const ScoreProgress& p) {
    if (is_terminal) {
      std::fprintf(stderr, "\r\033[Kautoquant: scoring batch %lld/%lld, %.1f s",
                   static_cast<long long>(p.batches_done), static_cast<long long>(p.batches_total),
                   p.seconds);
      if (p.batches_done == p.batches_total) std::fputs("\n", stderr);
    } else if (p.batches_done == p.batches_total) {
      std::fprintf(stderr, "autoquant: scored %lld batches in %.1f s\n",
                   static_cast<long long>(p.batches_total), p.seconds);
    }
    std::fflush(stderr);
  };
}

// Writes PATH.tmp, then renames it over PATH: a failed write (disk full, no permission) never
// leaves a half recipe where a good one is expected, and removes its temporary file.
void WriteTextFileAtomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::ofstream file(tmp, std::ios::binary | std::ios::trunc);
  file << text;
  file.close();
  std::error_code ec;
  if (!file) {
    std::filesystem::remove(tmp, ec);
    throw Error("cannot write the recipe", {.path = tmp});
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw Error("cannot rename the recipe into place: " + ec.message(), {.path = path});
  }
}

// Fails before the (long) scoring run when --recipe-out cannot be written.
void CheckWritable(const std::string& path) {
  const std::string tmp = path + ".tmp";
  std::ofstream probe(tmp, std::ios::binary | std::ios::trunc);
  if (!probe) {
    throw Error("--recipe-out cannot be written (missing directory or no permission)",
                {.path = path});
  }
  probe.close();
  std::error_code ec;
  std::filesystem::remove(tmp, ec);
}

int Run(const AutoquantArgs& args, Context& context) {
  ScoringInputs inputs;
  inputs.model = args.model;
  inputs.calib = args.calib;
  inputs.tokenizer = args.tokenizer;
  inputs.formats = args.formats;
  inputs.calib_samples = args.calib_samples;
  inputs.seq_len = args.seq_len;
  inputs.batch_tokens = args.batch_tokens;
  inputs.layerwise = !args.resident;
  inputs.progress = ScoreProgressPrinter(context.is_terminal);
  // Check the format list and the budget's feasibility before the backward pass.
  const std::vector<DecisionGroup> groups =
      BuildDecisionGroups(CheckpointTensorDescs(args.model), ParseAutoFormatList(args.formats));
  if (args.bits < MinimumBpe(groups)) {
    throw Error(
        fmt::format("--bits {:.4f} is infeasible: with formats {} the minimum is {:.4f} "
                    "bits/element over {} decoder Linear weight elements",
                    args.bits, args.formats, MinimumBpe(groups), TotalElements(groups)));
  }
  std::fprintf(stderr, "autoquant: %zu decision groups, %lld elements, formats %s\n", groups.size(),
               static_cast<long long>(TotalElements(groups)), args.formats.c_str());
  CheckWritable(args.recipe_out);
  const ScoredModel scored = ScoreCheckpoint(inputs, context.pool.get());
  std::string note;
  const Assignment assignment =
      SolveNearBudget(scored.groups, scored.scores, args.bits, args.tolerance,
                      SolverOptions{.max_nodes = args.max_nodes}, &note);
  if (!note.empty()) std::fprintf(stderr, "autoquant: %s\n", note.c_str());
  const std::string yaml =
      AssignmentRecipeYaml(scored.groups, scored.scores, assignment, {args.model, args.bits});
  WriteTextFileAtomically(args.recipe_out, yaml);

  fmt::print("{}", AssignmentTable(scored.groups, scored.scores, assignment));
  fmt::print("calibration  {} sequences x {} tokens ({:.1f} s scoring)\n", scored.num_sequences,
             scored.seq_len, scored.seconds);
  fmt::print("budget       {:.4f} bits/element\n", args.bits);
  fmt::print(
      "achieved     {:.4f} bits/element over {} elements (scales included; lm_head and "
      "embeddings not counted)\n",
      assignment.bpe, TotalElements(scored.groups));
  fmt::print("total score  {:.6g}\n", assignment.total_score);
  fmt::print("gap          {}\n",
             assignment.proved_optimal
                 ? fmt::format("0 (proved optimal, {} nodes)", assignment.nodes)
                 : fmt::format("{:.6g} (node limit; lower bound {:.6g})", assignment.gap,
                               assignment.lower_bound));
  fmt::print("recipe       {}\n", args.recipe_out);
  std::fflush(stdout);

  if (!args.out.empty()) {
    QuantizeOptions options;
    options.model = args.model;
    options.recipe = args.recipe_out;
    options.out = args.out;
    options.overwrite = args.overwrite;
    ProgressBar bar("quantize", context.is_terminal);
    const QuantizeSummary summary =
        RunQuantize(options, context.pool.get(), [&](const QuantizeProgress& p) {
          bar.Update(p.tensors_done, p.tensors_total, p.bytes_done, p.bytes_total, p.current);
        });
    bar.Finish();
    std::fputs(SummaryText(summary).c_str(), stdout);
  }
  return 0;
}

}  // namespace

Action RegisterAutoquant(CLI::App& app) {
  auto args = std::make_shared<AutoquantArgs>();
  CLI::App* sub = app.add_subcommand(
      "autoquant",
      "AutoQuantize: per-layer NVFP4 / FP8 / BF16 (weight-only) chosen by gradient sensitivity "
      "on calibration text to meet a bits-per-element budget; writes the recipe (and, with "
      "--out, the checkpoint)");
  sub->add_option("--model", args->model, "Hugging Face checkpoint directory")->required();
  sub->add_option("--calib", args->calib,
                  "Calibration data for the scores: text, JSONL \"text\" or JSONL \"input_ids\"")
      ->required();
  sub->add_option("--bits", args->bits,
                  "Budget in bits per element over the decoder Linear weights, scales included "
                  "(NVFP4 4.5, FP8 8, BF16 16), e.g. 4.8")
      ->required()
      ->check(CLI::PositiveNumber);
  sub->add_option("--formats", args->formats,
                  "Candidate formats, comma-separated: nvfp4, nvfp4-4o6, mxfp4, fp8, mxfp8, none "
                  "(none = BF16 is always added)")
      ->capture_default_str();
  sub->add_option("--calib-samples", args->calib_samples, "Calibration sequences")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--seq-len", args->seq_len,
                  "Tokens per calibration sequence, BOS included (clipped to the context)")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 30))
      ->capture_default_str();
  sub->add_option("--batch-tokens", args->batch_tokens, "Tokens per backward pass")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  AddTokenizerOption(sub, &args->tokenizer);
  sub->add_option("--max-nodes", args->max_nodes,
                  "Branch-and-bound node limit (past it the best assignment is used and its gap "
                  "reported)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--tolerance", args->tolerance,
                  "Land within this many bits/element below --bits when some assignment can "
                  "(least score in the band); 0: the least-score assignment under --bits")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--recipe-out", args->recipe_out, "Where to write the recipe YAML")->required();
  sub->add_option("--out", args->out,
                  "Also quantize the checkpoint with the recipe into this directory");
  sub->add_flag("--overwrite", args->overwrite, "Replace an existing --out directory");
  sub->add_flag("--resident", args->resident,
                "Keep the whole F32 model in memory while scoring (same scores, faster, more "
                "memory; default: one decoder layer's weights at a time)");
  return [args](Context& context) { return Run(*args, context); };
}

}  // namespace qf::cli
