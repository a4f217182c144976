// Fused-group scale unification: q/k/v and gate/up share the NVFP4 global amax and the input
// amax, gate/up of one expert share theirs, every routed expert of a layer shares the input
// amax, FP8 groups stay per shard, and a group mixing formats is refused.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "quantforge/error.h"
#include "quantforge/export.h"

namespace qf {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ExportFusion, GroupsFromNames) {
  const std::vector<std::string> names = {
      "m.layers.0.self_attn.q_proj",              // 0
      "m.layers.0.self_attn.k_proj",              // 1
      "m.layers.0.self_attn.v_proj",              // 2
      "m.layers.0.self_attn.o_proj",              // 3
      "m.layers.0.mlp.experts.0.gate_proj",       // 4
      "m.layers.0.mlp.experts.0.up_proj",         // 5
      "m.layers.0.mlp.experts.1.gate_proj",       // 6
      "m.layers.0.mlp.experts.1.up_proj",         // 7
      "m.layers.0.mlp.shared_experts.up_proj",    // 8: not a routed expert
      "m.layers.0.mlp.shared_experts.gate_proj",  // 9
      "m.layers.1.self_attn.q_proj",              // 10: alone in its attention
  };
  const FusionGroups g = FusionGroupsFromNames(names);
  EXPECT_THAT(g.fused, ElementsAre(ElementsAre(4, 5), ElementsAre(6, 7), ElementsAre(8, 9),
                                   ElementsAre(0, 1, 2)));
  EXPECT_THAT(g.experts, ElementsAre(ElementsAre(4, 6), ElementsAre(5, 7)));
}

TEST(ExportFusion, GroupsFromPlanKeys) {
  const std::vector<std::string> fusion = {"a.qkv", "a.qkv", "", "a.qkv", "b.gate_up"};
  const std::vector<std::string> moe = {"", "", "x.experts.*.up_proj", "", "x.experts.*.up_proj"};
  const FusionGroups g = FusionGroupsFromKeys(fusion, moe);
  EXPECT_THAT(g.fused, ElementsAre(ElementsAre(0, 1, 3)));  // b.gate_up has one member: no group
  EXPECT_THAT(g.experts, ElementsAre(ElementsAre(2, 4)));
}

TEST(ExportFusion, Nvfp4GroupSharesMaxima) {
  const std::vector<AmaxEntry> e = {
      {"q", QuantAlgo::kNvfp4, 1.0f, 3.0f},
      {"k", QuantAlgo::kNvfp4, 2.5f, 4.0f},
      {"v", QuantAlgo::kNvfp4, 0.5f, 2.0f},
      {"o", QuantAlgo::kNvfp4, 0.25f, 7.0f},  // not fused: keeps its own
  };
  const FusedAmax r = UnifyFusedAmax(e, {{{0, 1, 2}}, {}});
  EXPECT_THAT(r.weight_global_amax, ElementsAre(2.5f, 2.5f, 2.5f, 0.25f));
  EXPECT_THAT(r.input_amax, ElementsAre(4.0f, 4.0f, 4.0f, 7.0f));
}

TEST(ExportFusion, Fp8GroupsStayPerShard) {
  // Model Optimizer leaves FP8 q/k/v scales per shard; vLLM requantizes to the max.
  const std::vector<AmaxEntry> e = {{"q", QuantAlgo::kFp8, 1.0f, 3.0f},
                                    {"k", QuantAlgo::kFp8, 2.0f, 5.0f}};
  const FusedAmax r = UnifyFusedAmax(e, {{{0, 1}}, {}});
  EXPECT_THAT(r.weight_global_amax, ElementsAre(1.0f, 2.0f));
  EXPECT_THAT(r.input_amax, ElementsAre(3.0f, 5.0f));
}

TEST(ExportFusion, ExpertsShareInputAmaxButNotWeightAmax) {
  // Two experts; gate/up fused within each expert; expert 1 saw no tokens (no input amax).
  const std::vector<AmaxEntry> e = {{"e0.gate", QuantAlgo::kNvfp4, 1.0f, 2.0f},
                                    {"e0.up", QuantAlgo::kNvfp4, 3.0f, 2.0f},
                                    {"e1.gate", QuantAlgo::kNvfp4, 0.5f, std::nullopt},
                                    {"e1.up", QuantAlgo::kNvfp4, 0.75f, std::nullopt},
                                    {"e0.down", QuantAlgo::kNvfp4, 9.0f, 6.0f},
                                    {"e1.down", QuantAlgo::kNvfp4, 8.0f, 1.0f}};
  const FusionGroups g = {{{0, 1}, {2, 3}}, {{0, 2}, {1, 3}, {4, 5}}};
  const FusedAmax r = UnifyFusedAmax(e, g);
  // weight_scale_2 per expert (gate/up shared inside it), not across experts.
  EXPECT_THAT(r.weight_global_amax, ElementsAre(3.0f, 3.0f, 0.75f, 0.75f, 9.0f, 8.0f));
  // input_scale: one per projection over all experts; the token-less expert gets a finite one.
  EXPECT_THAT(r.input_amax, ElementsAre(2.0f, 2.0f, 2.0f, 2.0f, 6.0f, 6.0f));
}

TEST(ExportFusion, MixedFormatsInAGroupAreRefused) {
  const std::vector<AmaxEntry> e = {{"a.q_proj", QuantAlgo::kNvfp4, 1.0f, 1.0f},
                                    {"a.k_proj", QuantAlgo::kFp8, 1.0f, 1.0f}};
  try {
    UnifyFusedAmax(e, {{{0, 1}}, {}});
    FAIL();
  } catch (const Error& err) {
    EXPECT_THAT(err.what(), HasSubstr("a.q_proj (NVFP4) and a.k_proj (FP8)"));
  }
  EXPECT_THROW(UnifyFusedAmax(e, {{{0, 2}}, {}}), Error);
}

TEST(ExportFusion, UnifiedAmaxGivesIdenticalGlobalScales) {
  // End to end with the quantizer: q/k/v quantized with the shared global amax carry the same
  // weight_scale_2 bytes.
  std::vector<float> q(32 * 16, 0.01f), k(32 * 16, 0.02f);
  k[5] = 0.3f;
  const std::vector<AmaxEntry> e = {{"q", QuantAlgo::kNvfp4, 0.01f, {}},
                                    {"k", QuantAlgo::kNvfp4, 0.3f, {}}};
  const FusedAmax r = UnifyFusedAmax(e, {{{0, 1}}, {}});
  Nvfp4Options oq, ok;
  oq.global_amax = r.weight_global_amax[0];
  ok.global_amax = r.weight_global_amax[1];
  const Nvfp4Tensor tq = QuantizeNvfp4(MakeView(std::span<const float>(q), {32, 16}), oq);
  const Nvfp4Tensor tk = QuantizeNvfp4(MakeView(std::span<const float>(k), {32, 16}), ok);
  EXPECT_EQ(tq.global_scale, tk.global_scale);
  EXPECT_EQ(tq.global_scale, 0.3f / 2688.0f);
}

}  // namespace
}  // namespace qf
