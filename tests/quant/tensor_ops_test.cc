// TensorAmax / ToFloat and their kernels (src/kernels/amax.h): the vectorized scans equal a scalar
// reference (max of |decode(x)|) on every Highway target, every BF16 / F16 pattern widens exactly
// as the numerics codecs decode it, threads do not change results, and bad inputs name the
// tensor, the first bad index and the value.
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "quantforge/error.h"
#include "quantforge/formats.h"
#include "quantforge/quantize.h"
#include "src/kernels/amax.h"
#include "tests/quant/mx_fp8_test_util.h"

namespace qf::test {
namespace {

// Scalar reference: max |x| by float comparison, with a separate non-finite flag.
AmaxResult ReferenceAmax(const std::vector<float>& decoded) {
  AmaxResult r;
  for (float x : decoded) {
    if (!std::isfinite(x))
      r.all_finite = false;
    else if (std::fabs(x) > r.amax)
      r.amax = std::fabs(x);
  }
  return r;
}

std::vector<float> DecodeAll(const std::vector<uint16_t>& bits, bool bf16) {
  std::vector<float> out(bits.size());
  for (size_t i = 0; i < bits.size(); ++i)
    out[i] = bf16 ? DecodeBF16(bits[i]) : DecodeFP16(bits[i]);
  return out;
}

class AmaxKernelTest : public TargetTest {};
HWY_TARGET_INSTANTIATE_TEST_SUITE_P(AmaxKernelTest);

TEST_P(AmaxKernelTest, MatchesReferenceOnRandomData) {
  uint32_t seed = 1;
  for (Distribution dist : kAllDistributions) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{31}, size_t{33}, size_t{257},
                     size_t{1000}, size_t{4099}}) {
      const std::vector<float> f32 = RandomValues(dist, n, seed++);
      const auto bf16 = ToBF16(f32);
      const auto f16 = ToF16(f32);
      const std::string what = DistributionName(dist) + " n=" + std::to_string(n);
      const AmaxResult ref32 = ReferenceAmax(f32);
      const AmaxResult got32 = AmaxF32(f32);
      EXPECT_EQ(Bits(ref32.amax), Bits(got32.amax)) << what;
      EXPECT_TRUE(got32.all_finite) << what;
      const AmaxResult ref_bf = ReferenceAmax(DecodeAll(bf16, true));
      EXPECT_EQ(Bits(ref_bf.amax), Bits(AmaxBF16(bf16).amax)) << what;
      const AmaxResult ref_h = ReferenceAmax(DecodeAll(f16, false));
      EXPECT_EQ(Bits(ref_h.amax), Bits(AmaxF16(f16).amax)) << what;
    }
  }
}

TEST_P(AmaxKernelTest, FlagsNaNAndInfAtEveryPosition) {
  for (size_t n : {size_t{1}, size_t{5}, size_t{67}}) {
    for (size_t pos = 0; pos < n; ++pos) {
      for (float bad :
           {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
        std::vector<float> v = RandomValues(Distribution::kNormal, n, 7);
        v[pos] = bad;
        EXPECT_FALSE(AmaxF32(v).all_finite) << n << " " << pos;
        EXPECT_FALSE(AmaxBF16(ToBF16(v)).all_finite) << n << " " << pos;
        EXPECT_FALSE(AmaxF16(ToF16(v)).all_finite) << n << " " << pos;
      }
    }
  }
  // 65504 (F16 max) and the largest finite BF16 are finite; F16 Inf comes from 1e5 in BF16 terms.
  const std::vector<uint16_t> f16_max = {0x7BFF, 0xFBFF};
  EXPECT_TRUE(AmaxF16(f16_max).all_finite);
  EXPECT_EQ(AmaxF16(f16_max).amax, 65504.0f);
  const std::vector<uint16_t> bf16_max = {0xFF7F};
  EXPECT_TRUE(AmaxBF16(bf16_max).all_finite);
  EXPECT_EQ(Bits(AmaxBF16(bf16_max).amax), 0x7F7F0000u);
}

TEST_P(AmaxKernelTest, WidenMatchesDecodeForEveryPattern) {
  // 65,536 patterns plus a ragged tail (the array is 65,536 + 3 long, offset by one element).
  std::vector<uint16_t> all(65536 + 4);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  const std::span<const uint16_t> in = std::span<const uint16_t>(all).subspan(1, 65536 + 3);
  std::vector<float> out(in.size());
  WidenBF16(in, out);
  for (size_t i = 0; i < in.size(); ++i) {
    ASSERT_EQ(Bits(DecodeBF16(in[i])), Bits(out[i])) << "BF16 0x" << std::hex << in[i];
  }
  WidenF16(in, out);
  for (size_t i = 0; i < in.size(); ++i) {
    ASSERT_EQ(Bits(DecodeFP16(in[i])), Bits(out[i])) << "F16 0x" << std::hex << in[i];
  }
}

TEST(TensorAmaxTest, SameResultForOneAndThreeThreads) {
  ThreadPool one(1), three(3);
  // 300,001 elements: several scan chunks and a ragged last chunk; the outlier sits in chunk 3.
  std::vector<float> v = RandomValues(Distribution::kHeavyTailed, 300001, 11);
  v[200003] = -1234.5f;
  const TensorView view = MakeView(v, {300001}, "w");
  EXPECT_EQ(TensorAmax(view, &one), 1234.5f);
  EXPECT_EQ(TensorAmax(view, &three), 1234.5f);
  EXPECT_EQ(TensorAmax(view), 1234.5f);
  const std::vector<float> widened = ToFloat(view, &three);
  EXPECT_EQ(0, std::memcmp(widened.data(), v.data(), v.size() * 4));
}

TEST(TensorAmaxTest, AllDTypes) {
  const std::vector<float> v = RandomValues(Distribution::kOutliers, 5000, 3);
  const auto bf16 = ToBF16(v);
  const auto f16 = ToF16(v);
  const TensorView bf_view = MakeView(bf16, {50, 100}, "bf");
  const TensorView h_view{
      DType::kF16, {50, 100}, std::as_bytes(std::span<const uint16_t>(f16)), "h"};
  EXPECT_EQ(Bits(TensorAmax(bf_view)), Bits(ReferenceAmax(DecodeAll(bf16, true)).amax));
  EXPECT_EQ(Bits(TensorAmax(h_view)), Bits(ReferenceAmax(DecodeAll(f16, false)).amax));
  const std::vector<float> wb = ToFloat(bf_view);
  const std::vector<float> wh = ToFloat(h_view);
  for (size_t i = 0; i < v.size(); ++i) {
    ASSERT_EQ(Bits(wb[i]), Bits(DecodeBF16(bf16[i]))) << i;
    ASSERT_EQ(Bits(wh[i]), Bits(DecodeFP16(f16[i]))) << i;
  }
  // -0 alone: amax is +0.
  const std::vector<float> neg_zero = {-0.0f, -0.0f};
  EXPECT_EQ(Bits(TensorAmax(MakeView(neg_zero, {2}))), 0u);
}

std::string MessageOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(TensorAmaxTest, ErrorsNameTensorIndexAndValue) {
  const std::vector<float> empty;
  EXPECT_EQ(MessageOf([&] {
              TensorAmax(MakeView(empty, {0, 4}, "x"));
            }),
            "tensor 'x': has no elements");
  EXPECT_EQ(MessageOf([&] {
              ToFloat(MakeView(empty, {3, 0}, "x"));
            }),
            "tensor 'x': has no elements");

  std::vector<float> v(200000, 1.0f);
  v[150001] = std::numeric_limits<float>::quiet_NaN();
  v[170000] = std::numeric_limits<float>::infinity();
  ThreadPool three(3);
  EXPECT_EQ(MessageOf([&] { TensorAmax(MakeView(v, {200000}, "layer.w"), &three); }),
            "tensor 'layer.w': element 150001 is NaN; expected finite values (F32)");
  v[150001] = 2.0f;
  EXPECT_EQ(MessageOf([&] { ToFloat(MakeView(v, {200000}, "layer.w"), &three); }),
            "tensor 'layer.w': element 170000 is +Inf; expected finite values (F32)");

  const std::vector<uint16_t> bf16 = {0x3F80, 0xFF80};  // 1.0, -Inf
  EXPECT_EQ(MessageOf([&] { TensorAmax(MakeView(bf16, {2}, "b")); }),
            "tensor 'b': element 1 is -Inf; expected finite values (BF16)");
  const std::vector<uint16_t> f16 = {0x3C00, 0x3C00, 0x7E00};  // 1.0, 1.0, NaN
  const TensorView h{DType::kF16, {3}, std::as_bytes(std::span<const uint16_t>(f16)), "h"};
  EXPECT_EQ(MessageOf([&] { TensorAmax(h); }),
            "tensor 'h': element 2 is NaN; expected finite values (F16)");

  const TensorView wrong_size = MakeView(std::span<const float>(v).first(5), {2, 3}, "s");
  EXPECT_EQ(MessageOf([&] { TensorAmax(wrong_size); }),
            "tensor 's': data holds 20 bytes; expected 24 for its shape");
  const std::vector<int32_t> ints = {1, 2};
  const TensorView int_view{DType::kI32, {2}, std::as_bytes(std::span<const int32_t>(ints)), "i"};
  EXPECT_EQ(MessageOf([&] { TensorAmax(int_view); }),
            "tensor 'i': dtype I32 cannot be quantized; expected F32, BF16 or F16");
}

}  // namespace
}  // namespace qf::test
