// Robustness of the loader on damaged input: seeded random edits of every built-in config must
// either parse or throw qf::Error (never another exception type, a crash or a hang), plus the
// inputs that once hung yaml-cpp 0.7's LoadAll.
#include <gtest/gtest.h>

#include <random>
#include <typeinfo>

#include "quantforge/error.h"
#include "quantforge/recipe.h"
#include "src/recipe/recipe_internal.h"

namespace qf {
namespace {

// Returns "" on success or qf::Error, else the unexpected exception's description.
std::string ParseOutcome(const std::string& text) {
  try {
    const Recipe recipe = ParseRecipe(text, "m.yaml");
    recipe.Resolve("m.layers.0.mlp.up_proj.weight_quantizer").Format(QuantizerRole::kWeight);
    recipe.Resolve("m.layers.0.self_attn.k_bmm_quantizer").Format(QuantizerRole::kKvCache);
  } catch (const Error&) {
  } catch (const std::exception& e) {
    return std::string(typeid(e).name()) + ": " + e.what();
  }
  return "";
}

TEST(LoaderMutationTest, InputsThatHungYamlCppLoadAll) {
  EXPECT_THROW(ParseRecipe(" , one scale per tensor.\nn: e4m3\naxis:\n", "m.yaml"), Error);
  EXPECT_THROW(ParseRecipe("imports: {}\n---\n , x\n", "m.yaml"), Error);
}

TEST(LoaderMutationTest, DocumentSplitting) {
  // A leading "---" (after comments) does not start an empty first document.
  EXPECT_EQ(ParseRecipe("# c\n---\nquant_cfg: []\n", "m.yaml").rules.size(), 0u);
  try {
    ParseRecipe("imports: {}\n---\nquant_cfg: []\n---\nquant_cfg: []\n", "m.yaml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("m.yaml:5: expected at most two YAML documents", 0), 0u)
        << e.what();
  }
  // Line numbers inside the second document are the file's.
  try {
    ParseRecipe("imports: {}\n---\n\n- {quantizer_name: '*', bogus: 1}\n", "m.yaml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("m.yaml:4:", 0), 0u) << e.what();
  }
}

TEST(LoaderMutationTest, RandomEditsGiveSuccessOrQfError) {
  std::vector<std::string> seeds;
  for (const recipe_internal::BuiltinConfig& config : recipe_internal::BuiltinConfigs()) {
    seeds.emplace_back(config.text);
  }
  std::mt19937 rng(20261123);
  const std::string alphabet = "-:{}[],'\"*?!#&|>\n  \t$.0123456789abekmnulxyz~";
  int parsed = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string text = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !text.empty(); ++e) {
      const size_t pos = rng() % text.size();
      switch (rng() % 3) {
        case 0:
          text[pos] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          text.erase(pos, 1 + rng() % 8);
          break;
        default:
          text.insert(pos, 1, alphabet[rng() % alphabet.size()]);
          break;
      }
    }
    const std::string outcome = ParseOutcome(text);
    ASSERT_EQ(outcome, "") << "iteration " << iter << " input:\n" << text;
    parsed += outcome.empty();
  }
  EXPECT_EQ(parsed, 3000);
}

}  // namespace
}  // namespace qf
