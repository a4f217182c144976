// The division-free BF16 NVFP4 path (src/kernels/nvfp4_bounds.h, nvfp4_bf16-inl.h) against the
// scalar spec: the decision bounds and their bucket form exhaustively (every BF16 magnitude under
// every E4M3 scale code for global scales across the whole regime, both of its ends included),
// the regime's edges, the kernels on every Highway target against the reference for tensors on
// both sides of those edges and against the division kernels directly, which kernels each target
// runs, the block-scale code table exhaustively, and the reuse of an output tensor by
// QuantizeNvfp4Into.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "hwy/tests/hwy_gtest.h"
#include "quantforge/formats.h"
#include "quantforge/quantize.h"
#include "quantforge/thread_pool.h"
#include "src/kernels/nvfp4_bounds.h"
#include "src/kernels/nvfp4_kernels.h"
#include "src/kernels/nvfp4_scale_codes.h"
#include "src/quant/nvfp4_reference.h"
#include "tests/quant/nvfp4_test_util.h"

namespace qf {
namespace {

using nvfp4_test::Bits;

// The smallest and the largest global scale of the exact regime (divisors down to a subnormal,
// ~2^-149, and up to 448 * 292.57 just below 2^17), and their neighbours outside it.
const float kSmallestG = std::ldexp(0x1.01p0f, -141);
const float kLargestG = 0x1.249248p+8f;
const float kBelowRegimeG = std::ldexp(1.0f, -141);
const float kAboveRegimeG = 0x1.24924ap+8f;

// The global scales of the exhaustive test: both ends of the regime, 1 (E2M1 ties exactly
// representable), a few of real weights' magnitude, and three just above the smallest g whose
// rows all fit the bucket form (about 2^-118.3, where the bounds of the smallest codes are
// subnormal and most crowded).
const float kGlobalScales[] = {kSmallestG,
                               kLargestG,
                               std::ldexp(1.0f, -139),
                               292.0f,
                               1.0f,
                               3.7e-5f,
                               0.0123f,
                               1.7e-10f,
                               6.02e-3f,
                               41.0f,
                               0x1.99999ap-119f,
                               std::ldexp(1.0f, -116),
                               std::ldexp(1.0f, -110)};

// The E2M1 magnitude code of |x| bits from a row's bucket form, as nvfp4_bounds.h defines it
// (scalar models of the AVX-512 kernels' BucketCodes): the word entries (vpermi2w, AVX3) and
// the byte entries (vpermb, AVX3_DL).
int BucketCode(const Nvfp4DecisionTable::BucketRow& row, uint32_t bits) {
  const int rel = std::min(std::max(static_cast<int>(bits) - int{row.base[0]}, 0), 1023);
  return (int{row.entry[rel / 32]} + rel) / 2048;
}

int ByteBucketCode(const Nvfp4DecisionTable::BucketRow& row, uint32_t bits) {
  const int rel = std::min(std::max(static_cast<int>(bits) - int{row.base[0]}, 0), 1023);
  return (int{row.byte_entry[rel / 32]} + rel % 32) / 32;
}

TEST(Nvfp4Bounds, EveryBF16MagnitudeUnderEveryScaleCodeMatchesTheDivision) {
  Nvfp4DecisionTable table;
  for (const float g : kGlobalScales) {
    ASSERT_TRUE(table.Build(g)) << "g " << g;
    // The bucket form holds unless the divisors reach down to crowded subnormal bounds (g below
    // about 2^-118.3); both kernel paths are exercised by the tests below.
    EXPECT_EQ(table.has_buckets, g > std::ldexp(1.0f, -120)) << "g " << g;
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
        const int bucket = table.has_buckets ? BucketCode(table.bucket_row[code], bits) : count;
        const int byte_bucket =
            table.has_buckets ? ByteBucketCode(table.bucket_row[code], bits) : count;
        // Magnitude from the bounds (and from the buckets); the sign bit set exactly for
        // negative nonzero x.
        const bool ok = positive == count && (negative & 7) == count &&
                        (negative >> 3) == (bits != 0 ? 1 : 0) && bucket == count &&
                        byte_bucket == count;
        if (!ok) {
          ++failures;
          ADD_FAILURE() << "g " << g << " code " << code << " |x| bits 0x" << std::hex << bits
                        << std::dec << ": bounds give " << count << ", buckets " << bucket
                        << " and " << byte_bucket << ", x / d gives " << int{positive}
                        << " and " << int{negative};
        }
      }
      for (int k = 0; k < Nvfp4DecisionTable::kBounds; ++k) {
        for (int lane = 1; lane < 16; ++lane) {
          ASSERT_EQ(table.row[code].bound[k][lane], table.row[code].bound[k][0]);
        }
      }
      if (table.has_buckets) {
        const Nvfp4DecisionTable::BucketRow& bucket_row = table.bucket_row[code];
        for (int lane = 1; lane < 16; ++lane) ASSERT_EQ(bucket_row.base[lane], bucket_row.base[0]);
        for (int m = 0; m < 8; ++m) {
          EXPECT_EQ(Bits(bucket_row.magnitude[m]), Bits(table.row[code].magnitude[m]));
        }
        // The form's preconditions: a 32-aligned base below the first bound, the last bound
        // within the 1024 patterns that the clamp keeps.
        int t[Nvfp4DecisionTable::kBounds];
        for (int k = 0; k < Nvfp4DecisionTable::kBounds; ++k) {
          t[k] = table.row[code].bound[k][0] + 1;
        }
        EXPECT_EQ(bucket_row.base[0] % 32, 0) << "g " << g << " code " << code;
        EXPECT_LT(int{bucket_row.base[0]}, t[0]) << "g " << g << " code " << code;
        EXPECT_LE(t[Nvfp4DecisionTable::kBounds - 1] - int{bucket_row.base[0]}, 1023)
            << "g " << g << " code " << code;
      }
    }
  }
}

TEST(Nvfp4Bounds, RefusesGlobalScalesOutsideTheExactRegime) {
  Nvfp4DecisionTable table;
  EXPECT_TRUE(table.Build(kLargestG));       // 448 g < 2^17
  EXPECT_FALSE(table.Build(kAboveRegimeG));  // 448 g >= 2^17: some x / d underflows to -0
  EXPECT_TRUE(table.Build(kSmallestG));      // 2^-9 g rounds up to 2^-149
  EXPECT_FALSE(table.Build(kBelowRegimeG));  // 2^-9 g = 2^-150 rounds to 0
  EXPECT_FALSE(table.Build(0.0f));
}

// qf_kernels compiles the AVX3_DL target (its vpermb bucket lookup) through the PUBLIC definition
// HWY_WANT_AVX3_DL, which this file receives too, so that its target tests run there: without it
// that path would silently go untested and unused, since AVX3 gives the same bytes.
TEST(Nvfp4Bf16Targets, Avx3DlIsCompiled) {
#if HWY_ARCH_X86
  EXPECT_NE(Nvfp4KernelTargets() & HWY_AVX3_DL, 0) << "qf_kernels must define HWY_WANT_AVX3_DL";
  EXPECT_NE(HWY_TARGETS & HWY_AVX3_DL, 0) << "the definition must reach the tests (PUBLIC)";
#else
  GTEST_SKIP() << "AVX3_DL is an x86 target";
#endif
}

using Nvfp4Bf16Test = hwy::TestWithParamTarget;
HWY_TARGET_INSTANTIATE_TEST_SUITE_P(Nvfp4Bf16Test);

// On every target, every entry up to max_bits of the block-scale code table equals the
// reference's scale for that BF16 block amax: dynamic scales for every global scale above, static
// ones (max, 448 and 256; four_over_six's two candidates; the mse sweep's first two) for amaxes of
// real weights and both regime ends.
TEST_P(Nvfp4Bf16Test, ScaleCodeTableMatchesTheReferenceScale) {
  const std::vector<float> one = {1.0f}, four_over_six = {1.0f, 1.5f}, mse_two = {0.25f, 0.3f};
  for (const float g : kGlobalScales) {
    Nvfp4KernelParams params;
    params.global_scale = g;
    params.six_global_scale = 6.0f * g;
    auto table = std::make_unique<Nvfp4ScaleCodeTable>();
    BuildNvfp4ScaleCodes(params, 0x7F7F, table.get());
    EXPECT_EQ(table->max_bits, 0x7F7F);
    for (uint32_t a = 0; a <= 0x7F7F; ++a) {
      ASSERT_EQ(table->code[a][0],
                ReferenceDynamicBlockScale(DecodeBF16(static_cast<uint16_t>(a)), 6.0f * g))
          << "g " << g << " amax bits 0x" << std::hex << a;
    }
  }
  for (const float amax : {3.0f, 0.0153f, 786000.0f, std::ldexp(1.0f, -129)}) {
    for (const float norm : {448.0f, 256.0f}) {
      for (const std::vector<float>* candidates : {&one, &four_over_six, &mse_two}) {
        Nvfp4KernelParams params;
        params.dynamic_scales = false;
        params.global_scale = amax / (6.0f * norm);
        params.global_amax_over_6 = amax / 6.0f;
        params.norm = norm;
        params.candidates = *candidates;
        const uint16_t max_bits = static_cast<uint16_t>(Bits(amax) >> 16);
        auto table = std::make_unique<Nvfp4ScaleCodeTable>();
        BuildNvfp4ScaleCodes(params, max_bits, table.get());
        for (size_t k = 0; k < candidates->size(); ++k) {
          for (uint32_t a = 0; a <= max_bits; ++a) {
            const float block_amax = DecodeBF16(static_cast<uint16_t>(a));
            ASSERT_EQ(table->code[a][k],
                      ReferenceStaticBlockScale(block_amax * (*candidates)[k], norm, amax / 6.0f))
                << "amax " << amax << " norm " << norm << " candidate " << k << " amax bits 0x"
                << std::hex << a;
          }
        }
      }
    }
  }
}

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

// Tensors on both sides of each edge of the regime, for both normalisation constants (448 and
// four-over-six's 256, whose upper edge is lower): global amax 782,336 / 786,432 and 448,512 /
// 450,560 (BF16 values around 786,432 and 449,390), 2^-129 / 2^-130 / 2^-131 (around 2^-129.6
// and 2^-130.4); real weights' magnitudes; an all-zero tensor (g = 1); 33,000 blocks (three kernel
// tasks, a partial last group) on three threads. Which side each case is on is checked, not
// assumed, and both sides must occur for each constant.
TEST_P(Nvfp4Bf16Test, TensorsAroundTheRegimeEdgesEqualReference) {
  ThreadPool three(3);
  const struct {
    int64_t rows, cols;
    float amax;
  } kCases[] = {{1100, 480, 0.37f},
                {7, 48, 782336.0f},
                {7, 48, 786432.0f},
                {7, 48, 448512.0f},
                {7, 48, 450560.0f},
                {5, 272, std::ldexp(1.0f, -129)},
                {5, 272, std::ldexp(1.0f, -130)},
                {5, 272, std::ldexp(1.0f, -131)},
                {3, 2048, 12.0f},
                {4, 64, 0.0f},
                {1, 16, 1.0f}};
  int in_regime[2] = {0, 0}, outside[2] = {0, 0};  // per constant: 448, 256
  uint32_t seed = 7;
  for (const auto& c : kCases) {
    const auto bf16 = WeightsWithAmax(static_cast<size_t>(c.rows * c.cols), c.amax, seed++);
    std::vector<float> values(bf16.size());
    for (size_t i = 0; i < bf16.size(); ++i) values[i] = DecodeBF16(bf16[i]);
    const TensorView view = MakeView(std::span<const uint16_t>(bf16), {c.rows, c.cols}, "w");
    for (const Nvfp4Options& options : Options()) {
      if (options.algorithm == BlockScaleAlgorithm::kMse && c.rows * c.cols > 20000) continue;
      const Nvfp4Tensor actual = QuantizeNvfp4(view, options, &three);
      Nvfp4DecisionTable table;
      const bool bounds = table.Build(actual.global_scale);
      const int constant = (options.four_over_six_normalization ||
                            options.algorithm == BlockScaleAlgorithm::kFourOverSix)
                               ? 1
                               : 0;
      ++(bounds ? in_regime : outside)[constant];
      const std::string what = std::string(AlgorithmName(options.algorithm)) + " amax " +
                               std::to_string(c.amax) + (bounds ? " (bounds) " : " (division) ") +
                               std::to_string(c.rows) + "x" + std::to_string(c.cols);
      nvfp4_test::ExpectSameNvfp4(ReferenceQuantizeNvfp4(view, options), actual, values, what);
    }
  }
  for (int constant = 0; constant < 2; ++constant) {
    EXPECT_GT(in_regime[constant], 0) << "constant " << (constant ? 256 : 448);
    EXPECT_GT(outside[constant], 0) << "constant " << (constant ? 256 : 448);
  }
}

// The kernels with and without the decision table, in its bucket form or by binary search, give
// the same bytes (on targets without the division-free path all calls run the division kernels),
// for max, static max, four_over_six, the 39-candidate mse sweep, a tiny static scale and the two
// static scales on either side of the window proof's boundary.
TEST_P(Nvfp4Bf16Test, BoundsKernelsEqualDivisionKernels) {
  const size_t num_blocks = 16 * 37 + 5;  // whole groups and a partial one
  const auto bf16 = WeightsWithAmax(num_blocks * 16, 2.5f, 99);
  float amax = 0.0f;
  for (const uint16_t b : bf16) amax = std::fmax(amax, std::fabs(DecodeBF16(b)));
  const std::vector<float> mse = MseMultipliers(MseSweep{});
  const std::vector<float> four_over_six = {1.0f, 1.5f};
  const std::vector<float> one = {1.0f};
  // A scale 1/40 of max's maps a block's amax to about 240: |x| then reaches up to ~1,270 BF16
  // patterns past its row's base, beyond the bucket form's 1024, so its clamp is exercised (alone:
  // as one of several candidates it would lose, and its codes would not reach the output).
  const std::vector<float> tiny = {0.025f};
  // The window proof's boundary: with these data's amax and 448, the block amax farthest above
  // its row's base lies exactly 1024 patterns above it under a multiplier of 0.1524 (outside:
  // the clamp is needed) and 1023 under 0.1531 (inside). A block made of that amax is added.
  const std::vector<float> just_outside = {0.1524f}, just_inside = {0.1531f};
  const struct {
    bool dynamic;
    float norm;
    const std::vector<float>* candidates;
    bool within_window;  // the scale-code table's proof that the bucket clamp is idle
    int farthest;        // the largest a - base over block amaxes a (0: not checked)
  } kRules[] = {{true, 448.0f, &one, true, 0},
                {false, 448.0f, &one, true, 0},
                {false, 256.0f, &four_over_six, true, 0},
                {false, 448.0f, &mse, false, 0},  // more candidates than the table holds
                {false, 448.0f, &tiny, false, 0},
                {false, 448.0f, &just_outside, false, 1024},
                {false, 448.0f, &just_inside, true, 1023}};
  for (const auto& rule : kRules) {
    Nvfp4KernelParams params;
    params.dynamic_scales = rule.dynamic;
    params.global_scale = amax / (6.0f * rule.norm);
    params.six_global_scale = 6.0f * params.global_scale;
    params.global_amax_over_6 = amax / 6.0f;
    params.norm = rule.norm;
    params.candidates = *rule.candidates;
    Nvfp4DecisionTable table;
    ASSERT_TRUE(table.Build(params.global_scale));
    // Scale codes up to the data's amax; where a rule has more candidates than the table holds,
    // the kernels compute the scales instead, which the last variant also checks.
    auto scale_codes = std::make_unique<Nvfp4ScaleCodeTable>();
    params.bf16_table = &table;
    BuildNvfp4ScaleCodes(params, static_cast<uint16_t>(Bits(amax) >> 16), scale_codes.get());
    ASSERT_TRUE(table.has_buckets);
    EXPECT_EQ(scale_codes->within_bucket_window, rule.within_window)
        << "candidate " << (*rule.candidates)[0];
    std::vector<uint16_t> data = bf16;
    if (rule.farthest != 0) {
      // Block 1 gets the block amax farthest above its row's base, with both signs.
      int farthest = 0;
      uint16_t farthest_bits = 0;
      for (uint32_t a = 1; a <= scale_codes->max_bits; ++a) {
        const int distance =
            static_cast<int>(a) - table.bucket_row[scale_codes->code[a][0]].base[0];
        if (distance > farthest) {
          farthest = distance;
          farthest_bits = static_cast<uint16_t>(a);
        }
      }
      ASSERT_EQ(farthest, rule.farthest) << "candidate " << (*rule.candidates)[0];
      for (int i = 0; i < 16; ++i) data[16 + i] = farthest_bits | (i % 2 == 0 ? 0 : 0x8000);
    }
    auto search_table = std::make_unique<Nvfp4DecisionTable>(table);
    search_table->has_buckets = false;
    const bool search = rule.candidates->size() > 1;
    // 0: division kernels; 1: bounds (on AVX-512 targets their bucket form); 2: the same and the
    // scale-code table (on AVX-512, without the clamp where within_window); 3: bounds by binary
    // search (every target) and the scale-code table.
    constexpr int kVariants = 4;
    std::vector<uint8_t> codes[kVariants], scales[kVariants], chosen[kVariants];
    for (int variant = 0; variant < kVariants; ++variant) {
      params.bf16_table = variant == 0 ? nullptr : variant == 3 ? search_table.get() : &table;
      params.bf16_scale_codes = variant >= 2 ? scale_codes.get() : nullptr;
      codes[variant].assign(num_blocks * 8, 0xAA);
      scales[variant].assign(num_blocks, 0xAA);
      chosen[variant].assign(search ? num_blocks : 0, 0xAA);
      QuantizeNvfp4BlocksBF16(data, params, codes[variant], scales[variant], chosen[variant]);
    }
    const std::string what = "candidates " + std::to_string(rule.candidates->size()) + " norm " +
                             std::to_string(rule.norm);
    for (int variant = 1; variant < kVariants; ++variant) {
      EXPECT_EQ(codes[0], codes[variant]) << what << " variant " << variant;
      EXPECT_EQ(scales[0], scales[variant]) << what << " variant " << variant;
      EXPECT_EQ(chosen[0], chosen[variant]) << what << " variant " << variant;
    }
  }
}

// Each target takes the kernels it is meant to: the bucket form on AVX-512 (a slower path there
// would still give the same bytes, so only this pins it; without its clamp where the scale-code
// table allows), the binary search on AVX2 and on AVX-512 for a table without buckets, the
// division kernels below AVX2 and without a table.
TEST_P(Nvfp4Bf16Test, DispatchTakesTheExpectedPath) {
  Nvfp4KernelParams params;
  params.global_scale = 3.7e-5f;
  params.six_global_scale = 6.0f * params.global_scale;
  auto table = std::make_unique<Nvfp4DecisionTable>();
  ASSERT_TRUE(table->Build(params.global_scale));
  ASSERT_TRUE(table->has_buckets);
  const int64_t target = GetParam();
#if HWY_ARCH_X86
  const bool avx512 = target <= HWY_AVX3, avx2 = target <= HWY_AVX2;
#else
  const bool avx512 = false, avx2 = false;
#endif
  EXPECT_EQ(Nvfp4BF16PathFor(params), Nvfp4BF16Path::kDivision);
  params.bf16_table = table.get();
  EXPECT_EQ(Nvfp4BF16PathFor(params),
            avx512 ? Nvfp4BF16Path::kBoundsBuckets
                   : (avx2 ? Nvfp4BF16Path::kBoundsSearch : Nvfp4BF16Path::kDivision))
      << hwy::TargetName(target);
  // A scale-code table that proves the clamp idle: the bucket form without it, on AVX-512.
  auto scale_codes = std::make_unique<Nvfp4ScaleCodeTable>();
  const float amax = 2688.0f * params.global_scale;  // the tensor's amax for g (dynamic scales)
  BuildNvfp4ScaleCodes(params, static_cast<uint16_t>(Bits(amax) >> 16), scale_codes.get());
  ASSERT_TRUE(scale_codes->within_bucket_window);
  params.bf16_scale_codes = scale_codes.get();
  EXPECT_EQ(Nvfp4BF16PathFor(params),
            avx512 ? Nvfp4BF16Path::kBoundsBucketsInWindow
                   : (avx2 ? Nvfp4BF16Path::kBoundsSearch : Nvfp4BF16Path::kDivision))
      << hwy::TargetName(target);
  scale_codes->within_bucket_window = false;
  EXPECT_EQ(Nvfp4BF16PathFor(params),
            avx512 ? Nvfp4BF16Path::kBoundsBuckets
                   : (avx2 ? Nvfp4BF16Path::kBoundsSearch : Nvfp4BF16Path::kDivision))
      << hwy::TargetName(target);
  table->has_buckets = false;
  EXPECT_EQ(Nvfp4BF16PathFor(params),
            avx2 ? Nvfp4BF16Path::kBoundsSearch : Nvfp4BF16Path::kDivision)
      << hwy::TargetName(target);
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
