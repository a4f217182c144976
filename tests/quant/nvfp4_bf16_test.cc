// The division-free BF16 NVFP4 path (src/kernels/nvfp4_bounds.h, nvfp4_bf16-inl.h) against the
// scalar spec: the decision bounds exhaustively (every BF16 magnitude under every E4M3 scale code
// for global scales across the whole regime, subnormal and large divisors included), the regime's
// edges, the kernels on every Highway target for tensors on both sides of those edges (the
// scalar-only targets and the out-of-regime tensors take the division kernels), and the reuse
// of an output tensor by QuantizeNvfp4Into.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "hwy/tests/hwy_gtest.h"
#include "quantforge/formats.h"
#include "quantforge/quantize.h"
#include "quantforge/thread_pool.h"
#include "src/kernels/nvfp4_bounds.h"
#include "src/quant/nvfp4_reference.h"
#include "tests/quant/nvfp4_test_util.h"

namespace qf {
namespace {

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// The global scales of the exhaustive test: the smallest and largest in the regime (divisors
// down to 2^-148, a subnormal, and up to 448 * 292), 1 (E2M1 ties exactly representable), and
// a few of real weights' magnitude.
const float kGlobalScales[] = {
    std::ldexp(1.0f, -139), 292.0f, 1.0f, 3.7e-5f, 0.0123f, 1.7e-10f, 6.02e-3f, 41.0f};

TEST(Nvfp4Bounds, EveryBF16MagnitudeUnderEveryScaleCodeMatchesTheDivision) {
  Nvfp4DecisionTable table;
  for (const float g : kGlobalScales) {
    ASSERT_TRUE(table.Build(g)) << "g " << g;
    for (int code = 1; code <= 0x7E; ++code) {
      const float s = DecodeE4M3(static_cast<uint8_t>(code));
      const float d = s * g;
      for (int m = 0; m < 8; ++m) {
        EXPECT_EQ(Bits(table.row[code].magnitude[m]),
                  Bits((DecodeE2M1(static_cast<uint8_t>(m)) * s) * g))
            << "g " << g << " code " << code << " m " << m;
      }
      int failures = 0;
      for (uint32_t bits = 0; bits < 0x7F80 && failures < 3; ++bits) {
        const float x = DecodeBF16(static_cast<uint16_t>(bits));
        int count = 0;
        for (int k = 0; k < Nvfp4DecisionTable::kBounds; ++k) {
          count += static_cast<int16_t>(bits) > table.row[code].bound[k][0];
        }
        const uint8_t positive = EncodeE2M1(x / d);
        const uint8_t negative = EncodeE2M1(-x / d);
        // Magnitude from the bounds; the sign bit set exactly for negative nonzero x.
        const bool ok =
            positive == count && (negative & 7) == count && (negative >> 3) == (bits != 0 ? 1 : 0);
        if (!ok) {
          ++failures;
          ADD_FAILURE() << "g " << g << " code " << code << " |x| bits 0x" << std::hex << bits
                        << std::dec << ": bounds give " << count << ", x / d gives "
                        << int{positive} << " and " << int{negative};
        }
      }
      for (int k = 0; k < Nvfp4DecisionTable::kBounds; ++k) {
        for (int lane = 1; lane < 16; ++lane) {
          ASSERT_EQ(table.row[code].bound[k][lane], table.row[code].bound[k][0]);
        }
      }
    }
  }
}

TEST(Nvfp4Bounds, RefusesGlobalScalesOutsideTheExactRegime) {
  Nvfp4DecisionTable table;
  EXPECT_TRUE(table.Build(292.0f));   // 448 * 292 < 2^17
  EXPECT_FALSE(table.Build(293.0f));  // 448 * 293 >= 2^17: some x / d underflows to -0
  EXPECT_TRUE(table.Build(std::ldexp(1.0f, -139)));   // 2^-9 * g = 2^-148
  EXPECT_FALSE(table.Build(std::ldexp(1.0f, -141)));  // 2^-9 * g rounds to 0
  EXPECT_FALSE(table.Build(0.0f));
}

using Nvfp4Bf16Test = hwy::TestWithParamTarget;
HWY_TARGET_INSTANTIATE_TEST_SUITE_P(Nvfp4Bf16Test);

std::vector<Nvfp4Options> Options() {
  std::vector<Nvfp4Options> all(6);
  all[1].static_block_scales = true;
  all[2].four_over_six_normalization = true;
  all[3].algorithm = BlockScaleAlgorithm::kFourOverSix;
  all[4].algorithm = BlockScaleAlgorithm::kMse;
  all[5].algorithm = BlockScaleAlgorithm::kMse;
  all[5].mse.fp8_scale_sweep = true;
  return all;
}

// Student-t weights rescaled to a given amax, as BF16, with -0 and zero blocks mixed in.
std::vector<uint16_t> WeightsWithAmax(size_t n, float amax, uint32_t seed) {
  std::mt19937 rng(seed);
  std::student_t_distribution<float> t(3.0f);
  std::vector<float> v(n);
  float max = 0.0f;
  for (float& x : v) {
    x = t(rng);
    max = std::fmax(max, std::fabs(x));
  }
  std::vector<uint16_t> bf16(n);
  for (size_t i = 0; i < n; ++i) {
    const bool zero_block = (i / 16) % 7 == 3;
    bf16[i] = zero_block ? ((i % 5 == 0) ? 0x8000 : 0) : EncodeBF16(v[i] / max * amax);
  }
  return bf16;
}

// Tensors on both sides of the regime's edges (amax ~786,000 above; amax 1e-39, made of BF16
// subnormals, below), of real weights' magnitude, and of 9,000 blocks (three kernel tasks, a
// partial last group) on three threads.
TEST_P(Nvfp4Bf16Test, TensorsAroundTheRegimeEdgesEqualReference) {
  ThreadPool three(3);
  const struct {
    int64_t rows, cols;
    float amax;
  } kCases[] = {{300, 480, 0.37f}, {7, 48, 700000.0f}, {7, 48, 800000.0f},
                {5, 272, 1e-39f},  {3, 2048, 12.0f},   {1, 16, 1.0f}};
  uint32_t seed = 7;
  for (const auto& c : kCases) {
    const auto bf16 = WeightsWithAmax(static_cast<size_t>(c.rows * c.cols), c.amax, seed++);
    std::vector<float> values(bf16.size());
    for (size_t i = 0; i < bf16.size(); ++i) values[i] = DecodeBF16(bf16[i]);
    const TensorView view = MakeView(std::span<const uint16_t>(bf16), {c.rows, c.cols}, "w");
    for (const Nvfp4Options& options : Options()) {
      if (options.algorithm == BlockScaleAlgorithm::kMse && c.rows * c.cols > 20000) continue;
      const std::string what = std::string(AlgorithmName(options.algorithm)) + " amax " +
                               std::to_string(c.amax) + " " + std::to_string(c.rows) + "x" +
                               std::to_string(c.cols);
      nvfp4_test::ExpectSameNvfp4(ReferenceQuantizeNvfp4(view, options),
                                  QuantizeNvfp4(view, options, &three), values, what);
    }
  }
}

// One output tensor reused across calls of different shapes and algorithms gives what fresh
// outputs give (the chosen-candidate bytes of a search do not survive into a max call).
TEST_P(Nvfp4Bf16Test, QuantizeIntoReusesTheOutputTensor) {
  const auto big = WeightsWithAmax(64 * 512, 3.0f, 1);
  const auto small = WeightsWithAmax(5 * 96, 0.02f, 2);
  const TensorView big_view = MakeView(std::span<const uint16_t>(big), {64, 512}, "big");
  const TensorView small_view = MakeView(std::span<const uint16_t>(small), {5, 96}, "small");
  Nvfp4Options four_over_six;
  four_over_six.algorithm = BlockScaleAlgorithm::kFourOverSix;
  Nvfp4Tensor reused;
  for (const auto& [view, options] :
       {std::pair{big_view, four_over_six}, std::pair{small_view, Nvfp4Options{}},
        std::pair{big_view, Nvfp4Options{}}, std::pair{small_view, four_over_six}}) {
    QuantizeNvfp4Into(view, options, &reused);
    const Nvfp4Tensor fresh = QuantizeNvfp4(view, options);
    EXPECT_EQ(reused.rows, fresh.rows);
    EXPECT_EQ(reused.cols, fresh.cols);
    EXPECT_TRUE(reused.codes == fresh.codes);
    EXPECT_TRUE(reused.block_scales == fresh.block_scales);
    EXPECT_TRUE(reused.chosen_candidate == fresh.chosen_candidate);
    EXPECT_EQ(Bits(reused.global_scale), Bits(fresh.global_scale));
  }
}

}  // namespace
}  // namespace qf
