// Perplexity on stories260K: the reference's mean NLL of its 256 greedy tokens (an independent
// float64 implementation), the BOS convention, and agreement with a direct per-sequence
// computation over Model::ForwardLogits.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "quantforge/error.h"
#include "quantforge/eval.h"

namespace qf {
namespace {

const std::filesystem::path kModelDir = std::filesystem::path(QF_SHARED_DIR) / "models/stories260K";

class Perplexity : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kModelDir / "hf/model.safetensors")) {
      GTEST_SKIP() << "stories260K not found under " << kModelDir;
    }
    model_ = Model::LoadDir(kModelDir / "hf", &pool_);
    std::ifstream in(kModelDir / "reference/greedy_t0_256.json");
    const nlohmann::json json = nlohmann::json::parse(in);
    tokens_ = json["token_ids"].get<std::vector<int32_t>>();
    reference_nll_ = json["mean_nll_of_generated_tokens_fp64"].get<double>();
  }
  ThreadPool pool_{2};
  std::unique_ptr<Model> model_;
  std::vector<int32_t> tokens_;
  double reference_nll_ = 0;
};

TEST_F(Perplexity, MatchesReferenceNll) {
  // BOS already in the data, no BOS added: one sequence of 257 predicts the 256 generated tokens.
  EvalOptions options;
  options.seq_len = 257;
  const EvalResult plain = EvaluatePerplexity(*model_, tokens_, options);
  EXPECT_EQ(plain.tokens, 256);
  EXPECT_EQ(plain.sequences, 1);
  EXPECT_NEAR(plain.nll, reference_nll_, 1e-4 * reference_nll_);
  EXPECT_DOUBLE_EQ(plain.perplexity, std::exp(plain.nll));
  // The same with BOS prepended by the evaluator to the text tokens.
  options.bos_id = 1;
  const EvalResult with_bos = EvaluatePerplexity(*model_, std::span(tokens_).subspan(1), options);
  EXPECT_EQ(with_bos.tokens, 256);
  EXPECT_DOUBLE_EQ(with_bos.nll, plain.nll);
}

TEST_F(Perplexity, MatchesDirectComputationAndBatching) {
  const std::span<const int32_t> stream = std::span(tokens_).subspan(1);  // 256 text tokens
  EvalOptions options;
  options.seq_len = 40;  // BOS + 39: 6 sequences, a 22-token tail dropped
  options.bos_id = 1;
  options.batch_tokens = 1;  // one sequence per forward
  const EvalResult one = EvaluatePerplexity(*model_, stream, options);
  options.batch_tokens = 4096;  // all six in one forward
  const EvalResult all = EvaluatePerplexity(*model_, stream, options);
  EXPECT_EQ(one.sequences, 6);
  EXPECT_EQ(one.tokens, 6 * 39);
  EXPECT_NEAR(one.nll, all.nll, 1e-6 * one.nll);

  double sum = 0;
  const int64_t vocab = model_->config().vocab_size;
  for (int s = 0; s < 6; ++s) {
    std::vector<int32_t> seq = {1};
    seq.insert(seq.end(), stream.begin() + s * 39, stream.begin() + (s + 1) * 39);
    const std::vector<float> logits = model_->ForwardLogits({{seq}});
    for (int i = 0; i < 39; ++i) {
      const float* row = logits.data() + i * vocab;
      double z = 0;
      for (int64_t v = 0; v < vocab; ++v) z += std::exp(double(row[v]));
      sum += std::log(z) - row[seq[i + 1]];
    }
  }
  EXPECT_NEAR(all.nll, sum / (6 * 39), 1e-6 * all.nll);

  options.max_tokens = 100;  // two sequences of 39 data tokens
  EXPECT_EQ(EvaluatePerplexity(*model_, stream, options).sequences, 2);
}

TEST_F(Perplexity, Errors) {
  EvalOptions options;
  options.seq_len = 513;
  try {
    EvaluatePerplexity(*model_, tokens_, options);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_position_embeddings 512"), std::string::npos);
  }
  options.seq_len = 300;
  try {
    EvaluatePerplexity(*model_, tokens_, options);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data too short: 257 tokens"), std::string::npos)
        << e.what();
  }
  options.seq_len = 1;
  EXPECT_THROW(EvaluatePerplexity(*model_, tokens_, options), Error);
}

}  // namespace
}  // namespace qf
