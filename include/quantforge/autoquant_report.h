// The AutoQuantize sweep: score a checkpoint once, solve at several bits-per-element budgets,
// evaluate every assignment (and the uniform and random references) by perplexity and KL
// divergence to the unquantized model, and write the report a user picks an operating point from:
// report.json, report.csv, plot.svg (BPE against perplexity and against KL) and a self-contained
// report.html (table and inline SVG, no external resources). docs/AUTOQUANT.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "quantforge/autoquant_score.h"
#include "quantforge/thread_pool.h"

namespace qf {

enum class SweepPointKind { kAutoQuant, kRandom, kUniform };
std::string_view SweepPointKindName(SweepPointKind kind);  // "autoquant", "random", "uniform"

struct SweepPoint {
  SweepPointKind kind = SweepPointKind::kAutoQuant;
  std::string label;        // "AutoQuantize 5.50", "random 5.50 (seed 2)", "NVFP4 max", "BF16"
  double budget_bpe = 0.0;  // requested; 0 for uniform references
  bool evaluated = false;   // false: infeasible budget (see note)
  std::string note;
  double bpe = 0.0;
  double score = -1.0;  // total sensitivity; < 0 when not scored (a format outside --formats)
  double gap = 0.0;
  bool proved_optimal = false;
  double nll = 0.0;
  double perplexity = 0.0;
  double kl = 0.0;     // mean KL(P_bf16 || P_quant) per predicted token, nats
  double top1 = 0.0;   // fraction of positions whose argmax agrees with the unquantized model
  std::string recipe;  // recipe file, relative to the report directory
  std::vector<std::string> group_formats;  // per decision group
};

struct SweepReport {
  std::string model;
  std::string calib;
  std::string data;
  std::string formats;
  int64_t calib_sequences = 0;
  int64_t calib_seq_len = 0;
  int64_t eval_tokens = 0;  // predicted tokens per evaluation
  int64_t eval_seq_len = 0;
  int64_t total_elements = 0;
  double min_bpe = 0.0;  // achievable range with the candidate formats
  double max_bpe = 0.0;
  std::vector<std::string> group_names;
  double reference_nll = 0.0;
  double reference_perplexity = 0.0;
  std::vector<SweepPoint> points;
};

struct SweepOptions {
  ScoringInputs scoring;
  std::filesystem::path data;  // evaluation text (tokenized with the scoring tokenizer)
  std::vector<double> budgets;
  int64_t eval_seq_len = 256;
  int64_t eval_max_tokens = 16384;              // data tokens per evaluation (0: all)
  uint64_t seed = 1;                            // random baseline at budget i uses seed + i
  double tolerance = 0.02;                      // SolveNearBudget's band
  std::function<void(const std::string&)> log;  // progress lines (stderr in the CLI)
};

// Runs the sweep; recipes go to `report_dir`/recipes/ (created). Infeasible budgets become
// points with evaluated = false and a note naming the minimum BPE.
SweepReport RunSweep(const SweepOptions& options, const std::filesystem::path& report_dir,
                     ThreadPool* pool);

std::string SweepReportJson(const SweepReport& report);
std::string SweepReportCsv(const SweepReport& report);
// Two panels: achieved BPE against perplexity and against KL; AutoQuantize as a line, random
// baselines and uniform references as labelled markers; axes, ticks, labels and a legend.
std::string SweepPlotSvg(const SweepReport& report);
std::string SweepReportHtml(const SweepReport& report);
// report.json, report.csv, plot.svg and report.html in `dir` (created).
void WriteSweepReport(const SweepReport& report, const std::filesystem::path& dir);

}  // namespace qf
