// The gradient score on stories260K (../shared/models; skipped when absent): shape and sign, an
// independent double-precision recomputation of one module's score from the backward pass (with
// the per-token FP8 input quantization the exported FP8 checkpoint is served with),
// thread-count independence, and the assignment transform against the engine's own uniform
// weight fake quantization.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "quantforge/autoquant_score.h"
#include "quantforge/error.h"
#include "quantforge/eval.h"
#include "quantforge/quantize.h"
#include "quantforge/tokenizer.h"

namespace qf {
namespace {

const std::filesystem::path kShared(QF_SHARED_DIR);
const std::filesystem::path kModelDir = kShared / "models/stories260K/hf";
const std::filesystem::path kTokenizer = kShared / "models/stories260K/tok512.bin";
const std::filesystem::path kCalib = kShared / "data/wikitext-2-test/wiki.test.raw";

class Stories260K : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kModelDir / "model.safetensors") ||
        !std::filesystem::exists(kTokenizer) || !std::filesystem::exists(kCalib)) {
      GTEST_SKIP() << "stories260K or wikitext-2 not found under " << kShared;
    }
    groups_ = BuildDecisionGroups(CheckpointTensorDescs(kModelDir),
                                  ParseAutoFormatList("nvfp4,fp8,none"));
    weights_ = OpenCheckpointWeights(kModelDir);
    const std::unique_ptr<Tokenizer> tokenizer = LoadTokenizerFile(kTokenizer);
    const EvalData data = LoadEvalData(kCalib, tokenizer.get());
    sequences_ = CutSequences(data.tokens, tokenizer->BosId(), 4, 64, "wiki.test.raw");
  }

  std::vector<DecisionGroup> groups_;
  std::unique_ptr<WeightSource> weights_;
  std::vector<std::vector<int32_t>> sequences_;
};

TEST_F(Stories260K, ScoresArePositiveAndFourBitsHurtMore) {
  ThreadPool pool(2);
  const std::unique_ptr<GradientModel> model = GradientModel::LoadDir(kModelDir, &pool);
  const ScoreTable scores = GradientScores(*model, *weights_, groups_, sequences_, &pool);
  ASSERT_EQ(scores.size(), groups_.size());
  ASSERT_EQ(groups_.size(), 20u);  // 5 layers x (qkv, o_proj, gate_up, down_proj)
  int num_nvfp4_worse = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    ASSERT_EQ(scores[g].back(), 0.0) << groups_[g].name;  // BF16
    for (size_t c = 0; c + 1 < scores[g].size(); ++c) {
      EXPECT_GT(scores[g][c], 0.0) << groups_[g].name;
      EXPECT_TRUE(std::isfinite(scores[g][c]));
    }
    if (groups_[g].candidates.front() == AutoFormat::kNvfp4 && scores[g][0] > scores[g][1]) {
      ++num_nvfp4_worse;
    }
  }
  EXPECT_EQ(num_nvfp4_worse, 15);  // every group that can take NVFP4 (down_proj cannot)

  ThreadPool one(1);
  const std::unique_ptr<GradientModel> model1 = GradientModel::LoadDir(kModelDir, &one);
  EXPECT_EQ(GradientScores(*model1, *weights_, groups_, sequences_, &one), scores);
  // Layer by layer (one layer's weights resident): the same scores.
  const std::unique_ptr<GradientModel> layerwise =
      GradientModel::Load(LoadModelConfig(kModelDir), *weights_, &pool, {.layerwise = true});
  EXPECT_EQ(GradientScores(*layerwise, *weights_, groups_, sequences_, &pool), scores);
}

TEST_F(Stories260K, MatchesADoublePrecisionRecomputation) {
  // One batch, one module (o_proj of layer 2, not fused: no shared amax), FP8 and NVFP4.
  const std::unique_ptr<GradientModel> model = GradientModel::LoadDir(kModelDir, nullptr);
  const std::vector<std::vector<int32_t>> one(sequences_.begin(), sequences_.begin() + 2);
  size_t g_index = 0;
  while (groups_[g_index].name != "model.layers.2.self_attn.o_proj") ++g_index;
  const DecisionGroup& group = groups_[g_index];
  std::vector<double> expected(group.candidates.size(), 0.0);
  TokenBatch batch;
  for (const auto& s : one) batch.sequences.emplace_back(s);
  model->Backward(batch, [&](const LinearGradient& lg) {
    if (lg.module != group.modules[0]) return;
    for (size_t c = 0; c + 1 < group.candidates.size(); ++c) {
      std::vector<float> wq(lg.weight, lg.weight + lg.out_features * lg.in_features);
      FakeQuantizeWeight(wq, lg.out_features, lg.in_features, group.candidates[c], std::nullopt,
                         "w", nullptr);
      // FP8 weight-only is exported as FP8_PER_CHANNEL_PER_TOKEN, whose input the engine
      // quantizes per token: dy = Q(x) Wq^T - x W^T. NVFP4 is W4A16: dy = x (Wq - W)^T.
      std::vector<float> xq(lg.input, lg.input + lg.rows * lg.in_features);
      if (group.candidates[c] == AutoFormat::kFp8) {
        for (int64_t r = 0; r < lg.rows; ++r) {
          FakeQuantFp8PerToken(xq.data() + r * lg.in_features, lg.in_features);
        }
      }
      for (int64_t r = 0; r < lg.rows; ++r) {
        for (int64_t o = 0; o < lg.out_features; ++o) {
          double dy = 0.0;
          for (int64_t i = 0; i < lg.in_features; ++i) {
            dy += static_cast<double>(xq[r * lg.in_features + i]) *
                      static_cast<double>(wq[o * lg.in_features + i]) -
                  static_cast<double>(lg.input[r * lg.in_features + i]) *
                      static_cast<double>(lg.weight[o * lg.in_features + i]);
          }
          const double p = static_cast<double>(lg.grad_output[r * lg.out_features + o]) * dy;
          expected[c] += p * p;
        }
      }
    }
  });
  const ScoreTable scores =
      GradientScores(*model, *weights_, groups_, one, nullptr, {.batch_tokens = 1 << 20});
  for (size_t c = 0; c + 1 < group.candidates.size(); ++c) {
    // F32 GEMM of 64-term dot products against double: relative error well under 1e-4.
    EXPECT_NEAR(scores[g_index][c], expected[c], 1e-4 * expected[c])
        << AutoFormatName(group.candidates[c]);
    EXPECT_GT(expected[c], 0.0);
  }
}

TEST_F(Stories260K, UniformTransformMatchesTheEngineWhereNothingIsFused) {
  const std::map<std::string, float> amax = FusionGlobalAmax(groups_, *weights_, nullptr);
  for (AutoFormat f : {AutoFormat::kFp8, AutoFormat::kNvfp4}) {
    const Assignment a = UniformAssignment(groups_, {}, f);
    const WeightTransform ours = MakeAssignmentTransform(groups_, a, amax, nullptr);
    const WeightTransform engine = MakeWeightFakeQuant(
        f == AutoFormat::kFp8 ? WeightFakeQuant::kFp8PerTensor : WeightFakeQuant::kNvfp4, nullptr);
    for (const std::string name :
         {"model.layers.1.self_attn.o_proj.weight", "model.layers.4.mlp.down_proj.weight"}) {
      std::vector<float> w = ToFloat(*weights_->Find(name));
      std::vector<float> mine = w, theirs = w;
      const int64_t rows = weights_->Find(name)->shape[0];
      const int64_t cols = weights_->Find(name)->shape[1];
      ours(name, mine, rows, cols);
      engine(name, theirs, rows, cols);
      if (f == AutoFormat::kNvfp4 && name.find("down_proj") != std::string::npos) {
        EXPECT_EQ(mine, w) << "172 columns: down_proj stays unquantized under uniform NVFP4";
      } else {
        EXPECT_EQ(mine, theirs) << name << " " << AutoFormatName(f);
      }
    }
  }
  // Fused q/k/v under NVFP4 share the group's amax: q_proj differs from its solo quantization
  // only when its own amax is below the group's.
  EXPECT_EQ(amax.count("model.layers.0.self_attn.q_proj"), 1u);
  EXPECT_EQ(amax.count("model.layers.0.self_attn.o_proj"), 0u);
}

}  // namespace
}  // namespace qf
