// PlanCheckpoint on a Llama-named tensor list: which tensors are linear weights, the formats and
// reasons, KV-cache decisions on k_proj / v_proj, fusion groups, shape exclusions, MoE groups,
// and refusal of algorithms quantforge does not implement yet.
#include <gtest/gtest.h>

#include <map>

#include "quantforge/error.h"
#include "quantforge/recipe.h"

namespace qf {
namespace {

std::vector<TensorDesc> LlamaTensors(int64_t hidden = 64, int64_t intermediate = 128) {
  std::vector<TensorDesc> t;
  t.push_back({"model.embed_tokens.weight", DType::kBF16, {256, hidden}});
  for (int layer = 0; layer < 2; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
      t.push_back({p + "self_attn." + proj + ".weight", DType::kBF16, {hidden, hidden}});
    }
    t.push_back({p + "mlp.gate_proj.weight", DType::kBF16, {intermediate, hidden}});
    t.push_back({p + "mlp.up_proj.weight", DType::kBF16, {intermediate, hidden}});
    t.push_back({p + "mlp.down_proj.weight", DType::kBF16, {hidden, intermediate}});
    t.push_back({p + "input_layernorm.weight", DType::kBF16, {hidden}});
    t.push_back({p + "post_attention_layernorm.weight", DType::kBF16, {hidden}});
  }
  t.push_back({"model.norm.weight", DType::kBF16, {hidden}});
  t.push_back({"lm_head.weight", DType::kBF16, {256, hidden}});
  return t;
}

std::map<std::string, TensorPlan> ByName(const std::vector<TensorPlan>& plans) {
  std::map<std::string, TensorPlan> map;
  for (const TensorPlan& plan : plans) map[plan.tensor] = plan;
  return map;
}

TEST(PlanTest, LlamaNvfp4WithFp8Kv) {
  const std::vector<TensorDesc> tensors = LlamaTensors();
  const std::vector<TensorPlan> plans =
      PlanCheckpoint(LoadRecipe("NVFP4_DEFAULT_CFG+FP8_KV_CFG"), tensors);
  ASSERT_EQ(plans.size(), tensors.size());
  for (size_t i = 0; i < plans.size(); ++i)
    EXPECT_EQ(plans[i].tensor, tensors[i].name);  // order kept
  auto p = ByName(plans);

  const TensorPlan& q = p["model.layers.0.self_attn.q_proj.weight"];
  EXPECT_TRUE(q.is_linear_weight);
  EXPECT_EQ(q.module, "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(FormatToString(q.weight), "nvfp4(dynamic)");
  EXPECT_EQ(FormatToString(q.input), "nvfp4(dynamic)");
  EXPECT_TRUE(q.input.needs_calibration);
  EXPECT_FALSE(q.weight.needs_calibration);
  EXPECT_FALSE(q.excluded);
  EXPECT_EQ(q.fusion_group, "model.layers.0.self_attn.qkv");
  EXPECT_EQ(q.kv_cache.kind, QuantKind::kNone);  // KV decisions sit on k_proj and v_proj
  EXPECT_EQ(q.moe_input_group, "");

  EXPECT_EQ(p["model.layers.1.self_attn.k_proj.weight"].kv_cache.kind, QuantKind::kFp8Kv);
  EXPECT_EQ(p["model.layers.1.self_attn.v_proj.weight"].kv_cache.kind, QuantKind::kFp8Kv);
  EXPECT_EQ(p["model.layers.1.self_attn.v_proj.weight"].fusion_group,
            "model.layers.1.self_attn.qkv");
  EXPECT_EQ(p["model.layers.1.self_attn.o_proj.weight"].fusion_group, "");
  EXPECT_EQ(p["model.layers.0.mlp.gate_proj.weight"].fusion_group, "model.layers.0.mlp.gate_up");
  EXPECT_EQ(p["model.layers.0.mlp.up_proj.weight"].fusion_group, "model.layers.0.mlp.gate_up");
  EXPECT_EQ(p["model.layers.0.mlp.down_proj.weight"].fusion_group, "");

  const TensorPlan& head = p["lm_head.weight"];
  EXPECT_TRUE(head.is_linear_weight);
  EXPECT_TRUE(head.excluded);
  EXPECT_EQ(head.weight.kind, QuantKind::kNone);
  EXPECT_NE(head.reason.find("'*lm_head*'"), std::string::npos) << head.reason;
  EXPECT_NE(head.reason.find("builtin:configs/ptq/units/default_disabled_quantizers:"),
            std::string::npos)
      << head.reason;

  for (const char* name : {"model.embed_tokens.weight", "model.norm.weight",
                           "model.layers.0.input_layernorm.weight"}) {
    EXPECT_FALSE(p[name].is_linear_weight) << name;
    EXPECT_FALSE(p[name].excluded) << name;
    EXPECT_EQ(p[name].weight.kind, QuantKind::kNone) << name;
    EXPECT_FALSE(p[name].reason.empty()) << name;
  }
}

TEST(PlanTest, LastDimNotAMultipleOfTheBlockIsExcluded) {
  // in_features 100: not a multiple of 16 (NVFP4) nor 32 (MX); fine for FP8.
  const std::vector<TensorDesc> tensors = {
      {"m.layers.0.mlp.down_proj.weight", DType::kF32, {64, 100}},
      {"m.layers.0.mlp.up_proj.weight", DType::kF32, {100, 64}}};
  for (const char* preset : {"NVFP4_DEFAULT_CFG", "MXFP8_DEFAULT_CFG"}) {
    auto p = ByName(PlanCheckpoint(LoadRecipe(preset), tensors));
    const TensorPlan& down = p["m.layers.0.mlp.down_proj.weight"];
    EXPECT_TRUE(down.excluded) << preset;
    EXPECT_EQ(down.weight.kind, QuantKind::kNone);
    EXPECT_EQ(down.input.kind, QuantKind::kNone);
    EXPECT_NE(down.reason.find("last dimension 100 is not a multiple"), std::string::npos)
        << down.reason;
    EXPECT_FALSE(p["m.layers.0.mlp.up_proj.weight"].excluded) << preset;
  }
  auto fp8 = ByName(PlanCheckpoint(LoadRecipe("FP8_DEFAULT_CFG"), tensors));
  EXPECT_EQ(fp8["m.layers.0.mlp.down_proj.weight"].weight.kind, QuantKind::kFp8PerTensor);
}

TEST(PlanTest, UnsupportedAlgorithmsAreRefusedAtPlanTime) {
  const std::vector<TensorDesc> tensors = LlamaTensors();
  for (const char* preset : {"NVFP4_AWQ_LITE_CFG", "INT8_SMOOTHQUANT_CFG",
                             "NVFP4_SVDQUANT_DEFAULT_CFG"}) {
    try {
      PlanCheckpoint(LoadRecipe(preset), tensors);
      ADD_FAILURE() << preset;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("is not supported yet"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(PlanCheckpoint(LoadRecipe("MXFP4_DEFAULT_CFG"), tensors));  // algorithm: null
  // gptq and local_hessian run in the quantize pipeline (issue 5).
  const Recipe gptq = ParseRecipe("algorithm: gptq\nquant_cfg: []\n", "g.yaml");
  EXPECT_NO_THROW(PlanCheckpoint(gptq, tensors));
  EXPECT_NO_THROW(PlanCheckpoint(LoadRecipe("NVFP4_W4A4_WEIGHT_LOCAL_HESSIAN_CFG"), tensors));
}

TEST(PlanTest, MoeRoutersExpertsAndStackedExperts) {
  const std::vector<TensorDesc> tensors = {
      {"model.layers.0.mlp.gate.weight", DType::kBF16, {8, 64}},
      {"model.layers.0.mlp.experts.0.gate_proj.weight", DType::kBF16, {32, 64}},
      {"model.layers.0.mlp.experts.0.up_proj.weight", DType::kBF16, {32, 64}},
      {"model.layers.0.mlp.experts.0.down_proj.weight", DType::kBF16, {64, 32}},
      {"model.layers.0.mlp.experts.1.gate_proj.weight", DType::kBF16, {32, 64}},
      {"model.layers.0.mlp.experts.1.up_proj.weight", DType::kBF16, {32, 64}},
      {"model.layers.1.mlp.experts.gate_up_proj", DType::kBF16, {4, 64, 64}},
      {"model.layers.1.mlp.experts.down_proj", DType::kBF16, {4, 32, 64}},
      {"model.layers.0.mlp.experts.0.up_proj.bias", DType::kBF16, {32}},
      {"model.layers.0.mlp.experts.0.up_proj.weight_scale", DType::kF8E4M3, {32, 4}},
  };
  auto p = ByName(PlanCheckpoint(LoadRecipe("NVFP4_DEFAULT_CFG"), tensors));
  const TensorPlan& router = p["model.layers.0.mlp.gate.weight"];
  EXPECT_FALSE(router.is_linear_weight);
  EXPECT_TRUE(router.excluded);
  EXPECT_NE(router.reason.find("router"), std::string::npos);

  const TensorPlan& gate0 = p["model.layers.0.mlp.experts.0.gate_proj.weight"];
  EXPECT_EQ(gate0.weight.kind, QuantKind::kNvfp4);
  EXPECT_EQ(gate0.fusion_group, "model.layers.0.mlp.experts.0.gate_up");  // within ONE expert
  EXPECT_EQ(gate0.moe_input_group, "model.layers.0.mlp.experts.*.gate_proj");
  EXPECT_EQ(p["model.layers.0.mlp.experts.1.up_proj.weight"].fusion_group,
            "model.layers.0.mlp.experts.1.gate_up");
  EXPECT_EQ(p["model.layers.0.mlp.experts.0.down_proj.weight"].moe_input_group,
            "model.layers.0.mlp.experts.*.down_proj");

  const TensorPlan& stacked = p["model.layers.1.mlp.experts.gate_up_proj"];
  EXPECT_TRUE(stacked.is_linear_weight);
  EXPECT_EQ(stacked.weight.kind, QuantKind::kUnsupported);
  EXPECT_NE(stacked.reason.find("stacked 3-D expert"), std::string::npos);
  EXPECT_FALSE(p["model.layers.0.mlp.experts.0.up_proj.bias"].is_linear_weight);
  EXPECT_FALSE(p["model.layers.0.mlp.experts.0.up_proj.weight_scale"].is_linear_weight);
  // With experts disabled, a stacked tensor is simply excluded.
  const Recipe no_experts =
      ParseRecipe("quant_cfg:\n  - {quantizer_name: '*', enable: false}\n", "off.yaml");
  auto none = ByName(PlanCheckpoint(no_experts, tensors));
  EXPECT_TRUE(none["model.layers.1.mlp.experts.down_proj"].excluded);
  EXPECT_EQ(none["model.layers.1.mlp.experts.down_proj"].weight.kind, QuantKind::kNone);
}

TEST(PlanTest, InputWithoutWeightIsRefused) {
  const Recipe recipe = ParseRecipe(R"(
quant_cfg:
  - {quantizer_name: '*', enable: false}
  - {quantizer_name: '*input_quantizer', cfg: {num_bits: e4m3}}
)",
                                    "in.yaml");
  auto p = ByName(PlanCheckpoint(recipe, {{"a.proj.weight", DType::kBF16, {16, 16}}}));
  EXPECT_EQ(p["a.proj.weight"].input.kind, QuantKind::kUnsupported);
  EXPECT_FALSE(p["a.proj.weight"].excluded);
}

}  // namespace
}  // namespace qf
