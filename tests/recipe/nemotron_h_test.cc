// The Nemotron-3 Ultra-style recipe quoted in issue 3, applied to a generated Nemotron-H tensor
// list (Mamba, MoE and attention layers): every tensor must get exactly the formats the recipe
// implies. The expectations are written per tensor kind below, independently of the planner.
#include <gtest/gtest.h>

#include "quantforge/recipe.h"

namespace qf {
namespace {

// Copied from issue 3.
constexpr const char* kIssueRecipe = R"(quantize:
  algorithm: {method: mse, fp8_scale_sweep: false, start_multiplier: 1.0, stop_multiplier: 1.5, step_size: 0.5}
  quant_cfg:
    - {quantizer_name: '*', enable: false}
    - quantizer_name: '*mixer.experts.*weight_quantizer'
      enable: true
      cfg: {block_sizes: {-1: 16, type: static, scale_bits: e4m3, four_over_six: true}, num_bits: e2m1}
    - quantizer_name: '*mixer.experts.*input_quantizer'
      enable: true
      cfg: {block_sizes: {-1: 16, type: dynamic, scale_bits: e4m3}, num_bits: e2m1}
    - {quantizer_name: '*mixer.shared_experts*', enable: true, cfg: {num_bits: e4m3, axis: null}}
    - {quantizer_name: '*mixer.in_proj*', enable: true, cfg: {num_bits: e4m3, axis: null}}
    - {quantizer_name: '*mixer.out_proj*', enable: true, cfg: {num_bits: e4m3, axis: null}}
    - {quantizer_name: '*[kv]_bmm_quantizer', enable: true, cfg: {num_bits: e4m3}}
)";

enum class Kind { kRoutedExpert, kSharedExpert, kMambaProj, kAttention, kRouter, kLmHead, kOther };

struct Tensor {
  TensorDesc desc;
  Kind kind;
};

// Nemotron-H pattern "MEM*E": Mamba, MoE, Mamba, attention, MoE; hidden 64, 4 routed experts.
std::vector<Tensor> NemotronHTensors() {
  constexpr int64_t kHidden = 64, kExperts = 4, kMoeInter = 32, kMambaInter = 128, kHeads = 8;
  std::vector<Tensor> t;
  auto add = [&](std::string name, Shape shape, Kind kind) {
    t.push_back({{std::move(name), DType::kBF16, std::move(shape)}, kind});
  };
  add("backbone.embeddings.weight", {512, kHidden}, Kind::kOther);
  const std::string pattern = "MEM*E";
  for (size_t layer = 0; layer < pattern.size(); ++layer) {
    const std::string p = "backbone.layers." + std::to_string(layer) + ".";
    add(p + "norm.weight", {kHidden}, Kind::kOther);
    switch (pattern[layer]) {
      case 'M':
        add(p + "mixer.in_proj.weight", {2 * kMambaInter + 2 * 16 + kHeads, kHidden},
            Kind::kMambaProj);
        add(p + "mixer.conv1d.weight", {kMambaInter + 32, 1, 4}, Kind::kOther);
        add(p + "mixer.conv1d.bias", {kMambaInter + 32}, Kind::kOther);
        add(p + "mixer.A_log", {kHeads}, Kind::kOther);
        add(p + "mixer.D", {kHeads}, Kind::kOther);
        add(p + "mixer.dt_bias", {kHeads}, Kind::kOther);
        add(p + "mixer.norm.weight", {kMambaInter}, Kind::kOther);
        add(p + "mixer.out_proj.weight", {kHidden, kMambaInter}, Kind::kMambaProj);
        break;
      case 'E':
        add(p + "mixer.gate.weight", {kExperts, kHidden}, Kind::kRouter);
        add(p + "mixer.gate.e_score_correction_bias", {kExperts}, Kind::kOther);
        for (int e = 0; e < kExperts; ++e) {
          const std::string x = p + "mixer.experts." + std::to_string(e) + ".";
          add(x + "up_proj.weight", {kMoeInter, kHidden}, Kind::kRoutedExpert);
          add(x + "down_proj.weight", {kHidden, kMoeInter}, Kind::kRoutedExpert);
        }
        add(p + "mixer.shared_experts.up_proj.weight", {2 * kMoeInter, kHidden},
            Kind::kSharedExpert);
        add(p + "mixer.shared_experts.down_proj.weight", {kHidden, 2 * kMoeInter},
            Kind::kSharedExpert);
        break;
      case '*':
        for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
          add(p + "mixer." + proj + ".weight", {kHidden, kHidden}, Kind::kAttention);
        }
        break;
    }
  }
  add("backbone.norm_f.weight", {kHidden}, Kind::kOther);
  add("lm_head.weight", {512, kHidden}, Kind::kLmHead);
  return t;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

TEST(NemotronHTest, IssueRecipeYieldsExactlyTheImpliedFormats) {
  const Recipe recipe = ParseRecipe(kIssueRecipe, "issue3.yaml");
  ASSERT_EQ(recipe.algorithms.size(), 1u);
  EXPECT_EQ(recipe.algorithm().method, AlgorithmMethod::kMse);
  EXPECT_EQ(recipe.algorithm().mse.start_multiplier, 1.0);
  EXPECT_EQ(recipe.algorithm().mse.stop_multiplier, 1.5);
  EXPECT_EQ(recipe.algorithm().mse.step_size, 0.5);
  EXPECT_FALSE(recipe.algorithm().mse.fp8_scale_sweep);

  const std::vector<Tensor> tensors = NemotronHTensors();
  std::vector<TensorDesc> descs;
  for (const Tensor& t : tensors) descs.push_back(t.desc);
  const std::vector<TensorPlan> plans = PlanCheckpoint(recipe, descs);
  ASSERT_EQ(plans.size(), tensors.size());

  int counts[7] = {};
  for (size_t i = 0; i < plans.size(); ++i) {
    const TensorPlan& plan = plans[i];
    const std::string& name = tensors[i].desc.name;
    SCOPED_TRACE(name);
    ++counts[static_cast<int>(tensors[i].kind)];
    std::string weight = "none", input = "none", kv = "none";
    bool linear = true, excluded = false;
    std::string moe_group;
    switch (tensors[i].kind) {
      case Kind::kRoutedExpert:
        weight = "nvfp4(static,4o6)";
        input = "nvfp4(dynamic)";
        moe_group = name.substr(0, name.find(".experts.") + 9) + "*" +
                    name.substr(name.find('.', name.find(".experts.") + 9), std::string::npos);
        moe_group = moe_group.substr(0, moe_group.size() - 7);  // drop ".weight"
        break;
      case Kind::kSharedExpert:
      case Kind::kMambaProj:
        weight = input = "fp8";
        break;
      case Kind::kAttention:
        excluded = true;
        if (EndsWith(name, "k_proj.weight") || EndsWith(name, "v_proj.weight")) kv = "fp8-kv";
        break;
      case Kind::kLmHead:
        excluded = true;
        break;
      case Kind::kRouter:
        linear = false;
        excluded = true;
        break;
      case Kind::kOther:
        linear = false;
        break;
    }
    EXPECT_EQ(FormatToString(plan.weight), weight);
    EXPECT_EQ(FormatToString(plan.input), input);
    EXPECT_EQ(FormatToString(plan.kv_cache), kv);
    EXPECT_EQ(plan.is_linear_weight, linear);
    EXPECT_EQ(plan.excluded, excluded) << plan.reason;
    EXPECT_EQ(plan.moe_input_group, moe_group);
    EXPECT_EQ(plan.fusion_group,
              tensors[i].kind == Kind::kAttention && !EndsWith(name, "o_proj.weight")
                  ? name.substr(0, name.rfind(".", name.size() - 8)) + ".qkv"
                  : "");
    if (excluded && linear) {
      EXPECT_NE(plan.reason.find("rule 0 '*' (issue3.yaml:4)"), std::string::npos) << plan.reason;
    }
  }
  // The generated list covers every kind: 2 MoE layers x 4 experts x 2 projections, ...
  EXPECT_EQ(counts[static_cast<int>(Kind::kRoutedExpert)], 16);
  EXPECT_EQ(counts[static_cast<int>(Kind::kSharedExpert)], 4);
  EXPECT_EQ(counts[static_cast<int>(Kind::kMambaProj)], 4);
  EXPECT_EQ(counts[static_cast<int>(Kind::kAttention)], 4);
  EXPECT_EQ(counts[static_cast<int>(Kind::kRouter)], 2);
}

// The same recipe through ModelOpt's own layout (imports of the numerics units) plans identically.
TEST(NemotronHTest, ImportFormMatchesInlineForm) {
  const Recipe imported = ParseRecipe(R"(
imports:
  nvfp4_four_over_six: configs/numerics/nvfp4_four_over_six
  nvfp4: configs/numerics/nvfp4
  fp8: configs/numerics/fp8
quantize:
  algorithm: {method: mse, fp8_scale_sweep: false, start_multiplier: 1.0, stop_multiplier: 1.5, step_size: 0.5}
  quant_cfg:
    - {quantizer_name: '*', enable: false}
    - {quantizer_name: '*mixer.experts.*weight_quantizer', enable: true, cfg: {$import: nvfp4_four_over_six}}
    - {quantizer_name: '*mixer.experts.*input_quantizer', enable: true, cfg: {$import: nvfp4}}
    - {quantizer_name: '*mixer.shared_experts*', enable: true, cfg: {$import: fp8}}
    - {quantizer_name: '*mixer.in_proj*', enable: true, cfg: {$import: fp8}}
    - {quantizer_name: '*mixer.out_proj*', enable: true, cfg: {$import: fp8}}
    - {quantizer_name: '*[kv]_bmm_quantizer', enable: true, cfg: {$import: fp8}}
)",
                                      "ultra.yaml");
  const Recipe inline_form = ParseRecipe(kIssueRecipe, "issue3.yaml");
  std::vector<TensorDesc> descs;
  for (const Tensor& t : NemotronHTensors()) descs.push_back(t.desc);
  const std::vector<TensorPlan> a = PlanCheckpoint(imported, descs);
  const std::vector<TensorPlan> b = PlanCheckpoint(inline_form, descs);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(FormatToString(a[i].weight), FormatToString(b[i].weight)) << a[i].tensor;
    EXPECT_EQ(FormatToString(a[i].input), FormatToString(b[i].input)) << a[i].tensor;
    EXPECT_EQ(FormatToString(a[i].kv_cache), FormatToString(b[i].kv_cache)) << a[i].tensor;
  }
}

}  // namespace
}  // namespace qf
