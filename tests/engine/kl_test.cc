// KL divergence and top-1 agreement: hand-computable cases of CompareNextToken, the evaluator's
// mean over predicted tokens against a direct computation on stories260K, and the refusals of
// eval (vocab mismatch, a reference with a shorter context, an unsupported architecture).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "quantforge/error.h"
#include "quantforge/eval.h"
#include "quantforge/synth.h"

namespace qf {
namespace {

namespace fs = std::filesystem;
const fs::path kModelDir = fs::path(QF_SHARED_DIR) / "models/stories260K";

TEST(Kl, HandComputedCases) {
  // P = softmax(0, 0) = (1/2, 1/2), Q = softmax(ln 3, 0) = (3/4, 1/4):
  // KL = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3). Argmax: P ties -> index 0, Q -> 0: agree.
  const std::vector<float> p = {0.0f, 0.0f};
  const std::vector<float> q = {static_cast<float>(std::log(3.0)), 0.0f};
  const NextTokenComparison c = CompareNextToken(p, q);
  EXPECT_NEAR(c.kl, 0.5 * std::log(4.0 / 3.0), 1e-7);  // ln 3 rounded to F32: ~1e-8 relative
  EXPECT_TRUE(c.top1_agrees);
  // Shifting logits changes nothing; swapping the argmax breaks agreement.
  const std::vector<float> shifted = {5.0f, 5.0f};
  EXPECT_NEAR(CompareNextToken(shifted, q).kl, c.kl, 1e-7);
  const NextTokenComparison d = CompareNextToken(q, std::vector<float>{0.0f, 1.0f});
  EXPECT_FALSE(d.top1_agrees);
  // Identical distributions: exactly 0.
  const std::vector<float> r = {0.3f, -2.0f, 7.5f, 1.0f};
  EXPECT_EQ(CompareNextToken(r, r).kl, 0.0);
  // Three tokens, P = (0.7, 0.2, 0.1) vs uniform Q: KL = sum p ln(3p).
  const std::vector<float> p3 = {std::log(0.7f), std::log(0.2f), std::log(0.1f)};
  const std::vector<float> u3 = {1.0f, 1.0f, 1.0f};
  const double expected = 0.7 * std::log(2.1) + 0.2 * std::log(0.6) + 0.1 * std::log(0.3);
  EXPECT_NEAR(CompareNextToken(p3, u3).kl, expected, 1e-6);
  EXPECT_GT(CompareNextToken(u3, p3).kl, 0.0);
}

class KlStories : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kModelDir / "hf/model.safetensors")) {
      GTEST_SKIP() << "stories260K not found under " << kModelDir;
    }
    std::ifstream in(kModelDir / "reference/greedy_t0_256.json");
    tokens_ = nlohmann::json::parse(in)["token_ids"].get<std::vector<int32_t>>();
  }
  ThreadPool pool_{2};
  std::vector<int32_t> tokens_;
};

TEST_F(KlStories, MeanOverPredictedTokensMatchesDirectComputation) {
  const auto model = Model::LoadDir(kModelDir / "hf", &pool_);
  LoadOptions load;
  load.weight_transform = MakeWeightFakeQuant(WeightFakeQuant::kNvfp4, &pool_);
  const auto quantized = Model::LoadDir(kModelDir / "hf", &pool_, load);
  const std::span<const int32_t> stream = std::span(tokens_).subspan(1);
  EvalOptions options;
  options.seq_len = 64;  // BOS + 63: 4 sequences
  options.bos_id = 1;
  options.batch_tokens = 128;  // two per forward
  options.reference = model.get();
  const EvalResult r = EvaluatePerplexity(*quantized, stream, options);
  ASSERT_EQ(r.tokens, 4 * 63);

  double kl = 0;
  int64_t agree = 0;
  const int64_t vocab = model->config().vocab_size;
  for (int s = 0; s < 4; ++s) {
    std::vector<int32_t> seq = {1};
    seq.insert(seq.end(), stream.begin() + s * 63, stream.begin() + (s + 1) * 63);
    const std::vector<float> p = model->ForwardLogits({{seq}});
    const std::vector<float> q = quantized->ForwardLogits({{seq}});
    for (int i = 0; i < 63; ++i) {
      // Direct: softmax in double, KL = sum p (ln p - ln q), argmax by scan.
      double zp = 0, zq = 0;
      for (int64_t v = 0; v < vocab; ++v) {
        zp += std::exp(double(p[i * vocab + v]));
        zq += std::exp(double(q[i * vocab + v]));
      }
      int64_t ap = 0, aq = 0;
      for (int64_t v = 0; v < vocab; ++v) {
        const double lp = p[i * vocab + v] - std::log(zp), lq = q[i * vocab + v] - std::log(zq);
        kl += std::exp(lp) * (lp - lq);
        if (p[i * vocab + v] > p[i * vocab + ap]) ap = v;
        if (q[i * vocab + v] > q[i * vocab + aq]) aq = v;
      }
      agree += ap == aq;
    }
  }
  EXPECT_NEAR(*r.kl, kl / r.tokens, 1e-9 + 1e-6 * kl / r.tokens);
  EXPECT_DOUBLE_EQ(*r.top1, double(agree) / r.tokens);
  EXPECT_GT(*r.kl, 0.0);
  EXPECT_LT(*r.top1, 1.0);
  EXPECT_GT(*r.top1, 0.5);

  // The model against itself.
  options.reference = quantized.get();
  const EvalResult self = EvaluatePerplexity(*quantized, stream, options);
  EXPECT_EQ(*self.kl, 0.0);
  EXPECT_EQ(*self.top1, 1.0);
  EXPECT_EQ(self.nll, r.nll);
}

// A generated Llama with a different vocabulary, or a shorter context, cannot be compared.
TEST_F(KlStories, ReferenceMustShareVocabAndContext) {
  const fs::path dir = fs::temp_directory_path() / ("qf_kl_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  GenerateLlamaCheckpoint(dir, *LlamaPreset("tiny"), {}, &pool_);  // vocab 256, context 2048
  const auto tiny = Model::LoadDir(dir, &pool_);
  const auto model = Model::LoadDir(kModelDir / "hf", &pool_);  // vocab 512, context 512
  EvalOptions options;
  options.seq_len = 64;
  options.reference = tiny.get();
  try {
    EvaluatePerplexity(*model, tokens_, options);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vocab_size 256 differs from the model's 512"),
              std::string::npos)
        << e.what();
  }
  std::vector<int32_t> small(tokens_.begin(), tokens_.end());
  for (int32_t& t : small) t %= 256;
  options.seq_len = 600;
  options.reference = model.get();
  try {
    EvaluatePerplexity(*tiny, small, options);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("longer than the reference model's context"),
              std::string::npos)
        << e.what();
  }
  // An unsupported architecture is refused before any weight is read.
  std::ifstream in(dir / "config.json");
  nlohmann::json config = nlohmann::json::parse(in);
  in.close();
  config["architectures"] = {"GPT2LMHeadModel"};
  std::ofstream(dir / "config.json") << config.dump();
  try {
    LoadModelConfig(dir);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unsupported architecture 'GPT2LMHeadModel'"),
              std::string::npos)
        << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qf
