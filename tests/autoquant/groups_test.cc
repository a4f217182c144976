// Decision groups and the cost model: which modules count, how they are grouped (q/k/v, gate/up,
// all experts of a layer), which formats each group can take, and bits per element.
#include <gtest/gtest.h>

#include <algorithm>

#include "quantforge/autoquant.h"
#include "quantforge/error.h"
#include "tests/autoquant/test_models.h"

namespace qf {
namespace {

const DecisionGroup* FindGroup(const std::vector<DecisionGroup>& groups, const std::string& name) {
  for (const DecisionGroup& g : groups) {
    if (g.name == name) return &g;
  }
  return nullptr;
}

TEST(AutoFormat, BitsIncludeScales) {
  EXPECT_EQ(BitsPerElement(AutoFormat::kNvfp4), 4.5);  // 4 + 8 / 16
  EXPECT_EQ(BitsPerElement(AutoFormat::kNvfp4FourOverSix), 4.5);
  EXPECT_EQ(BitsPerElement(AutoFormat::kMxfp4), 4.25);  // 4 + 8 / 32
  EXPECT_EQ(BitsPerElement(AutoFormat::kFp8), 8.0);     // per-tensor scale left out
  EXPECT_EQ(BitsPerElement(AutoFormat::kMxfp8), 8.25);  // 8 + 8 / 32
  EXPECT_EQ(BitsPerElement(AutoFormat::kNone), 16.0);   // BF16
}

TEST(AutoFormat, ParseListSortsAndAddsNone) {
  const std::vector<AutoFormat> f = ParseAutoFormatList("fp8,nvfp4");
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0], AutoFormat::kNvfp4);
  EXPECT_EQ(f[1], AutoFormat::kFp8);
  EXPECT_EQ(f[2], AutoFormat::kNone);
  EXPECT_EQ(ParseAutoFormatList("none,mxfp8,nvfp4-4o6,mxfp4").front(), AutoFormat::kMxfp4);
  EXPECT_THROW(ParseAutoFormatList("nvfp4,int4"), Error);
  EXPECT_THROW(ParseAutoFormatList("fp8,fp8"), Error);
  EXPECT_THROW(ParseAutoFormatList(""), Error);
}

TEST(DecisionGroups, LlamaFusedSiblingsShareAGroup) {
  const auto tensors = testing::LlamaTensors(2, 64, 32, 172);
  const std::vector<AutoFormat> formats = ParseAutoFormatList("nvfp4,fp8,none");
  const std::vector<DecisionGroup> groups = BuildDecisionGroups(tensors, formats);
  ASSERT_EQ(groups.size(), 8u);  // per layer: qkv, o_proj, gate_up, down_proj
  const DecisionGroup* qkv = FindGroup(groups, "model.layers.0.self_attn.qkv");
  ASSERT_NE(qkv, nullptr);
  EXPECT_EQ(qkv->modules.size(), 3u);
  EXPECT_EQ(qkv->num_elements, 64 * 64 + 2 * 32 * 64);
  EXPECT_EQ(qkv->candidates, formats);
  const DecisionGroup* gate_up = FindGroup(groups, "model.layers.1.mlp.gate_up");
  ASSERT_NE(gate_up, nullptr);
  EXPECT_EQ(gate_up->num_elements, 2 * 172 * 64);
  // 172 columns are not a multiple of 16: down_proj can be FP8 or BF16 only.
  const DecisionGroup* down = FindGroup(groups, "model.layers.0.mlp.down_proj");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->candidates, (std::vector<AutoFormat>{AutoFormat::kFp8, AutoFormat::kNone}));
  // lm_head, embeddings and norms are not counted.
  const int64_t per_layer = 64 * 64 * 2 + 2 * 32 * 64 + 3 * 172 * 64;
  EXPECT_EQ(TotalElements(groups), 2 * per_layer);
  for (const DecisionGroup& g : groups) EXPECT_EQ(g.name.find("lm_head"), std::string::npos);
  // Minimum: everything NVFP4 except the down_projs at FP8.
  const double min_bpe =
      (4.5 * static_cast<double>(2 * (per_layer - 172 * 64)) + 8.0 * 2 * 172 * 64) /
      static_cast<double>(2 * per_layer);
  EXPECT_DOUBLE_EQ(MinimumBpe(groups), min_bpe);
  EXPECT_EQ(MaximumBpe(groups), 16.0);
}

TEST(DecisionGroups, AllExpertsOfALayerAreOneGroupAndTheRouterIsOut) {
  const auto tensors = testing::MoeTensors(4);
  const std::vector<DecisionGroup> groups =
      BuildDecisionGroups(tensors, ParseAutoFormatList("nvfp4,fp8"));
  const DecisionGroup* experts = FindGroup(groups, "model.layers.0.mlp.experts.*");
  ASSERT_NE(experts, nullptr);
  EXPECT_EQ(experts->modules.size(), 12u);
  EXPECT_EQ(experts->num_elements, 4 * 3 * 32 * 64);
  // Fusion keys stay per expert: weight_scale_2 is shared by one expert's gate/up only.
  for (size_t i = 0; i < experts->modules.size(); ++i) {
    if (experts->modules[i] == "model.layers.0.mlp.experts.1.up_proj") {
      EXPECT_EQ(experts->fusion_keys[i], "model.layers.0.mlp.experts.1.gate_up");
    }
    if (experts->modules[i] == "model.layers.0.mlp.experts.1.down_proj") {
      EXPECT_EQ(experts->fusion_keys[i], "");
    }
  }
  for (const DecisionGroup& g : groups) {
    for (const std::string& m : g.modules) EXPECT_NE(m, "model.layers.0.mlp.gate") << g.name;
  }
  EXPECT_NE(FindGroup(groups, "model.layers.0.mlp.shared_expert.gate_up"), nullptr);
}

TEST(DecisionGroups, CountedElementsDoNotDependOnTheCandidates) {
  const auto tensors = testing::LlamaTensors(2, 64, 32, 172);
  const auto with_fp8 = BuildDecisionGroups(tensors, ParseAutoFormatList("nvfp4,fp8"));
  const auto nvfp4_only = BuildDecisionGroups(tensors, ParseAutoFormatList("nvfp4"));
  EXPECT_EQ(TotalElements(nvfp4_only), TotalElements(with_fp8));
  const DecisionGroup* down = FindGroup(nvfp4_only, "model.layers.1.mlp.down_proj");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->candidates, std::vector<AutoFormat>{AutoFormat::kNone});
}

TEST(DecisionGroups, LayersInNaturalOrder) {
  const auto groups =
      BuildDecisionGroups(testing::LlamaTensors(12, 64, 32, 64), ParseAutoFormatList("fp8"));
  ASSERT_EQ(groups.size(), 48u);
  EXPECT_EQ(groups[4].name, "model.layers.1.mlp.down_proj");
  EXPECT_EQ(groups[8].name, "model.layers.2.mlp.down_proj");  // not layers.10
  EXPECT_EQ(groups[44].name, "model.layers.11.mlp.down_proj");
}

TEST(DecisionGroups, NothingQuantizableIsAnError) {
  std::vector<TensorDesc> tensors = {{"lm_head.weight", DType::kBF16, {512, 64}}};
  EXPECT_THROW(BuildDecisionGroups(tensors, ParseAutoFormatList("nvfp4")), Error);
}

}  // namespace
}  // namespace qf
