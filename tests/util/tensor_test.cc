// DType table and shape arithmetic.
#include "quantforge/tensor.h"

#include <gtest/gtest.h>

#include "quantforge/error.h"

namespace qf {
namespace {

TEST(TensorTest, DTypeNamesRoundTrip) {
  for (DType d : {DType::kF64, DType::kF32, DType::kF16, DType::kBF16, DType::kF8E4M3,
                  DType::kF8E5M2, DType::kU8, DType::kI8, DType::kI16, DType::kI32, DType::kI64,
                  DType::kBool}) {
    EXPECT_EQ(ParseDType(DTypeName(d)), d);
  }
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kF8E4M3), 1u);
  EXPECT_FALSE(ParseDType("FP4").has_value());
}

TEST(TensorTest, NumElements) {
  EXPECT_EQ(NumElements({}), 1);
  EXPECT_EQ(NumElements({3, 0, 5}), 0);
  EXPECT_EQ(NumElements({2, 3, 4}), 24);
  EXPECT_THROW(NumElements({-1}), Error);
  EXPECT_THROW(NumElements({1LL << 40, 1LL << 40}), Error);
}

TEST(TensorTest, RowsAndCols) {
  std::vector<float> v(24);
  TensorView t = MakeView(v, {2, 3, 4});
  EXPECT_EQ(t.Cols(), 4);
  EXPECT_EQ(t.Rows(), 6);
}

}  // namespace
}  // namespace qf
