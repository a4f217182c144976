// GlobMatch against Python fnmatch semantics (hand-derived expectations: fnmatch.translate turns
// the pattern into an anchored regex, `*` -> `.*`, so `*` crosses dots) and the fused-experts
// quantizer-name normalisation.
#include <gtest/gtest.h>

#include <random>

#include "quantforge/error.h"
#include "quantforge/recipe.h"
#include "src/recipe/recipe_internal.h"

namespace qf {
namespace {

struct GlobCase {
  const char* pattern;
  const char* name;
  bool match;
};

TEST(GlobTest, FnmatchSemantics) {
  const GlobCase cases[] = {
      {"*", "", true},       // * matches empty
      {"*", "a.b.c", true},  // * crosses dots
      {"*weight_quantizer", "model.layers.0.mlp.up_proj.weight_quantizer", true},
      {"*weight_quantizer", "model.layers.0.mlp.up_proj.weight_quantizer.x", false},  // anchored
      {"*mlp*weight_quantizer", "a.mlp.b.weight_quantizer", true},
      {"*mlp.gate.*", "model.layers.1.mlp.gate.weight_quantizer", true},
      {"*mlp.gate.*", "model.layers.1.mlp.gate_proj.weight_quantizer", false},  // '.' is literal
      {"mtp.*", "mtp.layers.0.weight_quantizer", true},
      {"mtp.*", "model.mtp.layers.0.weight_quantizer", false},  // anchored at start
      {"*[kv]_bmm_quantizer", "a.self_attn.k_bmm_quantizer", true},
      {"*[kv]_bmm_quantizer", "a.self_attn.v_bmm_quantizer", true},
      {"*[kv]_bmm_quantizer", "a.self_attn.q_bmm_quantizer", false},
      {"*[!q]_bmm_quantizer", "a.k_bmm_quantizer", true},  // negated class
      {"*[!q]_bmm_quantizer", "a.q_bmm_quantizer", false},
      {"layer[0-2].x", "layer1.x", true},  // range
      {"layer[0-2].x", "layer3.x", false},
      {"a[]]b", "a]b", true},  // ']' first is literal
      {"a[!]]b", "a]b", false},
      {"a[!]]b", "axb", true},
      {"a[x-]b", "a-b", true},  // trailing '-' literal
      {"?.weight_quantizer", "q.weight_quantizer", true},
      {"?.weight_quantizer", "qq.weight_quantizer", false},
      {"*.experts.*weight_quantizer", "m.experts.3.up_proj.weight_quantizer", true},
      {"*.experts.*weight_quantizer", "m.shared_experts.up_proj.weight_quantizer", false},
      {"*mixer.experts.*", "b.layers.1.mixer.experts.0.up_proj.input_quantizer", true},
      {"*mixer.experts.*", "b.layers.1.mixer.shared_experts.up_proj.input_quantizer", false},
      {"*lm_head*", "LM_HEAD.weight_quantizer", false},  // case-sensitive
      {"a*b*c", "abxbxc", true},                         // backtracking
      {"a*b*c", "abxbx", false},
  };
  for (const GlobCase& c : cases) {
    EXPECT_EQ(GlobMatch(c.pattern, c.name), c.match) << c.pattern << " vs " << c.name;
  }
}

// Independent reference: plain recursion over the fnmatch grammar (exponential in the worst case,
// fine for the short strings below).
bool ReferenceMatch(std::string_view p, std::string_view n) {
  if (p.empty()) return n.empty();
  if (p[0] == '*')
    return ReferenceMatch(p.substr(1), n) || (!n.empty() && ReferenceMatch(p, n.substr(1)));
  if (n.empty()) return false;
  if (p[0] == '?') return ReferenceMatch(p.substr(1), n.substr(1));
  if (p[0] == '[') {
    const bool negate = p.size() > 1 && p[1] == '!';
    const size_t close = p.find(']', negate ? 3 : 2);  // a ']' right after '[' / '[!' is literal
    const std::string_view set = p.substr(negate ? 2 : 1, close - (negate ? 2 : 1));
    const bool in = set.find(n[0]) != std::string_view::npos;
    return in != negate && ReferenceMatch(p.substr(close + 1), n.substr(1));
  }
  return p[0] == n[0] && ReferenceMatch(p.substr(1), n.substr(1));
}

TEST(GlobTest, RandomPatternsAgreeWithReference) {
  std::mt19937 rng(20261123);
  const std::vector<std::string> atoms = {"a", "b", ".", "*", "*", "?", "[ab]", "[!a]", "[.]"};
  const std::string letters = "ab.";
  int mismatches = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string pattern, name;
    const int pattern_atoms = static_cast<int>(rng() % 6);
    for (int i = 0; i < pattern_atoms; ++i) pattern += atoms[rng() % atoms.size()];
    const int name_len = static_cast<int>(rng() % 8);
    for (int i = 0; i < name_len; ++i) name += letters[rng() % letters.size()];
    if (pattern.empty()) continue;  // ValidateGlob rejects empty patterns
    const bool expected = ReferenceMatch(pattern, name);
    if (GlobMatch(pattern, name) != expected && ++mismatches <= 10) {
      ADD_FAILURE() << "pattern '" << pattern << "' name '" << name << "' expected " << expected;
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(GlobTest, UnclosedBracketIsAnError) {
  EXPECT_THROW(ValidateGlob("*[kv_bmm_quantizer"), Error);
  EXPECT_THROW(GlobMatch("a[!", "a"), Error);
  EXPECT_THROW(ValidateGlob(""), Error);
  try {
    ValidateGlob("*mlp[");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("column 5"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(ValidateGlob("*[kv]_bmm_quantizer"));
}

TEST(GlobTest, FusedExpertsNormalisation) {
  using recipe_internal::NormalizeFusedExpertsName;
  EXPECT_EQ(NormalizeFusedExpertsName("m.experts.gate_up_proj_weight_quantizers.3").value_or(""),
            "m.experts.gate_up_proj_weight_quantizer");
  EXPECT_EQ(NormalizeFusedExpertsName("m.experts.down_proj_input_quantizer.12").value_or(""),
            "m.experts.down_proj_input_quantizer");
  EXPECT_EQ(NormalizeFusedExpertsName("m.weight_quantizers.0.x").value_or(""),
            "m.weight_quantizer.x");
  EXPECT_FALSE(NormalizeFusedExpertsName("m.up_proj.weight_quantizer"));
  EXPECT_FALSE(NormalizeFusedExpertsName("m.weight_quantizers.x"));   // no index
  EXPECT_FALSE(NormalizeFusedExpertsName("m.weight_quantizers.3x"));  // index not a component
}

}  // namespace
}  // namespace qf
