// exclude_modules compression: hand-made cases that follow Model Optimizer's prefix-wildcard
// summary, fnmatch semantics as vLLM applies them, and a seeded property test that no emitted
// pattern ever matches a quantized module while every unquantized one stays covered.
#include <gtest/gtest.h>

#include <random>

#include "quantforge/export.h"
#include "src/util/fnmatch.h"

namespace qf {
namespace {

using Names = std::vector<std::string>;

TEST(ExportExclude, LmHeadAndRouters) {
  // Routers of every layer, every layer's experts quantized: no '.'-boundary prefix of a router
  // name is free of quantized modules, so the router names stay exact.
  const Names quantized = {"model.layers.0.mlp.experts.0.up_proj",
                           "model.layers.1.mlp.experts.0.up_proj"};
  const Names unquantized = {"lm_head", "model.layers.0.mlp.gate", "model.layers.1.mlp.gate"};
  EXPECT_EQ(CompressExcludeModules(unquantized, quantized),
            (Names{"lm_head", "model.layers.0.mlp.gate", "model.layers.1.mlp.gate"}));
}

TEST(ExportExclude, WholeLayerBecomesOnePattern) {
  // Layer 1 entirely unquantized while layer 10 is quantized: "model.layers.1*" would also match
  // layer 10, so the pair form "model.layers.1.*" is chosen (Model Optimizer keeps the ".*"
  // member of the pair).
  Names quantized, unquantized;
  for (const char* leaf : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
    quantized.push_back(std::string("model.layers.10.self_attn.") + leaf);
    unquantized.push_back(std::string("model.layers.1.self_attn.") + leaf);
  }
  EXPECT_EQ(CompressExcludeModules(unquantized, quantized), (Names{"model.layers.1.*"}));
  // Without layer 10 the shorter prefix wildcard is safe.
  quantized = {"model.layers.0.self_attn.q_proj"};
  EXPECT_EQ(CompressExcludeModules(unquantized, quantized), (Names{"model.layers.1*"}));
}

TEST(ExportExclude, SiblingOfAQuantizedModuleStaysExact) {
  // Every '.'-boundary prefix of "m.a.q_proj" also prefixes a quantized module: only the exact
  // name is safe ("m.a.q_proj*" is never tried: it would match "m.a.q_proj_lora").
  const Names quantized = {"m.a.q_proj_lora", "m.a.k_proj"};
  EXPECT_EQ(CompressExcludeModules(Names{"m.a.q_proj"}, quantized), (Names{"m.a.q_proj"}));
  EXPECT_EQ(CompressExcludeModules(Names{}, quantized), Names{});
}

TEST(ExportExclude, RandomTreesNeverMatchAQuantizedModule) {
  // Seeded property test over generated module trees: names "model.layers.<L>.<block>.<leaf>"
  // with L up to 23 (so prefixes like "layers.1" / "layers.12" collide), each module
  // quantized with probability p.
  const std::vector<std::string> blocks = {"self_attn", "mlp", "mlp.experts.0", "mlp.experts.1",
                                           "mixer"};
  const std::vector<std::string> leaves = {"q_proj",    "k_proj",  "v_proj",    "o_proj", "gate",
                                           "gate_proj", "up_proj", "down_proj", "in_proj"};
  std::mt19937 gen(20261123);
  for (int trial = 0; trial < 200; ++trial) {
    std::bernoulli_distribution quantize(trial % 4 == 0 ? 0.1 : 0.7);
    std::uniform_int_distribution<int> num_layers(1, 24);
    Names quantized, unquantized = {"lm_head"};
    const int layers = num_layers(gen);
    for (int l = 0; l < layers; ++l) {
      for (const std::string& b : blocks) {
        for (const std::string& leaf : leaves) {
          const std::string name = "model.layers." + std::to_string(l) + "." + b + "." + leaf;
          (quantize(gen) ? quantized : unquantized).push_back(name);
        }
      }
    }
    const Names patterns = CompressExcludeModules(unquantized, quantized);
    for (const std::string& p : patterns) {
      for (const std::string& q : quantized) {
        ASSERT_FALSE(FnMatch(p, q))
            << "trial " << trial << ": pattern '" << p << "' matches quantized '" << q << "'";
      }
    }
    for (const std::string& u : unquantized) {
      bool covered = false;
      for (const std::string& p : patterns) covered |= FnMatch(p, u);
      ASSERT_TRUE(covered) << "trial " << trial << ": '" << u << "' not excluded";
    }
    ASSERT_LE(patterns.size(), unquantized.size());
  }
}

}  // namespace
}  // namespace qf
