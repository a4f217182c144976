// Rule semantics of Recipe::Resolve (ModelOpt set_quantizer_by_cfg): entries in order, later
// wins; a cfg is a full replacement that enables unless enable: false; enable alone toggles and
// keeps the attributes; a quantizer no rule touches is ModelOpt's default (enabled INT8).
#include <gtest/gtest.h>

#include "quantforge/recipe.h"

namespace qf {
namespace {

Recipe Parse(const char* yaml) { return ParseRecipe(yaml, "rules.yaml"); }

TEST(ResolveTest, LaterRuleWins) {
  const Recipe recipe = Parse(R"(
quant_cfg:
  - {quantizer_name: '*', enable: false}
  - {quantizer_name: '*weight_quantizer', cfg: {num_bits: e4m3}}
  - {quantizer_name: '*mlp*weight_quantizer', cfg: {num_bits: e2m1, block_sizes: {-1: 16, type: dynamic, scale_bits: e4m3}}}
)");
  EXPECT_EQ(recipe.Resolve("l.mlp.up_proj.weight_quantizer").Format(QuantizerRole::kWeight).kind,
            QuantKind::kNvfp4);
  EXPECT_EQ(recipe.Resolve("l.attn.q_proj.weight_quantizer").Format(QuantizerRole::kWeight).kind,
            QuantKind::kFp8PerTensor);
  EXPECT_FALSE(recipe.Resolve("l.attn.q_proj.input_quantizer").enabled);
  const ResolvedQuantizer resolved = recipe.ResolveWithSource("l.mlp.up_proj.weight_quantizer");
  EXPECT_EQ(resolved.decided_by, 2);
  EXPECT_EQ(recipe.rules[2].source, "rules.yaml:5");
}

TEST(ResolveTest, CfgIsFullReplacement) {
  // The second cfg gives only num_bits: the earlier axis: 0 reverts to the default (per-tensor).
  const Recipe recipe = Parse(R"(
quant_cfg:
  - {quantizer_name: '*', cfg: {num_bits: e4m3, axis: 0}}
  - {quantizer_name: '*', cfg: {num_bits: e4m3}}
)");
  const QuantizerConfig cfg = recipe.Resolve("x.weight_quantizer");
  EXPECT_TRUE(cfg.enabled);
  EXPECT_FALSE(cfg.axis.has_value());
  EXPECT_EQ(cfg.Format(QuantizerRole::kWeight).kind, QuantKind::kFp8PerTensor);
}

TEST(ResolveTest, EnableOnlyTogglesAndKeepsAttributes) {
  const Recipe recipe = Parse(R"(
quant_cfg:
  - {quantizer_name: '*weight_quantizer', cfg: {num_bits: e4m3, axis: 0}}
  - {quantizer_name: '*', enable: false}
  - {quantizer_name: '*weight_quantizer', enable: true}
)");
  const QuantizerConfig cfg = recipe.Resolve("x.weight_quantizer");
  EXPECT_TRUE(cfg.enabled);
  ASSERT_TRUE(cfg.axis.has_value());
  EXPECT_EQ(cfg.Format(QuantizerRole::kWeight).kind, QuantKind::kFp8PerChannel);
}

TEST(ResolveTest, CfgWithEnableFalseConfiguresButDisables) {
  const Recipe recipe = Parse(R"(
quant_cfg:
  - {quantizer_name: '*', cfg: {num_bits: e4m3}, enable: false}
  - {quantizer_name: '*input_quantizer', enable: true}
)");
  EXPECT_FALSE(recipe.Resolve("x.weight_quantizer").enabled);
  const QuantizerConfig input = recipe.Resolve("x.input_quantizer");
  EXPECT_TRUE(input.enabled);
  EXPECT_EQ(input.num_bits, NumBits::kE4M3);
}

TEST(ResolveTest, UntouchedQuantizerIsModelOptDefault) {
  const Recipe recipe = Parse("quant_cfg:\n  - {quantizer_name: 'a.*', enable: false}\n");
  const ResolvedQuantizer resolved = recipe.ResolveWithSource("b.weight_quantizer");
  EXPECT_EQ(resolved.decided_by, -1);
  EXPECT_TRUE(resolved.config.enabled);
  EXPECT_EQ(resolved.config.num_bits, NumBits::kInt);
  EXPECT_EQ(resolved.config.int_bits, 8);
  EXPECT_EQ(resolved.config.Format(QuantizerRole::kWeight).kind, QuantKind::kUnsupported);
}

TEST(ResolveTest, ParentClassRestrictsRule) {
  const Recipe recipe = Parse(R"(
quant_cfg:
  - {quantizer_name: '*', cfg: {num_bits: e4m3}}
  - {quantizer_name: '*', parent_class: nn.Embedding, enable: false}
)");
  EXPECT_TRUE(recipe.Resolve("e.weight_quantizer", "nn.Linear").enabled);
  EXPECT_FALSE(recipe.Resolve("e.weight_quantizer", "nn.Embedding").enabled);
}

TEST(ResolveTest, FusedExpertsPluralNamesMatchSingularPatterns) {
  const Recipe recipe = Parse(R"(
quant_cfg:
  - {quantizer_name: '*', enable: false}
  - {quantizer_name: '*experts*weight_quantizer', cfg: {num_bits: e4m3}}
)");
  EXPECT_TRUE(recipe.Resolve("m.experts.gate_up_proj_weight_quantizers.7").enabled);
  EXPECT_FALSE(recipe.Resolve("m.experts.gate_up_proj_input_quantizers.7").enabled);
}

TEST(ResolveTest, WithKvCacheAppendsFragmentRules) {
  const Recipe body = LoadRecipe("NVFP4_DEFAULT_CFG");
  const Recipe kv = LoadRecipe("FP8_KV_CFG");
  EXPECT_FALSE(body.Resolve("a.self_attn.k_bmm_quantizer", "attention").enabled);
  const Recipe both = WithKvCache(body, kv);
  EXPECT_EQ(both.name, "NVFP4_DEFAULT_CFG+FP8_KV_CFG");
  EXPECT_EQ(both.rules.size(), body.rules.size() + kv.rules.size());
  EXPECT_EQ(
      both.Resolve("a.self_attn.k_bmm_quantizer", "attention").Format(QuantizerRole::kKvCache).kind,
      QuantKind::kFp8Kv);
  EXPECT_EQ(both.algorithm().method, AlgorithmMethod::kMax);
  // The '+' spelling gives the same rules.
  const Recipe joined = LoadRecipe("NVFP4_DEFAULT_CFG+FP8_KV_CFG");
  EXPECT_EQ(joined.rules.size(), both.rules.size());
  EXPECT_EQ(joined.name, both.name);
}

}  // namespace
}  // namespace qf
