// Every built-in preset loads, and its key decisions on Llama-named quantizers (Nemotron-H names
// for the Mamba-MoE presets) are the ones ModelOpt's preset of the same name makes.
#include <gtest/gtest.h>

#include <map>

#include "quantforge/recipe.h"

namespace qf {
namespace {

constexpr const char* kQ = "model.layers.0.self_attn.q_proj";
constexpr const char* kO = "model.layers.0.self_attn.o_proj";
constexpr const char* kDown = "model.layers.0.mlp.down_proj";
constexpr const char* kExpert = "model.layers.0.mlp.experts.3.down_proj";
constexpr const char* kLmHead = "lm_head";
constexpr const char* kAttn = "model.layers.0.self_attn";

std::string Weight(const Recipe& r, const std::string& module) {
  return FormatToString(r.Resolve(module + ".weight_quantizer").Format(QuantizerRole::kWeight));
}
std::string Input(const Recipe& r, const std::string& module) {
  return FormatToString(r.Resolve(module + ".input_quantizer").Format(QuantizerRole::kInput));
}
std::string Kv(const Recipe& r, const std::string& attn) {
  return FormatToString(
      r.Resolve(attn + ".k_bmm_quantizer", "attention").Format(QuantizerRole::kKvCache));
}
bool StartsWith(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

TEST(PresetsTest, EveryPresetLoads) {
  const std::vector<std::string> names = PresetNames();
  EXPECT_GE(names.size(), 39u);
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    const Recipe recipe = LoadRecipe(name);
    EXPECT_EQ(recipe.name, name);
    EXPECT_FALSE(recipe.rules.empty());
    EXPECT_FALSE(recipe.algorithms.empty());
  }
}

struct PresetCase {
  const char* name;
  const char* q_weight;
  const char* q_input;
  const char* down_weight;
  const char* down_input;
  AlgorithmMethod method;
};

TEST(PresetsTest, KeyDecisionsOnLlamaNames) {
  const PresetCase cases[] = {
      {"NVFP4_DEFAULT_CFG", "nvfp4(dynamic)", "nvfp4(dynamic)", "nvfp4(dynamic)", "nvfp4(dynamic)",
       AlgorithmMethod::kMax},
      {"W4A16_NVFP4_CFG", "nvfp4(dynamic)", "none", "nvfp4(dynamic)", "none",
       AlgorithmMethod::kMax},
      {"NVFP4_FOUR_OVER_SIX_CFG", "nvfp4(static,4o6)", "nvfp4(dynamic)", "nvfp4(static,4o6)",
       "nvfp4(dynamic)", AlgorithmMethod::kMse},
      {"NVFP4_W4A4_WEIGHT_MSE_FP8_SWEEP_CFG", "nvfp4(static)", "nvfp4(dynamic)", "nvfp4(static)",
       "nvfp4(dynamic)", AlgorithmMethod::kMse},
      {"NVFP4_W4A4_WEIGHT_LOCAL_HESSIAN_CFG", "nvfp4(static)", "nvfp4(dynamic)", "nvfp4(static)",
       "nvfp4(dynamic)", AlgorithmMethod::kLocalHessian},
      {"NVFP4_MLP_ONLY_CFG", "none", "none", "nvfp4(dynamic)", "nvfp4(dynamic)",
       AlgorithmMethod::kMax},
      {"NVFP4_EXPERTS_ONLY_CFG", "none", "none", "none", "none", AlgorithmMethod::kMax},
      {"NVFP4_OMLP_ONLY_CFG", "none", "none", "nvfp4(dynamic)", "nvfp4(dynamic)",
       AlgorithmMethod::kMax},
      {"FP8_DEFAULT_CFG", "fp8", "fp8", "fp8", "fp8", AlgorithmMethod::kMax},
      {"FP8_PER_CHANNEL_PER_TOKEN_CFG", "fp8-per-channel", "fp8-per-token", "fp8-per-channel",
       "fp8-per-token", AlgorithmMethod::kMax},
      {"MXFP4_DEFAULT_CFG", "mxfp4", "mxfp4", "mxfp4", "mxfp4", AlgorithmMethod::kNone},
      {"MXFP8_DEFAULT_CFG", "mxfp8", "mxfp8", "mxfp8", "mxfp8", AlgorithmMethod::kNone},
      {"W4A8_MXFP4_FP8_CFG", "mxfp4", "fp8", "mxfp4", "fp8", AlgorithmMethod::kNone},
      {"MXFP4_MLP_WEIGHT_ONLY_CFG", "none", "none", "mxfp4", "none", AlgorithmMethod::kNone},
      {"NVFP4_AWQ_LITE_CFG", "nvfp4(dynamic)", "nvfp4(dynamic)", "nvfp4(dynamic)", "nvfp4(dynamic)",
       AlgorithmMethod::kAwqLite},
      {"NVFP4_SVDQUANT_DEFAULT_CFG", "nvfp4(dynamic)", "nvfp4(dynamic)", "nvfp4(dynamic)",
       "nvfp4(dynamic)", AlgorithmMethod::kSvdQuant},
  };
  for (const PresetCase& c : cases) {
    SCOPED_TRACE(c.name);
    const Recipe r = LoadRecipe(c.name);
    EXPECT_EQ(Weight(r, kQ), c.q_weight);
    EXPECT_EQ(Input(r, kQ), c.q_input);
    EXPECT_EQ(Weight(r, kDown), c.down_weight);
    EXPECT_EQ(Input(r, kDown), c.down_input);
    EXPECT_EQ(r.algorithm().method, c.method);
    // Default exclusions: lm_head, routers, the KV cache (no KV fragment) stay unquantized.
    EXPECT_EQ(Weight(r, kLmHead), "none");
    EXPECT_EQ(Weight(r, "model.layers.0.mlp.gate"), "none");
    EXPECT_EQ(Weight(r, "mtp.layers.0.mlp.down_proj"), "none");
    EXPECT_EQ(Weight(r, "model.visual.blocks.0.mlp.fc1"), "none");
    EXPECT_EQ(Kv(r, kAttn), "none");
  }
}

TEST(PresetsTest, ScopedPresetsOnMoeNames) {
  EXPECT_EQ(Weight(LoadRecipe("NVFP4_EXPERTS_ONLY_CFG"), kExpert), "nvfp4(dynamic)");
  EXPECT_EQ(
      Weight(LoadRecipe("NVFP4_EXPERTS_ONLY_CFG"), "model.layers.0.block_sparse_moe.experts.1.w1"),
      "nvfp4(dynamic)");
  EXPECT_EQ(Weight(LoadRecipe("NVFP4_EXPERTS_ONLY_CFG"), "model.layers.0.block_sparse_moe.gate"),
            "none");
  EXPECT_EQ(Weight(LoadRecipe("NVFP4_OMLP_ONLY_CFG"), kO), "nvfp4(dynamic)");
  EXPECT_EQ(Weight(LoadRecipe("NVFP4_MLP_ONLY_CFG"), kO), "none");
  EXPECT_EQ(Weight(LoadRecipe("NVFP4_MLP_ONLY_CFG"), "backbone.layers.2.mixer.up_proj"),
            "nvfp4(dynamic)");
  EXPECT_EQ(Weight(LoadRecipe("NVFP4_MLP_ONLY_CFG"), "model.layers.0.mlp.shared_expert_gate"),
            "none");
}

TEST(PresetsTest, FourOverSixAlgorithmParameters) {
  const AlgorithmConfig a = LoadRecipe("NVFP4_FOUR_OVER_SIX_CFG").algorithm();
  EXPECT_EQ(a.mse.start_multiplier, 1.0);
  EXPECT_EQ(a.mse.stop_multiplier, 1.5);
  EXPECT_EQ(a.mse.step_size, 0.5);
  EXPECT_FALSE(a.mse.fp8_scale_sweep);
  EXPECT_TRUE(LoadRecipe("NVFP4_W4A4_WEIGHT_MSE_FP8_SWEEP_CFG").algorithm().mse.fp8_scale_sweep);
}

TEST(PresetsTest, KvFragments) {
  const Recipe kv = LoadRecipe("FP8_KV_CFG");
  ASSERT_EQ(kv.rules.size(), 1u);  // no disable-all: it is merged into a body
  EXPECT_EQ(kv.rules[0].quantizer_name, "*[kv]_bmm_quantizer");
  EXPECT_EQ(Kv(kv, kAttn), "fp8-kv");
  EXPECT_TRUE(kv.Resolve(std::string(kAttn) + ".k_bmm_quantizer")
                  .Format(QuantizerRole::kKvCache)
                  .needs_calibration);
  EXPECT_EQ(Kv(LoadRecipe("NVFP4_DEFAULT_CFG+FP8_KV_CFG"), kAttn), "fp8-kv");
  EXPECT_TRUE(StartsWith(Kv(LoadRecipe("NVFP4_KV_CFG"), kAttn), "unsupported"));
  EXPECT_TRUE(StartsWith(Kv(LoadRecipe("FP8_AFFINE_KV_CFG"), kAttn),
                         "unsupported: unsupported quantizer attributes: bias"));
  const Recipe rotate = LoadRecipe("NVFP4_KV_ROTATE_CFG");
  EXPECT_EQ(
      FormatToString(
          rotate.Resolve(std::string(kAttn) + ".q_bmm_quantizer").Format(QuantizerRole::kKvCache)),
      "none");
}

TEST(PresetsTest, UnsupportedFormatsSayWhy) {
  const std::map<std::string, std::string> cases = {
      {"INT8_DEFAULT_CFG", "INT8 per-channel"},
      {"INT8_WEIGHT_ONLY_CFG", "INT8 per-channel"},
      {"INT8_SMOOTHQUANT_CFG", "INT8"},
      {"INT4_AWQ_CFG", "INT4 block"},
      {"INT4_BLOCKWISE_WEIGHT_ONLY_CFG", "INT4 block"},
      {"W4A8_AWQ_BETA_CFG", "sequential cfg"},
      {"W4A8_NVFP4_FP8_CFG", "32-element blocks"},
      {"NVFP4_MLP_WEIGHT_ONLY_CFG", "32-element blocks"},
      {"FP8_2D_BLOCKWISE_WEIGHT_ONLY_CFG", "2-D blocks"},
      {"MXFP6_DEFAULT_CFG", "MXFP6"},
      {"MXINT8_DEFAULT_CFG", "INT8 block"},
  };
  for (const auto& [name, needle] : cases) {
    SCOPED_TRACE(name);
    const std::string weight = Weight(LoadRecipe(name), kDown);
    EXPECT_TRUE(StartsWith(weight, "unsupported")) << weight;
    EXPECT_NE(weight.find(needle), std::string::npos) << weight;
  }
}

TEST(PresetsTest, MambaMoePresetsOnNemotronHNames) {
  const std::string expert = "backbone.layers.1.mixer.experts.5.up_proj";
  const std::string shared = "backbone.layers.1.mixer.shared_experts.up_proj";
  const std::string in_proj = "backbone.layers.0.mixer.in_proj";
  const std::string out_proj = "backbone.layers.0.mixer.out_proj";
  const std::string q_proj = "backbone.layers.3.mixer.q_proj";
  const std::string latent = "backbone.layers.1.mixer.fc1_latent_proj";
  struct Case {
    const char* name;
    const char* body;   // experts and shared experts
    const char* mamba;  // in_proj / out_proj
  };
  const Case cases[] = {
      {"mamba_moe_nvfp4_aggressive", "nvfp4(dynamic)", "nvfp4(dynamic)"},
      {"mamba_moe_nvfp4_conservative", "nvfp4(dynamic)", "none"},
      {"mamba_moe_fp8_aggressive", "fp8", "fp8"},
      {"mamba_moe_fp8_conservative", "fp8", "none"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const Recipe r = LoadRecipe(c.name);
    EXPECT_EQ(Weight(r, expert), c.body);
    EXPECT_EQ(Input(r, expert), c.body);
    EXPECT_EQ(Weight(r, shared), c.body);
    EXPECT_EQ(Weight(r, in_proj), c.mamba);
    EXPECT_EQ(Input(r, out_proj), c.mamba);
    EXPECT_EQ(Weight(r, q_proj), "none");  // mamba_moe_disabled_quantizers: attention stays BF16
    EXPECT_EQ(Weight(r, latent), "none");
    EXPECT_EQ(Weight(r, "backbone.layers.0.mixer.conv1d"), "none");
    EXPECT_EQ(Weight(r, "lm_head"), "none");
  }
}

}  // namespace
}  // namespace qf
