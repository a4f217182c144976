// The model's quantizer hooks on stories260K: which weights and activation sites they see, that
// AmaxObserver's amax equals the brute-force maximum over every captured activation, that a hook
// may change activations, and that NVFP4 / FP8 weight fake quantization costs a little NLL.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "quantforge/eval.h"
#include "quantforge/model.h"

namespace qf {
namespace {

const std::filesystem::path kModelDir = std::filesystem::path(QF_SHARED_DIR) / "models/stories260K";

struct Captured {
  ActivationKind kind;
  int64_t layer;
  std::vector<std::string> modules;
  std::vector<float> values;  // rows x cols, densely copied
};

// Copies every activation it sees, then forwards it to `next` (if any).
class CaptureHooks final : public ForwardHooks {
 public:
  explicit CaptureHooks(ForwardHooks* next = nullptr) : next_(next) {}
  void OnActivation(const ActivationSite& site, float* x, int64_t rows, int64_t cols,
                    int64_t ld) override {
    Captured c{site.kind, site.layer, {site.modules.begin(), site.modules.end()}, {}};
    for (int64_t r = 0; r < rows; ++r)
      c.values.insert(c.values.end(), x + r * ld, x + r * ld + cols);
    captured.push_back(std::move(c));
    if (next_ != nullptr) next_->OnActivation(site, x, rows, cols, ld);
  }
  std::vector<Captured> captured;

 private:
  ForwardHooks* next_;
};

class Hooks : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kModelDir / "hf/model.safetensors")) {
      GTEST_SKIP() << "stories260K not found under " << kModelDir;
    }
    std::ifstream in(kModelDir / "reference/greedy_t0_256.json");
    tokens_ = nlohmann::json::parse(in)["token_ids"].get<std::vector<int32_t>>();
  }
  ThreadPool pool_{2};
  std::vector<int32_t> tokens_;
};

TEST_F(Hooks, WeightTransformSeesEveryLinearWeight) {
  std::vector<std::string> names;
  LoadOptions options;
  options.weight_transform = [&](const std::string& name, std::span<float> w, int64_t rows,
                                 int64_t cols) {
    names.push_back(name);
    EXPECT_EQ(static_cast<int64_t>(w.size()), rows * cols) << name;
  };
  const auto model = Model::LoadDir(kModelDir / "hf", &pool_, options);
  ASSERT_EQ(names.size(), 5u * 7 + 1);  // q k v o gate up down per layer, then tied lm_head
  EXPECT_EQ(names[0], "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(names[6], "model.layers.0.mlp.down_proj.weight");
  EXPECT_EQ(names.back(), "lm_head.weight");
  // An identity transform leaves the logits bit for bit unchanged.
  const auto plain = Model::LoadDir(kModelDir / "hf", &pool_);
  const std::span<const int32_t> seq(tokens_.data(), 50);
  const std::vector<float> a = model->ForwardLogits({{seq}});
  const std::vector<float> b = plain->ForwardLogits({{seq}});
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
}

TEST_F(Hooks, AmaxEqualsBruteForceMaximum) {
  const auto model = Model::LoadDir(kModelDir / "hf", &pool_);
  AmaxObserver observer;
  CaptureHooks capture(&observer);
  const std::span<const int32_t> all(tokens_);
  std::vector<float> hidden;
  // Two calibration batches, the second with two sequences.
  for (const TokenBatch& batch : {TokenBatch{{all.subspan(0, 100)}},
                                  TokenBatch{{all.subspan(100, 90), all.subspan(190, 67)}}}) {
    model->Forward(batch, hidden, &capture);
    std::vector<float> logits(batch.NumTokens() * 512);
    model->Logits(hidden.data(), batch.NumTokens(), logits.data(), &capture);
  }
  // Per batch: 5 layers x (qkv input, k, v, o input, gate|up input, down input) + lm_head input.
  ASSERT_EQ(capture.captured.size(), 2u * (5 * 6 + 1));
  EXPECT_EQ(capture.captured[1].kind, ActivationKind::kKey);
  EXPECT_EQ(capture.captured[1].values.size(), 100u * 4 * 8);  // tokens x kv_heads * head_dim
  EXPECT_EQ(capture.captured[30].modules, std::vector<std::string>{"lm_head"});

  std::map<std::string, float> brute;
  for (const Captured& c : capture.captured) {
    float m = 0;
    for (float v : c.values) m = std::max(m, std::abs(v));
    std::vector<std::string> keys;
    if (c.kind == ActivationKind::kLinearInput) {
      for (const auto& module : c.modules) keys.push_back(module + ".input_quantizer");
    } else {
      const std::string& module = c.modules[0];
      keys.push_back(module.substr(0, module.rfind('.') + 1) +
                     (c.kind == ActivationKind::kKey ? "k" : "v") + "_bmm_quantizer");
    }
    for (const auto& key : keys) brute[key] = std::max(brute[key], m);
  }
  EXPECT_EQ(observer.Amax(), brute);
  EXPECT_EQ(observer.Amax().size(), 5u * 9 + 1);  // 7 input quantizers + k/v bmm per layer
  EXPECT_EQ(observer.Amax().at("model.layers.2.self_attn.q_proj.input_quantizer"),
            observer.Amax().at("model.layers.2.self_attn.v_proj.input_quantizer"));

  // Independent check of the first site: layer 0's q_proj input is RMSNorm(embedding[token]).
  const auto weights = OpenCheckpointWeights(kModelDir / "hf");
  const TensorView embed = *weights->Find("model.embed_tokens.weight");
  const TensorView norm = *weights->Find("model.layers.0.input_layernorm.weight");
  const auto* e = reinterpret_cast<const float*>(embed.data.data());
  const auto* g = reinterpret_cast<const float*>(norm.data.data());
  double expected = 0;
  for (int32_t t : tokens_) {
    double ss = 0;
    for (int i = 0; i < 64; ++i) ss += double(e[t * 64 + i]) * e[t * 64 + i];
    const double inv = 1.0 / std::sqrt(ss / 64 + 1e-5);
    for (int i = 0; i < 64; ++i)
      expected = std::max(expected, std::abs(g[i] * e[t * 64 + i] * inv));
  }
  EXPECT_NEAR(observer.Amax().at("model.layers.0.self_attn.q_proj.input_quantizer"), expected,
              1e-6 * expected);
}

// Zeroes down_proj's input everywhere: the MLPs then add nothing.
class ZeroDownInput final : public ForwardHooks {
 public:
  void OnActivation(const ActivationSite& site, float* x, int64_t rows, int64_t cols,
                    int64_t ld) override {
    if (site.modules[0].ends_with("down_proj")) {
      for (int64_t r = 0; r < rows; ++r) std::fill(x + r * ld, x + r * ld + cols, 0.0f);
    }
  }
};

TEST_F(Hooks, HooksCanChangeActivations) {
  const auto model = Model::LoadDir(kModelDir / "hf", &pool_);
  ZeroDownInput zero;
  const TokenBatch batch{{std::span<const int32_t>(tokens_.data(), 30)}};
  std::vector<float> plain, zeroed;
  model->Forward(batch, plain);
  model->Forward(batch, zeroed, &zero);
  EXPECT_NE(plain, zeroed);
}

TEST_F(Hooks, WeightFakeQuantCostsLittleNll) {
  const std::span<const int32_t> stream = std::span<const int32_t>(tokens_).subspan(1);
  EvalOptions options;
  options.seq_len = 129;
  options.bos_id = 1;
  std::map<std::string, double> nll;
  for (const char* name : {"none", "bf16", "fp8", "nvfp4", "mxfp4"}) {
    LoadOptions load;
    load.weight_transform = MakeWeightFakeQuant(*ParseWeightFakeQuant(name), &pool_);
    const auto model = Model::LoadDir(kModelDir / "hf", &pool_, load);
    nll[name] = EvaluatePerplexity(*model, stream, options).nll;
  }
  // The reference text is the model's own greedy output, so its NLL is low (~0.46); 4-bit
  // weights of a 260K model move it visibly, 16- and 8-bit ones barely.
  EXPECT_NEAR(nll["bf16"], nll["none"], 0.01 * nll["none"]);
  EXPECT_NEAR(nll["fp8"], nll["none"], 0.1 * nll["none"]);
  EXPECT_GT(nll["nvfp4"], nll["none"]);
  EXPECT_LT(nll["nvfp4"], 3 * nll["none"]);
  EXPECT_GT(nll["mxfp4"], nll["none"]);
  EXPECT_FALSE(ParseWeightFakeQuant("int3").has_value());
}

}  // namespace
}  // namespace qf
