// FnMatch against Python fnmatch.fnmatchcase on hand-made cases (the recipe tests add 20k random
// patterns against an independent recursive reference).
#include "src/util/fnmatch.h"

#include <gtest/gtest.h>

namespace qf {
namespace {

TEST(FnMatchTest, PythonSemantics) {
  EXPECT_TRUE(FnMatch("lm_head", "lm_head"));
  EXPECT_FALSE(FnMatch("lm_head", "lm_head2"));
  EXPECT_TRUE(FnMatch("model.layers.1.*", "model.layers.1.mlp.up_proj"));
  EXPECT_FALSE(FnMatch("model.layers.1.*", "model.layers.10.mlp.up_proj"));
  EXPECT_TRUE(FnMatch("model.layers.1*", "model.layers.10.mlp.up_proj"));  // '*' spans dots
  EXPECT_TRUE(FnMatch("*mlp.gate", "model.layers.7.mlp.gate"));
  EXPECT_FALSE(FnMatch("*mlp.gate", "model.layers.7.mlp.gate_proj"));
  EXPECT_TRUE(FnMatch("*.[kv]_proj", "a.k_proj"));
  EXPECT_FALSE(FnMatch("*.[!kv]_proj", "a.k_proj"));
  EXPECT_TRUE(FnMatch("*[a-c]x", "zzbx"));
  EXPECT_TRUE(FnMatch("[]]", "]"));    // ']' first in a class is a member
  EXPECT_TRUE(FnMatch("[!]]", "a"));
  EXPECT_TRUE(FnMatch("a.?_proj", "a.q_proj"));
  EXPECT_TRUE(FnMatch("*", ""));
  EXPECT_FALSE(FnMatch("?", ""));
  EXPECT_FALSE(FnMatch("a*b*c", "a.b.d"));
  EXPECT_TRUE(FnMatch("*a*b*c*", "xaybzc"));
}

TEST(FnMatchTest, UnclosedBracketIsALiteral) {
  EXPECT_TRUE(FnMatch("a[b", "a[b"));
  EXPECT_FALSE(FnMatch("a[b", "ab"));
  EXPECT_EQ(FindUnclosedBracket("a[b"), 1u);
  EXPECT_EQ(FindUnclosedBracket("*[kv]_x[!a"), 7u);
  EXPECT_EQ(FindUnclosedBracket("*[kv]_bmm_quantizer"), std::string_view::npos);
}

}  // namespace
}  // namespace qf
