// QuantizeNvfp4 against the scalar reference, byte for byte, on every Highway target compiled
// into qf_kernels (AVX3_DL, AVX3, AVX2, SSE4, SSSE3, SCALAR on this machine): seeded tensors of
// every kind in nvfp4_test_util.h, F32 / BF16 / F16 inputs, odd shapes (blocks not a multiple of
// the 16-block group, last dimensions not a multiple of 16), every algorithm, hand-made rounding
// ties, and 1 versus 3 threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "hwy/tests/hwy_gtest.h"
#include "quantforge/formats.h"
#include "quantforge/quantize.h"
#include "src/quant/nvfp4_reference.h"
#include "tests/quant/nvfp4_order_sensitive.h"
#include "tests/quant/nvfp4_test_util.h"

namespace qf {
namespace {

using nvfp4_test::Kind;

struct Shape2 {
  int64_t rows, cols;
};
// 21 blocks (a partial group), odd widths padded to 16, a single element, a wide row.
constexpr Shape2 kShapes[] = {{7, 48}, {5, 37}, {1, 1}, {3, 16}, {2, 300}};

Nvfp4Options MakeOptions(BlockScaleAlgorithm algorithm) {
  Nvfp4Options options;
  options.algorithm = algorithm;
  return options;
}

std::vector<Nvfp4Options> AllOptions() {
  std::vector<Nvfp4Options> all = {MakeOptions(BlockScaleAlgorithm::kMax),
                                   MakeOptions(BlockScaleAlgorithm::kMse),
                                   MakeOptions(BlockScaleAlgorithm::kFourOverSix)};
  Nvfp4Options static_max = MakeOptions(BlockScaleAlgorithm::kMax);
  static_max.static_block_scales = true;
  all.push_back(static_max);
  Nvfp4Options dynamic_46 = MakeOptions(BlockScaleAlgorithm::kMax);
  dynamic_46.four_over_six_normalization = true;
  all.push_back(dynamic_46);
  Nvfp4Options sweep = MakeOptions(BlockScaleAlgorithm::kMse);
  sweep.mse.fp8_scale_sweep = true;
  all.push_back(sweep);
  return all;
}

std::string Describe(const Nvfp4Options& o) {
  return std::string(AlgorithmName(o.algorithm)) + (o.static_block_scales ? "+static" : "") +
         (o.four_over_six_normalization ? "+norm256" : "") +
         (o.mse.fp8_scale_sweep ? "+fp8_sweep" : "");
}

// Compares the dispatched quantizer with the reference for one input in F32, BF16 and F16.
void CheckAllDtypes(const std::vector<float>& values, Shape shape, const Nvfp4Options& options,
                    const std::string& what) {
  const TensorView f32 = MakeView(std::span<const float>(values), shape, "w");
  nvfp4_test::ExpectSameNvfp4(ReferenceQuantizeNvfp4(f32, options), QuantizeNvfp4(f32, options),
                              values, what + " F32");
  std::vector<uint16_t> bf16(values.size()), f16(values.size());
  std::vector<float> bf16_values(values.size()), f16_values(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    bf16[i] = EncodeBF16(values[i]);
    bf16_values[i] = DecodeBF16(bf16[i]);
    f16[i] = EncodeFP16(values[i]);
    f16_values[i] = DecodeFP16(f16[i]);
  }
  const TensorView bf16_view = MakeView(std::span<const uint16_t>(bf16), shape, "w");
  nvfp4_test::ExpectSameNvfp4(ReferenceQuantizeNvfp4(bf16_view, options),
                              QuantizeNvfp4(bf16_view, options), bf16_values, what + " BF16");
  bool f16_finite = true;  // values beyond 65504 become Inf in F16 and are rejected
  for (float v : f16_values) f16_finite = f16_finite && std::isfinite(v);
  if (!f16_finite) return;
  TensorView f16_view{DType::kF16, shape, std::as_bytes(std::span<const uint16_t>(f16)), "w"};
  nvfp4_test::ExpectSameNvfp4(ReferenceQuantizeNvfp4(f16_view, options),
                              QuantizeNvfp4(f16_view, options), f16_values, what + " F16");
}

using Nvfp4TargetTest = hwy::TestWithParamTarget;
HWY_TARGET_INSTANTIATE_TEST_SUITE_P(Nvfp4TargetTest);

TEST_P(Nvfp4TargetTest, RandomTensorsEqualReference) {
  uint32_t seed = 1;
  for (const Nvfp4Options& options : AllOptions()) {
    for (const Kind kind : nvfp4_test::kAllKinds) {
      for (const Shape2 s : kShapes) {
        const auto values = nvfp4_test::RandomTensor(kind, s.rows * s.cols, seed++);
        CheckAllDtypes(values, {s.rows, s.cols}, options,
                       Describe(options) + " " + nvfp4_test::KindName(kind) + " " +
                           std::to_string(s.rows) + "x" + std::to_string(s.cols));
      }
    }
  }
}

// Blocks whose dynamic scale lands exactly on every E4M3 rounding midpoint (and one ulp either
// side), holding elements exactly on every E2M1 tie. global_amax 2688 gives g = 1, so the block
// scale is amax / 6 exactly and elements divide by a representable scale.
TEST_P(Nvfp4TargetTest, RoundingTiesEqualReference) {
  std::vector<float> values;
  const float ties[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, -0.25f, -0.75f, -5.0f};
  for (int code = 1; code < 0x7E; ++code) {
    const float mid = 0.5f * (DecodeE4M3(static_cast<uint8_t>(code)) +
                              DecodeE4M3(static_cast<uint8_t>(code + 1)));
    for (const float s : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)}) {
      const float block_scale = DecodeE4M3(EncodeE4M3(s));
      std::vector<float> block(16, 0.0f);
      block[0] = 6.0f * s;  // the amax: s = block[0] / 6
      for (int i = 0; i < 10; ++i) block[1 + i] = ties[i] * block_scale;
      values.insert(values.end(), block.begin(), block.end());
    }
  }
  const int64_t rows = static_cast<int64_t>(values.size() / 16);
  Nvfp4Options options;
  options.global_amax = 2688.0f;
  for (const auto& [algorithm, static_scales] :
       {std::pair{BlockScaleAlgorithm::kMax, false}, std::pair{BlockScaleAlgorithm::kMax, true},
        std::pair{BlockScaleAlgorithm::kFourOverSix, false}}) {
    options.algorithm = algorithm;
    options.static_block_scales = static_scales;
    const TensorView view = MakeView(std::span<const float>(values), {rows, 16}, "ties");
    nvfp4_test::ExpectSameNvfp4(ReferenceQuantizeNvfp4(view, options),
                                QuantizeNvfp4(view, options), values, Describe(options) + " ties");
  }
}

// One block per positive finite BF16 value v (amax v, the other elements spread below it), so the
// block scales run through every E4M3 code, both clamps and the subnormal range, and elements land
// on many E2M1 boundaries. global_amax override 3.4e38 keeps every block valid.
TEST_P(Nvfp4TargetTest, EveryBF16AmaxEqualsReference) {
  std::vector<uint16_t> bf16;
  std::vector<float> values;
  for (uint32_t bits = 1; bits < 0x7F80; bits += 3) {
    for (int i = 0; i < 16; ++i) {
      const uint16_t element = static_cast<uint16_t>(i == 0 ? bits : (bits * (16 - i)) / 16);
      bf16.push_back(static_cast<uint16_t>(element | ((i % 3 == 1) ? 0x8000 : 0)));
      values.push_back(DecodeBF16(bf16.back()));
    }
  }
  const int64_t rows = static_cast<int64_t>(bf16.size() / 16);
  const TensorView view = MakeView(std::span<const uint16_t>(bf16), {rows, 16}, "sweep");
  for (const auto& [algorithm, global_amax] :
       {std::pair{BlockScaleAlgorithm::kMax, 0.0f}, std::pair{BlockScaleAlgorithm::kMax, 3.4e38f},
        std::pair{BlockScaleAlgorithm::kFourOverSix, 0.0f}}) {
    Nvfp4Options options = MakeOptions(algorithm);
    if (global_amax > 0) options.global_amax = global_amax;
    nvfp4_test::ExpectSameNvfp4(ReferenceQuantizeNvfp4(view, options),
                                QuantizeNvfp4(view, options), values,
                                Describe(options) + " bf16 sweep");
  }
}

// Views that start one element into a buffer (misaligned for every vector width).
TEST_P(Nvfp4TargetTest, MisalignedInputEqualsReference) {
  const auto values = nvfp4_test::RandomTensor(Kind::kStudentT, 1 + 9 * 64, 17);
  std::vector<uint16_t> bf16(values.size());
  for (size_t i = 0; i < values.size(); ++i) bf16[i] = EncodeBF16(values[i]);
  const std::vector<float> f32_input(values.begin() + 1, values.end());
  std::vector<float> bf16_input(values.size() - 1);
  for (size_t i = 0; i + 1 < values.size(); ++i) bf16_input[i] = DecodeBF16(bf16[i + 1]);
  for (const auto algorithm : {BlockScaleAlgorithm::kMax, BlockScaleAlgorithm::kFourOverSix}) {
    const Nvfp4Options options = MakeOptions(algorithm);
    const TensorView f32 = MakeView(std::span<const float>(values).subspan(1), {9, 64}, "w");
    nvfp4_test::ExpectSameNvfp4(ReferenceQuantizeNvfp4(f32, options), QuantizeNvfp4(f32, options),
                                f32_input, "misaligned F32");
    const TensorView b = MakeView(std::span<const uint16_t>(bf16).subspan(1), {9, 64}, "w");
    nvfp4_test::ExpectSameNvfp4(ReferenceQuantizeNvfp4(b, options), QuantizeNvfp4(b, options),
                                bf16_input, "misaligned BF16");
  }
}

TEST_P(Nvfp4TargetTest, LossSumOrderEqualsReference) {
  using nvfp4_test::OrderSensitive;
  static const OrderSensitive f32 = nvfp4_test::OrderSensitiveBlocks(false);
  static const OrderSensitive bf16 = nvfp4_test::OrderSensitiveBlocks(true);
  for (const OrderSensitive* set : {&f32, &bf16}) {
    const bool is_bf16 = set == &bf16;
    ASSERT_GE(set->blocks.size() / 16, 20u) << "too few order-sensitive blocks, bf16 " << is_bf16;
    Nvfp4Options options = MakeOptions(BlockScaleAlgorithm::kFourOverSix);
    options.global_amax = set->global_amax;
    const int64_t rows = static_cast<int64_t>(set->blocks.size() / 16);
    std::vector<uint16_t> bits(set->blocks.size());
    for (size_t i = 0; i < bits.size(); ++i) bits[i] = EncodeBF16(set->blocks[i]);
    const TensorView view =
        is_bf16 ? MakeView(std::span<const uint16_t>(bits), {rows, 16}, "order")
                : MakeView(std::span<const float>(set->blocks), {rows, 16}, "order");
    nvfp4_test::ExpectSameNvfp4(ReferenceQuantizeNvfp4(view, options),
                                QuantizeNvfp4(view, options), set->blocks,
                                is_bf16 ? "order-sensitive BF16" : "order-sensitive F32");
  }
}

// Several tasks (three flat runs of at most 16384 blocks; four tasks of 65 padded rows) on 1 and
// 3 threads: identical bytes.
TEST_P(Nvfp4TargetTest, ThreadCountDoesNotMatter) {
  ThreadPool three(3);
  for (const Shape2 s : {Shape2{5, 131072}, Shape2{200, 1000}}) {
    const auto values = nvfp4_test::RandomTensor(Kind::kStudentT, s.rows * s.cols, 99);
    std::vector<uint16_t> bf16(values.size());
    for (size_t i = 0; i < values.size(); ++i) bf16[i] = EncodeBF16(values[i]);
    const TensorView view = MakeView(std::span<const uint16_t>(bf16), {s.rows, s.cols}, "w");
    for (const auto algorithm : {BlockScaleAlgorithm::kMax, BlockScaleAlgorithm::kFourOverSix}) {
      const Nvfp4Options options = MakeOptions(algorithm);
      const Nvfp4Tensor one = QuantizeNvfp4(view, options, nullptr);
      const Nvfp4Tensor many = QuantizeNvfp4(view, options, &three);
      EXPECT_EQ(one.codes, many.codes);
      EXPECT_EQ(one.block_scales, many.block_scales);
      EXPECT_EQ(one.chosen_candidate, many.chosen_candidate);
      std::vector<float> a(values.size()), b(values.size());
      DequantizeNvfp4(one, a, nullptr);
      DequantizeNvfp4(many, b, &three);
      EXPECT_EQ(a, b);
    }
  }
}

}  // namespace
}  // namespace qf
