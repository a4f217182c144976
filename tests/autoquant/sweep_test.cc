// RunSweep end to end on stories260K with small settings (skipped when ../shared is absent):
// every point is evaluated or named infeasible, the solved points stay within their budgets, the
// recipes written for them load, and at the same budget AutoQuantize's KL to the unquantized model
// is below the random assignment's (the measured figures are in docs/AUTOQUANT.md), and a solved
// point's figures are those of the checkpoint its recipe exports, run as a serving engine runs it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "quantforge/autoquant_report.h"
#include "quantforge/eval.h"
#include "quantforge/pipeline.h"
#include "quantforge/tokenizer.h"

namespace qf {
namespace {

const std::filesystem::path kShared(QF_SHARED_DIR);

TEST(Sweep, Stories260KSmall) {
  const std::filesystem::path model = kShared / "models/stories260K/hf";
  const std::filesystem::path tokenizer = kShared / "models/stories260K/tok512.bin";
  const std::filesystem::path text = kShared / "data/wikitext-2-test/wiki.test.raw";
  if (!std::filesystem::exists(model / "model.safetensors") ||
      !std::filesystem::exists(tokenizer) || !std::filesystem::exists(text)) {
    GTEST_SKIP() << "stories260K or wikitext-2 not found under " << kShared;
  }
  SweepOptions options;
  options.scoring.model = model;
  options.scoring.calib = text;
  options.scoring.tokenizer = tokenizer;
  options.scoring.calib_samples = 8;
  options.scoring.seq_len = 128;
  options.data = text;
  options.budgets = {4.5, 6.0, 7.0};
  options.eval_seq_len = 128;
  options.eval_max_tokens = 2048;
  ThreadPool pool(2);
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("qf_autoquant_sweep_" + std::to_string(getpid()));
  const SweepReport report = RunSweep(options, dir, &pool);
  WriteSweepReport(report, dir);
  for (const char* name : {"report.json", "report.csv", "plot.svg", "report.html"}) {
    EXPECT_TRUE(std::filesystem::exists(dir / name)) << name;
  }
  ASSERT_EQ(report.points.size(), 4u + 2 * 3);  // 4 uniform references, 2 per budget
  EXPECT_EQ(report.points[3].label, "BF16");
  EXPECT_EQ(report.points[3].kl, 0.0);
  EXPECT_EQ(report.points[3].perplexity, report.reference_perplexity);
  EXPECT_FALSE(report.points[4].evaluated);  // 4.5 is below stories260K's 5.35 minimum
  EXPECT_NE(report.points[4].note.find("5.3503"), std::string::npos) << report.points[4].note;
  for (size_t i = 6; i < report.points.size(); i += 2) {
    const SweepPoint& solved = report.points[i];
    const SweepPoint& random = report.points[i + 1];
    ASSERT_EQ(solved.kind, SweepPointKind::kAutoQuant);
    ASSERT_EQ(random.kind, SweepPointKind::kRandom);
    EXPECT_TRUE(solved.proved_optimal);
    EXPECT_LE(solved.bpe, solved.budget_bpe);
    // Within 0.02 of the budget (SolveNearBudget's band) unless the note says no assignment can.
    if (solved.note.empty()) {
      EXPECT_GE(solved.bpe, solved.budget_bpe - 0.02) << solved.label;
    }
    EXPECT_LE(random.bpe, random.budget_bpe);
    EXPECT_LE(solved.score, random.score);
    EXPECT_LT(solved.kl, random.kl) << solved.label;
    EXPECT_TRUE(std::filesystem::exists(dir / solved.recipe));
    EXPECT_NO_THROW(LoadRecipe((dir / solved.recipe).string()));
  }

  // The 6.0 point (FP8 down_proj among NVFP4 groups): quantize with its recipe, open the
  // checkpoint as eval does (FP8 weight-only is exported as FP8_PER_CHANNEL_PER_TOKEN, whose
  // inputs the engine quantizes per token) and evaluate it the same way: the same KL and nll.
  const SweepPoint& six = report.points[6];
  ASSERT_TRUE(six.evaluated);
  QuantizeOptions quantize;
  quantize.model = model;
  quantize.recipe = (dir / six.recipe).string();
  quantize.out = dir / "exported";
  quantize.sync_to_disk = false;
  RunQuantize(quantize, &pool);
  const QuantizedCheckpoint exported = OpenQuantizedCheckpoint(quantize.out, &pool);
  const std::unique_ptr<Model> served =
      Model::Load(LoadModelConfig(quantize.out), *exported.weights, &pool);
  const std::unique_ptr<Model> reference = Model::LoadDir(model, &pool);
  const std::unique_ptr<Tokenizer> tok = LoadTokenizerFile(tokenizer);
  SimulationHooks hooks(exported.scheme);
  EvalOptions eval;
  eval.seq_len = options.eval_seq_len;
  eval.max_tokens = options.eval_max_tokens;
  eval.bos_id = tok->BosId();
  eval.hooks = &hooks;
  eval.reference = reference.get();
  const EvalResult r = EvaluatePerplexity(*served, LoadEvalData(text, tok.get()).tokens, eval);
  EXPECT_NEAR(r.nll, six.nll, 1e-6 * six.nll) << exported.scheme.Summary();
  EXPECT_NEAR(*r.kl, six.kl, 1e-6 * six.kl) << exported.scheme.Summary();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qf
