// FP8 E4M3 per-tensor / per-channel (QuantizeFp8 / DequantizeFp8): the Highway row kernels equal
// qf::EncodeE4M3(x / scale) and DecodeE4M3(code) * scale on every target (every finite BF16
// pattern, random binary32 patterns, every code); the quantizer equals the scalar reference
// (src/quant/fp8_reference.cc) byte for byte on seeded tensors of odd shapes and all dtypes,
// with and without an amax override; 1 and 3 threads agree; hand-made scale cases.
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "quantforge/error.h"
#include "quantforge/formats.h"
#include "quantforge/quantize.h"
#include "src/kernels/fp8_kernels.h"
#include "src/quant/fp8_reference.h"
#include "tests/quant/mx_fp8_test_util.h"

namespace qf::test {
namespace {

class Fp8KernelTest : public TargetTest {};
HWY_TARGET_INSTANTIATE_TEST_SUITE_P(Fp8KernelTest);

void ExpectRowMatchesCodec(const std::vector<float>& values, float scale, const std::string& what) {
  std::vector<uint8_t> expected(values.size()), got(values.size());
  for (size_t i = 0; i < values.size(); ++i) expected[i] = EncodeE4M3(values[i] / scale);
  QuantizeFp8Row(values, scale, got);
  ExpectBytesEqual(expected, got, what, [&](size_t i) { return FloatWithBits(values[i]); });
}

TEST_P(Fp8KernelTest, EncodesEveryFiniteBF16PatternLikeTheCodec) {
  // Every finite BF16 value (ties, E4M3 subnormals, saturation, -0) through scale 1, and through
  // a scale that is not a power of two so the division rounds. 65,535 values: a ragged tail.
  std::vector<float> values;
  for (uint32_t b = 0; b < 65536; ++b) {
    const float x = DecodeBF16(static_cast<uint16_t>(b));
    if (std::isfinite(x)) values.push_back(x);
  }
  ExpectRowMatchesCodec(values, 1.0f, "scale 1");
  ExpectRowMatchesCodec(values, 0.3701f, "scale 0.3701");
  ExpectRowMatchesCodec(values, std::ldexp(1.0f, -120), "scale 2^-120");
}

TEST_P(Fp8KernelTest, EncodesRandomBinary32PatternsLikeTheCodec) {
  std::mt19937 rng(42);
  std::vector<float> values;
  while (values.size() < 100003) {
    const uint32_t bits = rng();
    float x;
    std::memcpy(&x, &bits, 4);
    if (std::isfinite(x)) values.push_back(x);
  }
  ExpectRowMatchesCodec(values, 1.0f, "random bits");
  // Values near the E4M3 grid: k * 2^-12 covers ties and the subnormal/normal boundary.
  std::vector<float> grid;
  for (int k = -20000; k <= 20000; ++k) grid.push_back(static_cast<float>(k) * 0.000244140625f);
  ExpectRowMatchesCodec(grid, 1.0f, "grid");
  ExpectRowMatchesCodec(grid, 1.0f / 512, "grid scaled");
}

TEST_P(Fp8KernelTest, DecodesEveryCodeLikeTheCodec) {
  std::vector<uint8_t> codes(256 + 5);
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<uint8_t>(i);
  for (float scale : {1.0f, 0.0123f, 3.0e-38f, 1.0e30f}) {
    std::vector<float> out(codes.size());
    DequantizeFp8Row(codes, scale, out);
    for (size_t i = 0; i < codes.size(); ++i) {
      const float expected = DecodeE4M3(codes[i]) * scale;
      if (std::isnan(expected)) {
        EXPECT_TRUE(std::isnan(out[i])) << i;
      } else {
        EXPECT_EQ(Bits(expected), Bits(out[i])) << "code " << i << " scale " << scale;
      }
    }
  }
}

void ExpectMatchesReference(const TensorView& view, const std::vector<float>& decoded,
                            Fp8Granularity g, std::optional<float> amax, ThreadPool* pool,
                            const std::string& what) {
  const Fp8Tensor ref = ReferenceQuantizeFp8(decoded, view.Rows(), view.Cols(), g, amax);
  const Fp8Tensor got = QuantizeFp8(view, g, amax, pool);
  ASSERT_EQ(ref.scales.size(), got.scales.size()) << what;
  for (size_t i = 0; i < ref.scales.size(); ++i) {
    ASSERT_EQ(Bits(ref.scales[i]), Bits(got.scales[i])) << what << " scale " << i;
  }
  ExpectBytesEqual(ref.codes, got.codes, what, [&](size_t i) { return FloatWithBits(decoded[i]); });
  std::vector<float> ref_out(decoded.size()), got_out(decoded.size());
  ReferenceDequantizeFp8(ref, ref_out);
  DequantizeFp8(got, got_out, pool);
  for (size_t i = 0; i < ref_out.size(); ++i) {
    ASSERT_EQ(Bits(ref_out[i]), Bits(got_out[i])) << what << " dequantized " << i;
  }
}

TEST_P(Fp8KernelTest, QuantizerMatchesReferenceOnRandomTensors) {
  const int64_t shapes[][2] = {{1, 1}, {3, 31}, {5, 33}, {4, 95}, {7, 130}};
  uint32_t seed = 300;
  for (Distribution dist : kAllDistributions) {
    for (const auto& shape : shapes) {
      const std::vector<float> v = RandomValues(dist, shape[0] * shape[1], seed++);
      const auto bf16 = ToBF16(v);
      std::vector<float> bf16_decoded(v.size());
      for (size_t i = 0; i < v.size(); ++i) bf16_decoded[i] = DecodeBF16(bf16[i]);
      const auto f16 = ToF16(v);
      std::vector<float> f16_decoded(v.size());
      for (size_t i = 0; i < v.size(); ++i) f16_decoded[i] = DecodeFP16(f16[i]);
      const TensorView f16_view{
          DType::kF16, {shape[0], shape[1]}, std::as_bytes(std::span<const uint16_t>(f16)), "h"};
      for (Fp8Granularity g : {Fp8Granularity::kPerTensor, Fp8Granularity::kPerChannel}) {
        // No override; an override below the amax (saturates); a larger one.
        for (std::optional<float> amax :
             {std::optional<float>(), std::optional<float>(0.01f), std::optional<float>(1000.0f)}) {
          const std::string what = DistributionName(dist) + " " + std::to_string(shape[0]) + "x" +
                                   std::to_string(shape[1]) +
                                   (g == Fp8Granularity::kPerTensor ? " tensor" : " channel") +
                                   (amax ? " amax " + std::to_string(*amax) : "");
          ExpectMatchesReference(MakeView(v, {shape[0], shape[1]}), v, g, amax, nullptr,
                                 what + " F32");
          ExpectMatchesReference(MakeView(bf16, {shape[0], shape[1]}), bf16_decoded, g, amax,
                                 nullptr, what + " BF16");
          ExpectMatchesReference(f16_view, f16_decoded, g, amax, nullptr, what + " F16");
        }
      }
    }
  }
}

TEST(Fp8Test, OneAndThreeThreadsGiveTheSameBytes) {
  // 400 x 700 = 280,000 elements: five per-tensor chunks, several row groups per channel.
  const std::vector<float> v = RandomValues(Distribution::kHeavyTailed, 400 * 700, 9);
  const auto bf16 = ToBF16(v);
  ThreadPool one(1), three(3);
  for (Fp8Granularity g : {Fp8Granularity::kPerTensor, Fp8Granularity::kPerChannel}) {
    const Fp8Tensor a = QuantizeFp8(MakeView(bf16, {400, 700}), g, std::nullopt, &one);
    const Fp8Tensor b = QuantizeFp8(MakeView(bf16, {400, 700}), g, std::nullopt, &three);
    EXPECT_EQ(a.codes, b.codes);
    EXPECT_EQ(a.scales, b.scales);
    std::vector<float> out1(v.size()), out3(v.size());
    DequantizeFp8(a, out1, &one);
    DequantizeFp8(a, out3, &three);
    EXPECT_EQ(0, std::memcmp(out1.data(), out3.data(), out1.size() * 4));
  }
}

TEST(Fp8Test, LongRowsMatchReference) {
  // Per-channel rows longer than one 65,536-element piece (2 x 70,001), with 3 threads.
  const std::vector<float> v = RandomValues(Distribution::kOutliers, 2 * 70001, 8);
  ThreadPool three(3);
  for (Fp8Granularity g : {Fp8Granularity::kPerTensor, Fp8Granularity::kPerChannel}) {
    ExpectMatchesReference(MakeView(v, {2, 70001}), v, g, std::nullopt, &three, "long rows");
  }
}

TEST(Fp8Test, HandMadeScales) {
  // amax 448: scale 1, every E4M3 value maps to itself.
  const std::vector<float> exact = {448.0f, -448.0f, 1.0f, -0.0f, 0.001953125f, 0.0f};
  const Fp8Tensor t = QuantizeFp8(MakeView(exact, {6}), Fp8Granularity::kPerTensor);
  ASSERT_EQ(t.scales.size(), 1u);
  EXPECT_EQ(t.scales[0], 1.0f);
  const ByteBuffer expected = {0x7E, 0xFE, 0x38, 0x80, 0x01, 0x00};
  EXPECT_EQ(t.codes, expected);
  // scale = amax / 448 in binary32 (not a reciprocal): amax 1 -> 1/448 rounded once.
  const std::vector<float> one = {1.0f, -0.5f};
  EXPECT_EQ(QuantizeFp8(MakeView(one, {2}), Fp8Granularity::kPerTensor).scales[0], 1.0f / 448.0f);
  // All-zero tensor and all-zero row: scale 1.0; -0 keeps its sign bit.
  const std::vector<float> zeros = {0.0f, -0.0f, 0.0f, 0.0f, 2.0f, -4.0f};
  const Fp8Tensor pc = QuantizeFp8(MakeView(zeros, {3, 2}), Fp8Granularity::kPerChannel);
  EXPECT_EQ(pc.scales, (std::vector<float>{1.0f, 1.0f, 4.0f / 448.0f}));
  EXPECT_EQ(pc.codes[1], 0x80);
  EXPECT_EQ(pc.codes[5], 0xFE);  // -4 / (4/448) = -448
  EXPECT_EQ(
      QuantizeFp8(MakeView(std::span<const float>(zeros).first(4), {4}), Fp8Granularity::kPerTensor)
          .scales[0],
      1.0f);
  // A tiny amax whose quotient underflows: 2^-149 / 448 = 0 -> scale 1.0, the value rounds to 0.
  const std::vector<float> tiny = {std::numeric_limits<float>::denorm_min()};
  const Fp8Tensor tt = QuantizeFp8(MakeView(tiny, {1}), Fp8Granularity::kPerTensor);
  EXPECT_EQ(tt.scales[0], 1.0f);
  EXPECT_EQ(tt.codes[0], 0x00);
  // Override below the amax: values saturate to +-448 instead of becoming NaN.
  const std::vector<float> big = {10.0f, -10.0f, 1.0f};
  const Fp8Tensor sat = QuantizeFp8(MakeView(big, {3}), Fp8Granularity::kPerTensor, 2.0f);
  EXPECT_EQ(sat.scales[0], 2.0f / 448.0f);
  EXPECT_EQ(sat.codes, (ByteBuffer{0x7E, 0xFE, 0x76}));  // 1 / (2/448) = 224 = 0x76
  // Per channel, the override applies to every row.
  const Fp8Tensor pco = QuantizeFp8(MakeView(big, {3, 1}), Fp8Granularity::kPerChannel, 2.0f);
  EXPECT_EQ(pco.scales, (std::vector<float>(3, 2.0f / 448.0f)));
}

TEST(Fp8Test, BadInputsThrow) {
  std::vector<float> v(60, 1.0f);
  v[41] = std::numeric_limits<float>::quiet_NaN();
  ThreadPool three(3);
  for (Fp8Granularity g : {Fp8Granularity::kPerTensor, Fp8Granularity::kPerChannel}) {
    try {
      QuantizeFp8(MakeView(v, {6, 10}, "f.w"), g, std::nullopt, &three);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()),
                "tensor 'f.w': element 41 is NaN; expected finite values (F32)");
    }
  }
  v[41] = 0.0f;
  EXPECT_THROW(QuantizeFp8(MakeView(v, {6, 10}, "f.w"), Fp8Granularity::kPerTensor, -1.0f), Error);
  EXPECT_THROW(QuantizeFp8(MakeView(v, {6, 10}, "f.w"), Fp8Granularity::kPerTensor,
                           std::numeric_limits<float>::infinity()),
               Error);
  const std::vector<float> empty;
  EXPECT_THROW(QuantizeFp8(MakeView(empty, {0}, "e"), Fp8Granularity::kPerChannel), Error);
  Fp8Tensor t = QuantizeFp8(MakeView(v, {6, 10}), Fp8Granularity::kPerChannel);
  std::vector<float> out(60);
  t.scales.resize(4);
  EXPECT_THROW(DequantizeFp8(t, out), Error);
  t.scales.resize(6);
  std::vector<float> short_out(59);
  EXPECT_THROW(DequantizeFp8(t, short_out), Error);
}

}  // namespace
}  // namespace qf::test
