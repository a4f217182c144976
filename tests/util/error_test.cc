// qf::Error carries and formats its location.
#include "quantforge/error.h"

#include <gtest/gtest.h>

namespace qf {
namespace {

TEST(ErrorTest, MessageNamesFileTensorAndOffset) {
  Error e("expected 8 bytes, found 3", {"/m/model.safetensors", "lm_head.weight", 1234});
  EXPECT_STREQ(e.what(),
               "/m/model.safetensors: tensor 'lm_head.weight': byte 1234: expected 8 bytes, found 3");
  EXPECT_EQ(e.problem(), "expected 8 bytes, found 3");
  EXPECT_EQ(e.context().tensor, "lm_head.weight");
}

TEST(ErrorTest, EmptyPartsAreLeftOut) {
  EXPECT_STREQ(Error("bad").what(), "bad");
  EXPECT_STREQ(Error("bad", {.tensor = "w"}).what(), "tensor 'w': bad");
}

}  // namespace
}  // namespace qf
