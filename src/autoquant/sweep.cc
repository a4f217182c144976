// The AutoQuantize sweep driver (quantforge/autoquant_report.h): one scoring run, then per budget
// the solved and a random assignment, plus the uniform references, each simulated on the engine
// (Model::Load with the assignment's weight transform) and evaluated by qf::EvaluatePerplexity
// with the unquantized model as reference (perplexity, KL, top-1 in one pass).
#include <algorithm>
#include <cmath>
#include <fstream>

#include "fmt/core.h"
#include "quantforge/autoquant_report.h"
#include "quantforge/error.h"
#include "quantforge/eval.h"
#include "src/autoquant/format_table.h"

namespace qf {
namespace {

// The checkpoint the recipe exports, as a serving engine runs it (ServedQuantization): without
// the run-time input quantizers of FP8 / MX modules the sweep would report a model that is never
// served (the exported checkpoint's KL was 3-18% higher on stories260K).
QuantizationScheme ServedScheme(std::span<const DecisionGroup> groups,
                                const Assignment& assignment) {
  QuantizationScheme scheme;
  scheme.layout = "modelopt";
  for (size_t g = 0; g < groups.size(); ++g) {
    const std::optional<LinearQuantization> linear =
        autoquant::ServedQuantization(groups[g].candidates[assignment.choice[g]]);
    if (!linear) continue;
    for (const std::string& module : groups[g].modules) scheme.linears[module] = *linear;
  }
  return scheme;
}

struct Evaluator {
  ModelConfig config;
  std::unique_ptr<WeightSource> weights;
  std::unique_ptr<Model> reference;
  std::vector<int32_t> tokens;
  EvalOptions options;
  ThreadPool* pool = nullptr;

  void Evaluate(std::span<const DecisionGroup> groups, const Assignment& assignment,
                SweepPoint& point) const {
    LoadOptions load;
    load.weight_transform =
        MakeAssignmentTransform(groups, assignment, FusionGlobalAmax(groups, *weights, pool), pool);
    const std::unique_ptr<Model> model = Model::Load(config, *weights, pool, load);
    SimulationHooks hooks(ServedScheme(groups, assignment));
    EvalOptions with_inputs = options;
    with_inputs.hooks = &hooks;
    const EvalResult r = EvaluatePerplexity(*model, tokens, with_inputs);
    point.evaluated = true;
    point.nll = r.nll;
    point.perplexity = r.perplexity;
    point.kl = r.kl.value_or(0.0);
    point.top1 = r.top1.value_or(0.0);
  }
};

void FillAssignment(std::span<const DecisionGroup> groups, const Assignment& a, SweepPoint& p) {
  p.bpe = a.bpe;
  p.gap = a.gap;
  p.proved_optimal = a.proved_optimal;
  for (size_t g = 0; g < groups.size(); ++g) {
    p.group_formats.emplace_back(AutoFormatName(groups[g].candidates[a.choice[g]]));
  }
}

std::string Slug(const std::string& label) {
  std::string out;
  for (char c : label) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.') {
      out += c;
    } else if (c >= 'A' && c <= 'Z') {
      out += static_cast<char>(c - 'A' + 'a');
    } else if (!out.empty() && out.back() != '_') {
      out += '_';
    }
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}

void WriteRecipe(const std::filesystem::path& report_dir, SweepPoint& point,
                 const std::string& yaml) {
  point.recipe = "recipes/" + Slug(point.label) + ".yaml";
  std::ofstream file(report_dir / point.recipe, std::ios::binary | std::ios::trunc);
  file << yaml;
  if (!file) throw Error("cannot write '" + (report_dir / point.recipe).string() + "'");
}

}  // namespace

std::string_view SweepPointKindName(SweepPointKind kind) {
  switch (kind) {
    case SweepPointKind::kAutoQuant:
      return "autoquant";
    case SweepPointKind::kRandom:
      return "random";
    case SweepPointKind::kUniform:
      return "uniform";
  }
  return "?";
}

SweepReport RunSweep(const SweepOptions& options, const std::filesystem::path& report_dir,
                     ThreadPool* pool) {
  const auto log = [&](const std::string& line) {
    if (options.log) options.log(line);
  };
  if (options.budgets.empty()) throw Error("the sweep needs at least one budget (--bits)");
  std::filesystem::create_directories(report_dir / "recipes");

  const ScoredModel scored = ScoreCheckpoint(options.scoring, pool);
  log(fmt::format("scored {} groups on {} x {} tokens in {:.1f} s", scored.groups.size(),
                  scored.num_sequences, scored.seq_len, scored.seconds));

  Evaluator eval;
  eval.pool = pool;
  eval.config = LoadModelConfig(options.scoring.model);
  eval.weights = OpenCheckpointWeights(options.scoring.model);
  eval.reference = Model::Load(eval.config, *eval.weights, pool);
  const std::unique_ptr<Tokenizer> tokenizer = OpenModelTokenizer(
      options.scoring.model, options.scoring.tokenizer, eval.config.vocab_size);
  eval.tokens = LoadEvalData(options.data, tokenizer.get()).tokens;
  eval.options.seq_len = std::min(options.eval_seq_len, eval.config.max_position_embeddings);
  eval.options.max_tokens = options.eval_max_tokens;
  eval.options.bos_id = scored.bos_id;
  eval.options.reference = eval.reference.get();

  SweepReport report;
  report.model = options.scoring.model.string();
  report.calib = options.scoring.calib.string();
  report.data = options.data.string();
  report.formats = options.scoring.formats;
  report.calib_sequences = scored.num_sequences;
  report.calib_seq_len = scored.seq_len;
  report.eval_seq_len = eval.options.seq_len;
  report.total_elements = TotalElements(scored.groups);
  report.min_bpe = MinimumBpe(scored.groups);
  report.max_bpe = MaximumBpe(scored.groups);
  for (const DecisionGroup& g : scored.groups) report.group_names.push_back(g.name);
  {
    EvalOptions plain = eval.options;
    plain.reference = nullptr;
    const EvalResult r = EvaluatePerplexity(*eval.reference, eval.tokens, plain);
    report.reference_nll = r.nll;
    report.reference_perplexity = r.perplexity;
    report.eval_tokens = r.tokens;
  }

  // Uniform references over the same counted elements; a format outside --formats is planned on
  // groups built for it and carries no score.
  const std::vector<DecisionGroup> all_groups = BuildDecisionGroups(
      CheckpointTensorDescs(options.scoring.model), ParseAutoFormatList("nvfp4,nvfp4-4o6,fp8"));
  const std::vector<AutoFormat> scored_formats = ParseAutoFormatList(options.scoring.formats);
  const struct {
    AutoFormat format;
    const char* label;
  } uniforms[] = {{AutoFormat::kNvfp4, "NVFP4 max"},
                  {AutoFormat::kNvfp4FourOverSix, "NVFP4 four_over_six"},
                  {AutoFormat::kFp8, "FP8"},
                  {AutoFormat::kNone, "BF16"}};
  for (const auto& u : uniforms) {
    SweepPoint point;
    point.kind = SweepPointKind::kUniform;
    point.label = u.label;
    const bool is_scored =
        std::find(scored_formats.begin(), scored_formats.end(), u.format) != scored_formats.end();
    const std::span<const DecisionGroup> groups =
        is_scored ? std::span<const DecisionGroup>(scored.groups) : all_groups;
    Assignment a = UniformAssignment(groups, is_scored ? scored.scores : ScoreTable{}, u.format);
    point.score = is_scored ? a.total_score : -1.0;
    FillAssignment(groups, a, point);
    WriteRecipe(report_dir, point,
                AssignmentRecipeYaml(groups, is_scored ? scored.scores : ScoreTable{}, a,
                                     {report.model, 0.0}));
    eval.Evaluate(groups, a, point);
    log(fmt::format("{:<24} {:.4f} bits/element  perplexity {:.4f}  KL {:.5f}", point.label,
                    point.bpe, point.perplexity, point.kl));
    report.points.push_back(std::move(point));
  }

  for (size_t b = 0; b < options.budgets.size(); ++b) {
    const double budget = options.budgets[b];
    SweepPoint solved;
    solved.kind = SweepPointKind::kAutoQuant;
    solved.label = fmt::format("AutoQuantize {:.2f}", budget);
    solved.budget_bpe = budget;
    SweepPoint random;
    random.kind = SweepPointKind::kRandom;
    random.label = fmt::format("random {:.2f} (seed {})", budget, options.seed + b);
    random.budget_bpe = budget;
    if (budget < report.min_bpe) {
      solved.note = random.note = fmt::format("infeasible: the minimum with formats {} is {:.4f}",
                                              report.formats, report.min_bpe);
      log(fmt::format("budget {:.2f}: {}", budget, solved.note));
      report.points.push_back(std::move(solved));
      report.points.push_back(std::move(random));
      continue;
    }
    const Assignment a =
        SolveNearBudget(scored.groups, scored.scores, budget, options.tolerance, {}, &solved.note);
    solved.score = a.total_score;
    FillAssignment(scored.groups, a, solved);
    WriteRecipe(report_dir, solved,
                AssignmentRecipeYaml(scored.groups, scored.scores, a, {report.model, budget}));
    eval.Evaluate(scored.groups, a, solved);
    const Assignment r = RandomAssignment(scored.groups, scored.scores, budget, options.seed + b);
    random.score = r.total_score;
    FillAssignment(scored.groups, r, random);
    WriteRecipe(report_dir, random,
                AssignmentRecipeYaml(scored.groups, scored.scores, r, {report.model, budget}));
    eval.Evaluate(scored.groups, r, random);
    log(
        fmt::format("budget {:.2f}: AutoQuantize {:.4f} bits perplexity {:.4f} KL {:.5f}; "
                    "random {:.4f} bits perplexity {:.4f} KL {:.5f}",
                    budget, solved.bpe, solved.perplexity, solved.kl, random.bpe, random.perplexity,
                    random.kl));
    report.points.push_back(std::move(solved));
    report.points.push_back(std::move(random));
  }
  return report;
}

}  // namespace qf
