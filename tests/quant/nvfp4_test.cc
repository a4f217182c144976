// NVFP4 quantizer behaviour pinned by hand-computed examples: the four-over-six worked examples,
// Model Optimizer's formulas for the global and block scales, the candidate sets, zero tensors,
// padding of odd last dimensions and the errors for bad input. Each expectation is checked on the
// scalar reference and on the dispatched quantizer.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "quantforge/error.h"
#include "quantforge/formats.h"
#include "quantforge/quantize.h"
#include "quantforge/thread_pool.h"
#include "src/quant/nvfp4_reference.h"
#include "tests/quant/nvfp4_test_util.h"

namespace qf {
namespace {

using nvfp4_test::Bits;

// Runs both implementations, expects them identical, returns the reference's result.
Nvfp4Tensor QuantizeBoth(const std::vector<float>& values, Shape shape,
                         const Nvfp4Options& options) {
  const TensorView view = MakeView(std::span<const float>(values), shape, "w");
  Nvfp4Tensor expected = ReferenceQuantizeNvfp4(view, options);
  nvfp4_test::ExpectSameNvfp4(expected, QuantizeNvfp4(view, options), values, "dispatched");
  return expected;
}

std::vector<float> Dequantize(const Nvfp4Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.rows * t.cols));
  ReferenceDequantizeNvfp4(t, out);
  return out;
}

// Block [10, 20, 30, 40, 0 x 12] with block scales in E4M3 and global scale 1 (global_amax
// override 6 * 256 = 1536 under the four-over-six normalisation).
//   M = 6: scale 40 / 6 = 6.67 -> E4M3 6.5; 10, 20, 30, 40 -> 1.54, 3.08, 4.62, 6.15 -> 1.5, 3, 4,
//          6 -> 9.75, 19.5, 26, 39: squared errors 0.0625 + 0.25 + 16 + 1, mean 4.328125.
//   M = 4: scale 60 / 6 = 10 exactly; values 1, 2, 3, 4: error 0, chosen.
TEST(Nvfp4FourOverSix, WorkedExampleMapsTo4) {
  std::vector<float> block(16, 0.0f);
  block[0] = 10, block[1] = 20, block[2] = 30, block[3] = 40;
  Nvfp4Options options;
  options.algorithm = BlockScaleAlgorithm::kFourOverSix;
  options.global_amax = 1536.0f;
  const Nvfp4Tensor chosen = QuantizeBoth(block, {1, 16}, options);
  EXPECT_EQ(chosen.global_scale, 1.0f);  // 1536 / (6 * 256) is exact
  EXPECT_EQ(chosen.chosen_candidate[0], 1);
  EXPECT_EQ(DecodeE4M3(chosen.block_scales[0]), 10.0f);
  EXPECT_EQ(Dequantize(chosen), block);

  // The M = 6 candidate alone (mse with the single multiplier 1.0 under the same normalisation).
  Nvfp4Options m6 = options;
  m6.algorithm = BlockScaleAlgorithm::kMse;
  m6.four_over_six_normalization = true;
  m6.mse = MseSweep{1.0f, 1.0f, 0.5f, false};
  const Nvfp4Tensor six = QuantizeBoth(block, {1, 16}, m6);
  EXPECT_EQ(DecodeE4M3(six.block_scales[0]), 6.5f);
  const std::vector<float> deq = Dequantize(six);
  EXPECT_EQ(deq[2], 26.0f);  // 30 / 6.5 = 4.62 rounds to 4
  double sum = 0;
  for (int i = 0; i < 4; ++i) sum += (block[i] - deq[i]) * (block[i] - deq[i]);
  EXPECT_EQ(sum / 4, 4.328125);
}

// Block [2, 4, 5.9, 6, 0 x 12]: M = 6 (scale 1) errs only on 5.9 -> 6: mean 0.01 / 4 = 0.0025;
// M = 4 (scale 1.5) gives 2.25, 4.5, 6, 6: mean 0.3225 / 4 = 0.080625. Keeps M = 6.
TEST(Nvfp4FourOverSix, WorkedExampleKeeps6) {
  std::vector<float> block(16, 0.0f);
  block[0] = 2, block[1] = 4, block[2] = 5.9f, block[3] = 6;
  Nvfp4Options options;
  options.algorithm = BlockScaleAlgorithm::kFourOverSix;
  options.global_amax = 1536.0f;
  const Nvfp4Tensor t = QuantizeBoth(block, {1, 16}, options);
  EXPECT_EQ(t.chosen_candidate[0], 0);
  EXPECT_EQ(DecodeE4M3(t.block_scales[0]), 1.0f);
  const std::vector<float> deq = Dequantize(t);
  double sum = 0;
  for (int i = 0; i < 4; ++i) sum += (block[i] - deq[i]) * (block[i] - deq[i]);
  // 5.9f is 5.9 within half an ulp (2^-22), which moves 0.1^2 / 4 by at most 2 * 0.1 * 2^-22 / 4.
  EXPECT_NEAR(sum / 4, 0.0025, 2 * 0.1 * std::ldexp(1.0, -22) / 4);
}

// A tie (both candidates exact: an all-zero block, or a block of one value 4 * 2^k) keeps M = 6.
TEST(Nvfp4FourOverSix, TiesKeepMapTo6) {
  std::vector<float> values(32, 0.0f);
  values[16] = 1536.0f;  // M=6: scale 256 -> 6; M=4: scale 384 -> 4; both exact
  Nvfp4Options options;
  options.algorithm = BlockScaleAlgorithm::kFourOverSix;
  const Nvfp4Tensor t = QuantizeBoth(values, {2, 16}, options);
  EXPECT_EQ(t.chosen_candidate[0], 0);
  EXPECT_EQ(t.chosen_candidate[1], 0);
}

// Dynamic formulas: g = amax / 2688; s = block_amax / (6 * g) -> E4M3; x / (s * g) -> E2M1.
TEST(Nvfp4Max, DynamicScalesFollowModelOpt) {
  std::vector<float> values(32, 0.0f);
  values[0] = 1.0f, values[1] = -0.5f, values[2] = -0.01f;  // -0.01 rounds to a -0 code
  values[16] = 7.0f, values[17] = 2.0f;
  const Nvfp4Tensor t = QuantizeBoth(values, {1, 32}, Nvfp4Options{});
  EXPECT_EQ(Bits(t.global_scale), Bits(7.0f / 2688.0f));
  const float g = t.global_scale;
  EXPECT_EQ(t.block_scales[0], EncodeE4M3(1.0f / (6.0f * g)));
  EXPECT_EQ(t.block_scales[1], EncodeE4M3(7.0f / (6.0f * g)));
  const float divisor = DecodeE4M3(t.block_scales[0]) * g;
  EXPECT_EQ(t.codes[0], EncodeE2M1(1.0f / divisor) | (EncodeE2M1(-0.5f / divisor) << 4));
  EXPECT_EQ(t.codes[1] & 0xF, 0x8);  // sign bit of a negative value that rounds to zero
  EXPECT_EQ(t.codes[1] >> 4, 0x0);   // +0.0
  EXPECT_TRUE(t.chosen_candidate.empty());
}

// An all-zero tensor is valid: g = 1, dynamic block scales 1.0 (0x38), static 448 (0x7E).
TEST(Nvfp4Max, AllZeroTensor) {
  const std::vector<float> zeros(48, 0.0f);
  const Nvfp4Tensor dynamic = QuantizeBoth(zeros, {3, 16}, Nvfp4Options{});
  EXPECT_EQ(dynamic.global_scale, 1.0f);
  EXPECT_EQ(dynamic.block_scales, ByteBuffer(3, 0x38));
  EXPECT_EQ(dynamic.codes, ByteBuffer(24, 0));
  for (const auto algorithm : {BlockScaleAlgorithm::kMse, BlockScaleAlgorithm::kFourOverSix}) {
    Nvfp4Options options;
    options.algorithm = algorithm;
    const Nvfp4Tensor t = QuantizeBoth(zeros, {3, 16}, options);
    EXPECT_EQ(t.block_scales, ByteBuffer(3, 0x7E));
    for (float v : Dequantize(t)) EXPECT_EQ(v, 0.0f);
  }
}

// Static formula: s = E4M3(clamp((block_amax / 6 * C) / (global_amax / 6), 2^-9, 448)).
TEST(Nvfp4Max, StaticBlockScales) {
  std::vector<float> values(32, 0.0f);
  values[0] = 3.0f, values[16] = 0.001f;
  Nvfp4Options options;
  options.static_block_scales = true;
  const Nvfp4Tensor t = QuantizeBoth(values, {2, 16}, options);
  EXPECT_EQ(Bits(t.global_scale), Bits(3.0f / 2688.0f));
  EXPECT_EQ(t.block_scales[0], EncodeE4M3(((3.0f / 6.0f) * 448.0f) / (3.0f / 6.0f)));
  EXPECT_EQ(t.block_scales[1], EncodeE4M3(((0.001f / 6.0f) * 448.0f) / (3.0f / 6.0f)));
}

TEST(Nvfp4Mse, CandidateSets) {
  const std::vector<float> defaults = MseMultipliers(MseSweep{});
  ASSERT_EQ(defaults.size(), 39u);  // ceil(3.75 / 0.1) + 1
  EXPECT_EQ(defaults.front(), 0.25f);
  EXPECT_EQ(defaults.back(), 4.0f);
  const float step = 3.75f / 38.0f;
  EXPECT_EQ(defaults[1], 0.25f + step);
  EXPECT_EQ(defaults[37], 4.0f - step);
  EXPECT_EQ(MseMultipliers(MseSweep{1.0f, 1.5f, 0.5f, false}), (std::vector<float>{1.0f, 1.5f}));
  const std::vector<float> fp8 = MseMultipliers(MseSweep{0.25f, 4.0f, 0.1f, true});
  ASSERT_EQ(fp8.size(), 126u);
  EXPECT_EQ(fp8.front(), 0.001953125f / 448.0f);
  EXPECT_EQ(fp8.back(), 1.0f);
  EXPECT_THROW(MseMultipliers(MseSweep{1.0f, 0.5f, 0.1f, false}), Error);
  EXPECT_THROW(MseMultipliers(MseSweep{0.0f, 100.0f, 0.1f, false}), Error);  // > 255
}

TEST(Nvfp4Options, AlgorithmNames) {
  for (const auto algorithm : {BlockScaleAlgorithm::kMax, BlockScaleAlgorithm::kMse,
                               BlockScaleAlgorithm::kFourOverSix}) {
    EXPECT_EQ(ParseAlgorithm(AlgorithmName(algorithm)), algorithm);
  }
  EXPECT_EQ(AlgorithmName(BlockScaleAlgorithm::kFourOverSix), "four_over_six");
  EXPECT_FALSE(ParseAlgorithm("awq").has_value());
}

// An odd last dimension is zero-padded to a multiple of 16: same codes as explicit zeros.
TEST(Nvfp4Padding, OddLastDimensionIsZeroPadded) {
  const std::vector<float> values = nvfp4_test::RandomTensor(nvfp4_test::Kind::kNormal, 3 * 20, 3);
  std::vector<float> padded(3 * 32, 0.0f);
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 20; ++c) padded[r * 32 + c] = values[r * 20 + c];
  }
  for (const auto algorithm : {BlockScaleAlgorithm::kMax, BlockScaleAlgorithm::kFourOverSix}) {
    Nvfp4Options options;
    options.algorithm = algorithm;
    const Nvfp4Tensor odd = QuantizeBoth(values, {3, 20}, options);
    const Nvfp4Tensor even = QuantizeBoth(padded, {3, 32}, options);
    EXPECT_EQ(odd.cols, 20);
    EXPECT_EQ(odd.padded_cols, 32);
    EXPECT_EQ(odd.codes, even.codes);
    EXPECT_EQ(odd.block_scales, even.block_scales);
    std::vector<float> deq(60);
    DequantizeNvfp4(odd, deq);  // drops the padding
    EXPECT_EQ(deq, Dequantize(odd));
  }
}

TEST(Nvfp4Errors, NonFiniteEmptyAndOverride) {
  std::vector<float> values(40, 1.0f);
  values[21] = std::nanf("");
  const TensorView nan_view = MakeView(std::span<const float>(values), {2, 20}, "layer.weight");
  for (auto quantize : {+[](const TensorView& v) { return QuantizeNvfp4(v, {}); },
                        +[](const TensorView& v) { return ReferenceQuantizeNvfp4(v, {}); }}) {
    try {
      quantize(nan_view);
      ADD_FAILURE() << "NaN accepted";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("layer.weight"), std::string::npos) << what;
      EXPECT_NE(what.find("element 21"), std::string::npos) << what;
      EXPECT_NE(what.find("NaN"), std::string::npos) << what;
    }
  }
  values[21] = -INFINITY;
  EXPECT_THROW(QuantizeNvfp4(nan_view, {}), Error);
  EXPECT_THROW(ReferenceQuantizeNvfp4(nan_view, {}), Error);

  const std::vector<float> none;
  const TensorView empty = MakeView(std::span<const float>(none), {0, 16}, "empty");
  EXPECT_THROW(QuantizeNvfp4(empty, {}), Error);
  EXPECT_THROW(ReferenceQuantizeNvfp4(empty, {}), Error);

  values[21] = 5.0f;
  Nvfp4Options options;
  options.global_amax = 4.0f;  // below the tensor's own amax 5
  const TensorView view = MakeView(std::span<const float>(values), {2, 20}, "q_proj");
  try {
    QuantizeNvfp4(view, options);
    ADD_FAILURE() << "small global_amax accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q_proj"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ReferenceQuantizeNvfp4(view, options), Error);
  options.global_amax = 5.0f;  // equal is fine (it is the group max)
  EXPECT_NO_THROW(QuantizeNvfp4(view, options));
}

// The amax scan runs beside the outputs' allocation, in chunks of 2^16 elements on a pool: with
// bad values in several chunks the error still names the first one, for any thread count.
TEST(Nvfp4Errors, FirstNonFiniteAcrossChunksAndThreads) {
  std::vector<uint16_t> bf16(48 * 6830, EncodeBF16(0.5f));  // 5 chunks and part of a sixth
  bf16[3 * 65536 + 7] = 0x7F80;  // +Inf in chunk 3
  bf16[2 * 65536 + 100] = 0xFFC1;  // a negative NaN in chunk 2: the first
  bf16.back() = 0x7FC0;  // chunk 5
  const TensorView view = MakeView(std::span<const uint16_t>(bf16),
                                   {static_cast<int64_t>(bf16.size() / 48), 48}, "mlp.up_proj");
  for (const size_t threads : {1u, 2u, 3u}) {
    ThreadPool pool(threads);
    for (const auto algorithm : {BlockScaleAlgorithm::kMax, BlockScaleAlgorithm::kFourOverSix}) {
      Nvfp4Options options;
      options.algorithm = algorithm;
      try {
        QuantizeNvfp4(view, options, &pool);
        ADD_FAILURE() << "NaN accepted, threads " << threads;
      } catch (const Error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("mlp.up_proj"), std::string::npos) << what;
        EXPECT_NE(what.find("element " + std::to_string(2 * 65536 + 100)), std::string::npos)
            << "threads " << threads << ": " << what;
      }
    }
  }
}

// Outputs of kMinRecycledBytes (1 MiB) and more come from ByteBuffer's huge-page-advised blocks
// (byte_buffer.h): the bytes equal those of row slices small enough to get plain heap memory
// (0.53 MB of codes each), quantized with the same global amax.
TEST(Nvfp4Output, LargeOutputsEqualSlices) {
  const int64_t rows = 8192, cols = 1040, slice_rows = 1024;  // codes: 4.26 MB in one piece
  std::vector<uint16_t> bf16(static_cast<size_t>(rows * cols));
  uint64_t state = 12345;
  for (uint16_t& v : bf16) {  // finite BF16 with a spread of exponents around 2^-6
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    v = static_cast<uint16_t>(((state >> 33) & 0x80FF) | (0x3800 + ((state >> 41) & 0x3FF)));
  }
  for (const auto algorithm : {BlockScaleAlgorithm::kMax, BlockScaleAlgorithm::kFourOverSix}) {
    Nvfp4Options options;
    options.algorithm = algorithm;
    const Nvfp4Tensor whole =
        QuantizeNvfp4(MakeView(std::span<const uint16_t>(bf16), {rows, cols}, "w"), options);
    ASSERT_EQ(whole.codes.size(), static_cast<size_t>(rows * cols / 2));
    options.global_amax = whole.global_amax;
    for (int64_t r = 0; r < rows; r += slice_rows) {
      const auto slice = std::span<const uint16_t>(bf16).subspan(static_cast<size_t>(r * cols),
                                                                 static_cast<size_t>(slice_rows * cols));
      const Nvfp4Tensor part = QuantizeNvfp4(MakeView(slice, {slice_rows, cols}, "w"), options);
      const size_t blocks = static_cast<size_t>(slice_rows * cols / 16);
      const size_t first = static_cast<size_t>(r * cols / 16);
      ASSERT_TRUE(std::equal(part.codes.begin(), part.codes.end(), whole.codes.begin() + first * 8))
          << AlgorithmName(algorithm) << " rows from " << r;
      ASSERT_TRUE(std::equal(part.block_scales.begin(), part.block_scales.end(),
                             whole.block_scales.begin() + first))
          << AlgorithmName(algorithm) << " rows from " << r;
      ASSERT_EQ(part.chosen_candidate.size(), whole.chosen_candidate.empty() ? 0 : blocks);
    }
  }
}

// The loss tree adds neighbours e[2i] + e[2i + 1] first: with these values a left-to-right sum
// and a tree that adds e[i] + e[i + 8] first give other results (1 + 2^-24 rounds to 1).
TEST(Nvfp4Loss, FixedTreeOrder) {
  float e[16] = {};
  e[0] = 1.0f, e[8] = 0x1p-24f, e[9] = 0x1p-24f;
  const float tree = ReferenceBlockLoss(std::span<const float, 16>(e, 16));
  float p[8], r[4];
  for (int i = 0; i < 8; ++i) p[i] = e[2 * i] + e[2 * i + 1];
  for (int i = 0; i < 4; ++i) r[i] = p[i] + p[i + 4];
  EXPECT_EQ(tree, (r[0] + r[2]) + (r[1] + r[3]));
  EXPECT_EQ(tree, 1.0f + 0x1p-23f);  // e[8] + e[9] = 2^-23 is exact, then added to 1
  float sequential = 0.0f, halves[8], r2[4];
  for (int i = 0; i < 16; ++i) sequential += e[i];
  for (int i = 0; i < 8; ++i) halves[i] = e[i] + e[i + 8];
  for (int i = 0; i < 4; ++i) r2[i] = halves[i] + halves[i + 4];
  EXPECT_NE(tree, sequential);
  EXPECT_NE(tree, (r2[0] + r2[2]) + (r2[1] + r2[3]));
}

}  // namespace
}  // namespace qf
