// `quantforge sweep`: AutoQuantize at several bits-per-element budgets from one scoring run, each
// assignment (with a random assignment at the same budget and the uniform NVFP4 max, NVFP4
// four_over_six, FP8 and BF16 references) evaluated by perplexity and KL divergence to the
// unquantized model; writes report.json, report.csv, plot.svg, report.html and the recipes of
// every point to --report-dir. docs/AUTOQUANT.md.
#include <fmt/core.h>

#include <cstdio>
#include <string>
#include <vector>

#include "quantforge/autoquant_report.h"
#include "quantforge/error.h"
#include "tools/quantforge/commands.h"

namespace qf::cli {
namespace {

struct SweepArgs {
  std::string model;
  std::string calib;
  std::string data;
  std::string tokenizer;
  std::vector<double> bits = {4.5, 4.8, 5.0, 5.5, 6.0, 8.0};
  std::string formats = "nvfp4,fp8,none";
  int64_t calib_samples = 32;
  int64_t seq_len = 256;
  int64_t eval_seq_len = 256;
  int64_t max_eval_tokens = 16384;
  uint64_t seed = 1;
  double tolerance = 0.02;
  bool resident = false;
  std::string report_dir;
};

int Run(const SweepArgs& args, Context& context) {
  SweepOptions options;
  options.scoring.model = args.model;
  options.scoring.calib = args.calib;
  options.scoring.tokenizer = args.tokenizer;
  options.scoring.formats = args.formats;
  options.scoring.calib_samples = args.calib_samples;
  options.scoring.seq_len = args.seq_len;
  options.scoring.layerwise = !args.resident;
  options.scoring.progress = [&](const ScoreProgress& p) {
    if (context.is_terminal) {
      std::fprintf(stderr, "\r\033[Ksweep: scoring batch %lld/%lld, %.1f s",
                   static_cast<long long>(p.batches_done), static_cast<long long>(p.batches_total),
                   p.seconds);
      if (p.batches_done == p.batches_total) std::fputs("\n", stderr);
    }
  };
  options.data = args.data;
  options.budgets = args.bits;
  options.eval_seq_len = args.eval_seq_len;
  options.eval_max_tokens = args.max_eval_tokens;
  options.seed = args.seed;
  options.tolerance = args.tolerance;
  options.log = [](const std::string& line) {
    std::fprintf(stderr, "sweep: %s\n", line.c_str());
    std::fflush(stderr);
  };
  const SweepReport report = RunSweep(options, args.report_dir, context.pool.get());
  WriteSweepReport(report, args.report_dir);

  fmt::print("{:<28} {:>7} {:>9} {:>11} {:>10} {:>8}\n", "point", "budget", "BPE", "perplexity",
             "KL", "top-1");
  for (const SweepPoint& p : report.points) {
    if (!p.evaluated) {
      fmt::print("{:<28} {:>7.2f}  {}\n", p.label, p.budget_bpe, p.note);
      continue;
    }
    fmt::print("{:<28} {:>7} {:>9.4f} {:>11.4f} {:>10.5f} {:>7.2f}%\n", p.label,
               p.budget_bpe > 0 ? fmt::format("{:.2f}", p.budget_bpe) : "-", p.bpe, p.perplexity,
               p.kl, 100.0 * p.top1);
  }
  fmt::print("unquantized perplexity {:.4f}; report in {}/report.html\n",
             report.reference_perplexity, args.report_dir);
  return 0;
}

}  // namespace

Action RegisterSweep(CLI::App& app) {
  auto args = std::make_shared<SweepArgs>();
  CLI::App* sub = app.add_subcommand(
      "sweep",
      "AutoQuantize at several bit budgets, evaluated by perplexity and KL against uniform and "
      "random references; writes a JSON/CSV/SVG/HTML report");
  sub->add_option("--model", args->model, "Hugging Face checkpoint directory")->required();
  sub->add_option("--calib", args->calib, "Calibration data for the scores")->required();
  sub->add_option("--data", args->data, "Evaluation data (text, JSONL \"text\" or \"input_ids\")")
      ->required();
  sub->add_option("--bits", args->bits,
                  "Budgets in bits per element, comma-separated (budgets below the formats' "
                  "minimum are reported as infeasible)")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--formats", args->formats,
                  "Candidate formats: nvfp4, nvfp4-4o6, mxfp4, fp8, mxfp8, none")
      ->capture_default_str();
  sub->add_option("--calib-samples", args->calib_samples, "Calibration sequences")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--seq-len", args->seq_len, "Tokens per calibration sequence, BOS included")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 30))
      ->capture_default_str();
  sub->add_option("--eval-seq-len", args->eval_seq_len, "Tokens per evaluation sequence")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 30))
      ->capture_default_str();
  sub->add_option("--max-eval-tokens", args->max_eval_tokens,
                  "Evaluation data tokens per point, whole sequences (0: all)")
      ->capture_default_str();
  sub->add_option("--seed", args->seed, "Seed of the random baselines (budget i uses seed + i)")
      ->capture_default_str();
  sub->add_option("--tolerance", args->tolerance,
                  "Land within this many bits/element below each budget when some assignment "
                  "can; 0: the least-score assignment under it")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  AddTokenizerOption(sub, &args->tokenizer);
  sub->add_flag("--resident", args->resident,
                "Keep the whole F32 model in memory while scoring (same scores, faster, more "
                "memory; default: one decoder layer's weights at a time)");
  sub->add_option("--report-dir", args->report_dir, "Directory for the report (created)")
      ->required();
  return [args](Context& context) { return Run(*args, context); };
}

}  // namespace qf::cli
