// Whole-model backward: dL/dY of every decoder Linear module against central differences of a
// double-precision reference forward with an offset on that module's output (every element, on
// tiny models: GQA, biases, tied embeddings, sliding window); module inputs against the
// reference; the loss against qf::EvaluatePerplexity; visit order; thread-count independence;
// layerwise against resident weights; errors; and the shared stories260K checkpoint when
// present.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "quantforge/error.h"
#include "quantforge/eval.h"
#include "quantforge/grad.h"
#include "tests/grad/fd_check.h"
#include "tests/grad/reference_llama.h"

namespace qf {
namespace {

using grad_test::CentralDifference;
using grad_test::ExpectGradientsMatch;
using grad_test::InMemoryWeights;
using grad_test::OutputOffset;
using grad_test::ReferenceForward;

struct Captured {
  std::string module;
  int64_t layer = 0;
  int64_t in_features = 0, out_features = 0, rows = 0;
  std::vector<float> input, grad_output, weight;
};

std::vector<Captured> RunBackward(const GradientModel& model,
                                  const std::vector<std::vector<int32_t>>& sequences,
                                  GradResult* result = nullptr) {
  TokenBatch batch;
  for (const auto& seq : sequences) batch.sequences.emplace_back(seq);
  std::vector<Captured> out;
  const GradResult r = model.Backward(batch, [&](const LinearGradient& g) {
    out.push_back({std::string(g.module), g.layer, g.in_features, g.out_features, g.rows,
                   std::vector<float>(g.input, g.input + g.rows * g.in_features),
                   std::vector<float>(g.grad_output, g.grad_output + g.rows * g.out_features),
                   std::vector<float>(g.weight, g.weight + g.out_features * g.in_features)});
  });
  if (result != nullptr) *result = r;
  return out;
}

std::vector<std::vector<int32_t>> RandomSequences(const std::vector<int64_t>& lengths,
                                                  int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::vector<int32_t>> seqs;
  for (const int64_t len : lengths) {
    auto& seq = seqs.emplace_back();
    for (int64_t i = 0; i < len; ++i) seq.push_back(static_cast<int32_t>(rng() % vocab));
  }
  return seqs;
}

void CheckAgainstFiniteDifferences(const ModelConfig& config, const std::string& name) {
  const InMemoryWeights weights = grad_test::TinyWeights(config, 100);
  ThreadPool pool(2);
  const auto model = GradientModel::Load(config, weights, &pool);
  const auto seqs = RandomSequences({6, 1, 5}, config.vocab_size, 7);
  GradResult result;
  const std::vector<Captured> grads = RunBackward(*model, seqs, &result);
  const grad_test::ReferenceResult ref = ReferenceForward(config, weights, seqs);
  EXPECT_EQ(result.tokens, 5 + 0 + 4);
  EXPECT_NEAR(result.loss, ref.loss, 1e-5 * ref.loss) << name;

  // Visit order: layers last to first; down, gate, up, o, q, k, v within a layer.
  const char* kOrder[] = {"mlp.down_proj",    "mlp.gate_proj",    "mlp.up_proj",
                          "self_attn.o_proj", "self_attn.q_proj", "self_attn.k_proj",
                          "self_attn.v_proj"};
  ASSERT_EQ(grads.size(), 7 * static_cast<size_t>(config.num_hidden_layers));
  for (size_t i = 0; i < grads.size(); ++i) {
    const int64_t layer = config.num_hidden_layers - 1 - static_cast<int64_t>(i / 7);
    const Captured& g = grads[i];
    ASSERT_EQ(g.module, "model.layers." + std::to_string(layer) + "." + kOrder[i % 7]);
    EXPECT_EQ(g.layer, layer);
    EXPECT_EQ(g.rows, 12);
    EXPECT_EQ(g.weight, weights.Values(g.module + ".weight")) << g.module;
    const std::vector<double>& ref_input = ref.inputs.at(g.module);
    EXPECT_EQ(static_cast<int64_t>(ref_input.size()), g.rows * g.in_features) << g.module;
    // Inputs are F32 forward activations: compared at the same relative tolerance.
    ExpectGradientsMatch(g.input, ref_input, name + " " + g.module + " input X");

    std::vector<double> numeric(g.grad_output.size());
    for (int64_t r = 0; r < g.rows; ++r) {
      for (int64_t c = 0; c < g.out_features; ++c) {
        numeric[r * g.out_features + c] = CentralDifference([&](double delta) {
          const OutputOffset offset{g.module, r, c, delta};
          return ReferenceForward(config, weights, seqs, &offset).loss;
        });
      }
    }
    ExpectGradientsMatch(g.grad_output, numeric, name + " " + g.module + " dL/dY");
    // The last token of each sequence (rows 5, 6, 11) reaches no scored logit: exactly 0.
    for (const int64_t last : {5, 6, 11}) {
      for (int64_t c = 0; c < g.out_features; ++c) {
        EXPECT_EQ(g.grad_output[last * g.out_features + c], 0.0f) << g.module << " row " << last;
      }
    }
  }
}

TEST(GradientModel, LlamaGqaMatchesFiniteDifferences) {
  CheckAgainstFiniteDifferences(grad_test::TinyConfig(2, false, false, 0), "llama");
}

TEST(GradientModel, TiedBiasedSlidingWindowMatchesFiniteDifferences) {
  // Mistral's sliding window, Llama's attention_bias / mlp_bias, tied embeddings.
  CheckAgainstFiniteDifferences(grad_test::TinyConfig(2, true, true, 3), "tied+bias+window");
}

TEST(GradientModel, LossEqualsEvaluatePerplexity) {
  for (const bool tied : {false, true}) {
    const ModelConfig config = grad_test::TinyConfig(2, tied, tied, tied ? 4 : 0);
    const InMemoryWeights weights = grad_test::TinyWeights(config, 200);
    ThreadPool pool(2);
    const auto model = Model::Load(config, weights, &pool);
    const auto grad_model = GradientModel::Load(config, weights, &pool);
    const auto seqs = RandomSequences({9, 9, 9}, config.vocab_size, 8);
    std::vector<int32_t> stream;
    for (const auto& s : seqs) stream.insert(stream.end(), s.begin(), s.end());
    EvalOptions options;
    options.seq_len = 9;
    const EvalResult eval = EvaluatePerplexity(*model, stream, options);
    GradResult result;
    RunBackward(*grad_model, seqs, &result);
    EXPECT_EQ(result.tokens, eval.tokens);
    EXPECT_NEAR(result.loss / static_cast<double>(result.tokens), eval.nll, 1e-5 * eval.nll)
        << "tied " << tied;
  }
}

TEST(GradientModel, SameBytesForAnyThreadCount) {
  const ModelConfig config = grad_test::TinyConfig(2, false, true, 0);
  const InMemoryWeights weights = grad_test::TinyWeights(config, 300);
  const auto seqs = RandomSequences({130, 7, 125}, config.vocab_size, 9);
  const auto serial = GradientModel::Load(config, weights, nullptr);
  ThreadPool pool(3);
  const auto parallel = GradientModel::Load(config, weights, &pool);
  GradResult r1, r3;
  const std::vector<Captured> g1 = RunBackward(*serial, seqs, &r1);
  const std::vector<Captured> g3 = RunBackward(*parallel, seqs, &r3);
  EXPECT_EQ(std::memcmp(&r1.loss, &r3.loss, sizeof(double)), 0);
  ASSERT_EQ(g1.size(), g3.size());
  for (size_t i = 0; i < g1.size(); ++i) {
    EXPECT_EQ(g1[i].input, g3[i].input) << g1[i].module;
    EXPECT_EQ(g1[i].grad_output, g3[i].grad_output) << g1[i].module;
  }
}

TEST(GradientModel, LayerwiseIsBitIdenticalToResident) {
  for (const bool tied : {false, true}) {
    const ModelConfig config = grad_test::TinyConfig(3, tied, !tied, tied ? 5 : 0);
    const InMemoryWeights weights = grad_test::TinyWeights(config, 500);
    const auto seqs = RandomSequences({20, 1, 33}, config.vocab_size, 11);
    ThreadPool pool(2);
    const auto resident = GradientModel::Load(config, weights, &pool);
    const auto layerwise = GradientModel::Load(config, weights, &pool, {.layerwise = true});
    GradResult r1, r2;
    const std::vector<Captured> g1 = RunBackward(*resident, seqs, &r1);
    const std::vector<Captured> g2 = RunBackward(*layerwise, seqs, &r2);
    EXPECT_EQ(std::memcmp(&r1.loss, &r2.loss, sizeof(double)), 0) << "tied " << tied;
    ASSERT_EQ(g1.size(), g2.size());
    for (size_t i = 0; i < g1.size(); ++i) {
      EXPECT_EQ(g1[i].module, g2[i].module);
      EXPECT_EQ(g1[i].input, g2[i].input) << g1[i].module;
      EXPECT_EQ(g1[i].grad_output, g2[i].grad_output) << g1[i].module;
      EXPECT_EQ(g1[i].weight, g2[i].weight) << g1[i].module;
    }
  }
}

TEST(GradientModel, RefusesBadBatches) {
  const ModelConfig config = grad_test::TinyConfig(1, false, false, 0);
  const InMemoryWeights weights = grad_test::TinyWeights(config, 400);
  const auto model = GradientModel::Load(config, weights, nullptr);
  const auto error_of = [&](const std::vector<std::vector<int32_t>>& seqs) -> std::string {
    try {
      RunBackward(*model, seqs);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error_of({{1, 2}, {}}).find("empty"), std::string::npos);
  EXPECT_NE(error_of({{1, 32}}).find("outside the vocabulary"), std::string::npos);
  EXPECT_NE(error_of({std::vector<int32_t>(161, 1)}).find("max_position_embeddings"),
            std::string::npos);
  EXPECT_NE(error_of({}).find("empty batch"), std::string::npos);
}

TEST(GradientModel, Stories260KLossEqualsEvaluatePerplexity) {
  const std::filesystem::path dir = std::filesystem::path(QF_SHARED_DIR) / "models/stories260K/hf";
  if (!std::filesystem::exists(dir / "model.safetensors")) GTEST_SKIP() << dir << " not found";
  ThreadPool pool(2);
  const auto model = Model::LoadDir(dir, &pool);
  // Layerwise from the checkpoint the model owns (LoadDir).
  const auto grad_model = GradientModel::LoadDir(dir, &pool, {.layerwise = true});
  const auto seqs = RandomSequences({64, 64}, grad_model->config().vocab_size, 10);
  std::vector<int32_t> stream;
  for (const auto& s : seqs) stream.insert(stream.end(), s.begin(), s.end());
  EvalOptions options;
  options.seq_len = 64;
  const EvalResult eval = EvaluatePerplexity(*model, stream, options);
  GradResult result;
  const std::vector<Captured> grads = RunBackward(*grad_model, seqs, &result);
  EXPECT_NEAR(result.loss / static_cast<double>(result.tokens), eval.nll, 1e-5 * eval.nll);
  EXPECT_EQ(grads.size(), 7 * static_cast<size_t>(grad_model->config().num_hidden_layers));
  for (const Captured& g : grads) {
    double sum_squares = 0.0;
    for (const float v : g.grad_output) {
      ASSERT_TRUE(std::isfinite(v)) << g.module;
      sum_squares += double(v) * v;
    }
    EXPECT_GT(sum_squares, 0.0) << g.module;
  }
}

}  // namespace
}  // namespace qf
