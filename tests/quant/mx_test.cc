// MXFP4 / MXFP8 (QuantizeMx / DequantizeMx): the Highway kernels equal the scalar reference
// (src/quant/mx_reference.cc) byte for byte on every target, on seeded random tensors of odd
// shapes and every input dtype; 1 and 3 threads agree; hand-made blocks pin both scale rules
// (powers of two, just above, zero, tiny amax, saturation, ties, signed zeros, packing).
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "quantforge/error.h"
#include "quantforge/formats.h"
#include "quantforge/quantize.h"
#include "src/quant/mx_reference.h"
#include "tests/quant/mx_fp8_test_util.h"

namespace qf::test {
namespace {

constexpr MxElement kElements[] = {MxElement::kE2M1, MxElement::kE4M3};
constexpr MxScaleRule kRules[] = {MxScaleRule::kOcpFloor, MxScaleRule::kCeil};

std::string Name(MxElement e, MxScaleRule r) {
  return std::string(e == MxElement::kE2M1 ? "MXFP4" : "MXFP8") +
         (r == MxScaleRule::kCeil ? "/ceil" : "/ocp_floor");
}

// Quantizes with the library and the reference, compares codes, scales and the dequantized
// values bit for bit. `decoded` are the input values as F32 (what the reference sees).
void ExpectMatchesReference(const TensorView& view, const std::vector<float>& decoded,
                            MxElement element, MxScaleRule rule, ThreadPool* pool,
                            const std::string& what) {
  const int64_t rows = view.Rows(), cols = view.Cols();
  const MxTensor ref = ReferenceQuantizeMx(decoded, rows, cols, element, rule);
  const MxTensor got = QuantizeMx(view, element, rule, pool);
  ASSERT_EQ(got.rows, rows);
  ASSERT_EQ(got.cols, cols);
  ASSERT_EQ(got.padded_cols, ref.padded_cols);
  const int64_t per_byte = element == MxElement::kE2M1 ? 2 : 1;
  ExpectBytesEqual(ref.codes, got.codes, what + " codes", [&](size_t i) {
    const int64_t r = static_cast<int64_t>(i) * per_byte / ref.padded_cols;
    const int64_t c = static_cast<int64_t>(i) * per_byte % ref.padded_cols;
    return c < cols ? FloatWithBits(decoded[r * cols + c]) : std::string("(padding)");
  });
  ExpectBytesEqual(ref.scales, got.scales, what + " scales");
  std::vector<float> ref_out(rows * cols), got_out(rows * cols);
  ReferenceDequantizeMx(ref, ref_out);
  DequantizeMx(got, got_out, pool);
  for (size_t i = 0; i < ref_out.size(); ++i) {
    ASSERT_EQ(Bits(ref_out[i]), Bits(got_out[i]))
        << what << " dequantized " << i << ": " << FloatWithBits(ref_out[i]) << " vs "
        << FloatWithBits(got_out[i]);
  }
}

class MxKernelTest : public TargetTest {};
HWY_TARGET_INSTANTIATE_TEST_SUITE_P(MxKernelTest);

TEST_P(MxKernelTest, MatchesReferenceOnRandomTensors) {
  const int64_t shapes[][2] = {{1, 1}, {3, 31}, {2, 32}, {5, 33}, {4, 95}, {3, 130}, {7, 64}};
  uint32_t seed = 100;
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
      for (MxElement e : kElements) {
        for (MxScaleRule r : kRules) {
          const std::string what = Name(e, r) + " " + DistributionName(dist) + " " +
                                   std::to_string(shape[0]) + "x" + std::to_string(shape[1]);
          ExpectMatchesReference(MakeView(v, {shape[0], shape[1]}), v, e, r, nullptr,
                                 what + " F32");
          ExpectMatchesReference(MakeView(bf16, {shape[0], shape[1]}), bf16_decoded, e, r, nullptr,
                                 what + " BF16");
          ExpectMatchesReference(f16_view, f16_decoded, e, r, nullptr, what + " F16");
        }
      }
    }
  }
}

TEST_P(MxKernelTest, SharedExponentMatchesReferenceForEveryAmax) {
  // One block per amax: every positive finite BF16 value, and binary32 values within two ulps
  // of 6 * 2^k and 448 * 2^k for every k (the ceil rule's boundaries, subnormal quotients
  // included). Element 1 of each block is -amax / 3, the rest zero. Consecutive blocks mix
  // magnitudes, so the vector path's groups hold both small-amax (reference fallback) and normal
  // blocks.
  std::vector<float> amaxes;
  for (uint32_t b = 1; b < 0x7F80; ++b) amaxes.push_back(DecodeBF16(static_cast<uint16_t>(b)));
  for (float c : {6.0f, 448.0f, 1.0f}) {
    for (int k = -160; k <= 120; ++k) {
      const float center = std::ldexp(c, k);
      if (center == 0.0f || !std::isfinite(center)) continue;
      float lo = center, hi = center;
      amaxes.push_back(center);
      for (int step = 0; step < 2; ++step) {
        lo = std::nextafter(lo, 0.0f);
        hi = std::nextafter(hi, INFINITY);
        if (lo > 0.0f) amaxes.push_back(lo);
        if (std::isfinite(hi)) amaxes.push_back(hi);
      }
    }
  }
  std::mt19937 rng(7);
  std::shuffle(amaxes.begin(), amaxes.end(), rng);
  const int64_t cols = 32 * 64;
  const int64_t rows = (static_cast<int64_t>(amaxes.size()) + 63) / 64;
  std::vector<float> v(rows * cols, 0.0f);
  for (size_t i = 0; i < amaxes.size(); ++i) {
    v[i * 32] = amaxes[i];
    v[i * 32 + 1] = -amaxes[i] / 3.0f;
  }
  for (MxElement e : kElements) {
    for (MxScaleRule r : kRules) {
      ExpectMatchesReference(MakeView(v, {rows, cols}), v, e, r, nullptr,
                             Name(e, r) + " amax sweep");
    }
  }
}

TEST_P(MxKernelTest, DequantizesEveryCodeAndScaleLikeTheReference) {
  // Row r holds every code byte (E4M3: 256 codes = 8 blocks; E2M1: 256 bytes = every nibble
  // pair = 16 blocks); the scales sweep all 256 E8M0 codes across the rows (0xFF is NaN).
  for (MxElement e : kElements) {
    MxTensor t;
    t.element = e;
    t.rows = 16;
    t.cols = e == MxElement::kE2M1 ? 512 : 256;
    t.padded_cols = t.cols;
    for (int64_t r = 0; r < t.rows; ++r) {
      for (int c = 0; c < 256; ++c) t.codes.push_back(static_cast<uint8_t>(c));
      for (int64_t b = 0; b < t.cols / 32; ++b) {
        t.scales.push_back(static_cast<uint8_t>((r * 16 + b * 7) % 256));
      }
    }
    t.scales[5] = 0xFF;
    t.scales[6] = 0x00;
    t.scales[7] = 0xFE;
    std::vector<float> ref(t.rows * t.cols), got(t.rows * t.cols);
    ReferenceDequantizeMx(t, ref);
    DequantizeMx(t, got);
    for (size_t i = 0; i < ref.size(); ++i) {
      if (std::isnan(ref[i])) {
        ASSERT_TRUE(std::isnan(got[i])) << i;  // NaN payloads may differ with operand order
      } else {
        ASSERT_EQ(Bits(ref[i]), Bits(got[i]))
            << i << ": " << FloatWithBits(ref[i]) << " vs " << FloatWithBits(got[i]);
      }
    }
  }
}

TEST(MxTest, OneAndThreeThreadsGiveTheSameBytes) {
  // 300 x 1000: padded to 1024 columns, 64 rows per task, five tasks (the last one short).
  const std::vector<float> v = RandomValues(Distribution::kOutliers, 300 * 1000, 5);
  const auto bf16 = ToBF16(v);
  ThreadPool one(1), three(3);
  for (MxElement e : kElements) {
    for (MxScaleRule r : kRules) {
      const MxTensor a = QuantizeMx(MakeView(bf16, {300, 1000}), e, r, &one);
      const MxTensor b = QuantizeMx(MakeView(bf16, {300, 1000}), e, r, &three);
      EXPECT_EQ(a.codes, b.codes) << Name(e, r);
      EXPECT_EQ(a.scales, b.scales) << Name(e, r);
      std::vector<float> out1(v.size()), out3(v.size());
      DequantizeMx(a, out1, &one);
      DequantizeMx(a, out3, &three);
      EXPECT_EQ(0, std::memcmp(out1.data(), out3.data(), out1.size() * 4)) << Name(e, r);
    }
  }
}

TEST(MxTest, LongRowsSplitAcrossTasksMatchReference) {
  // Tasks are runs of 2,048 blocks: 3 x 70,001 (2,188 blocks per row, the last one padded) puts
  // task boundaries inside rows, and 1 x 200,001 is a single long row.
  ThreadPool three(3);
  for (const auto& shape : {std::pair<int64_t, int64_t>{3, 70001}, {1, 200001}}) {
    const std::vector<float> v = RandomValues(Distribution::kMixed, shape.first * shape.second, 77);
    for (MxElement e : kElements) {
      for (MxScaleRule r : kRules) {
        ExpectMatchesReference(MakeView(v, {shape.first, shape.second}), v, e, r, &three,
                               Name(e, r) + " long rows");
      }
    }
  }
}

// One 32-element block: block[0] = amax_value, then `rest` (zeros after).
std::vector<float> Block(float first, std::vector<float> rest = {}) {
  std::vector<float> b(32, 0.0f);
  b[0] = first;
  for (size_t i = 0; i < rest.size(); ++i) b[1 + i] = rest[i];
  return b;
}

uint8_t ScaleOf(const std::vector<float>& block, MxElement e, MxScaleRule r) {
  const MxTensor t = QuantizeMx(MakeView(block, {1, static_cast<int64_t>(block.size())}), e, r);
  return t.scales[0];
}

// Element code i of a one-row tensor (the nibble for E2M1).
uint8_t CodeAt(const MxTensor& t, int64_t i) {
  if (t.element == MxElement::kE4M3) return t.codes[i];
  return static_cast<uint8_t>((t.codes[i / 2] >> (4 * (i % 2))) & 0xF);
}

TEST(MxScaleRuleTest, PowersOfTwoAndJustAbove) {
  const float just_above_6 = std::nextafter(6.0f, 7.0f);
  const float just_above_448 = std::nextafter(448.0f, 500.0f);
  const float just_above_1 = std::nextafter(1.0f, 2.0f);
  // amax = 1: OCP floor(log2 1) - emax = -2 (E2M1) / -8 (E4M3); ceil(log2(1/6)) = -2,
  // ceil(log2(1/448)) = -8: both rules agree here.
  EXPECT_EQ(ScaleOf(Block(1.0f), MxElement::kE2M1, MxScaleRule::kOcpFloor), 127 - 2);
  EXPECT_EQ(ScaleOf(Block(1.0f), MxElement::kE2M1, MxScaleRule::kCeil), 127 - 2);
  EXPECT_EQ(ScaleOf(Block(1.0f), MxElement::kE4M3, MxScaleRule::kOcpFloor), 127 - 8);
  EXPECT_EQ(ScaleOf(Block(1.0f), MxElement::kE4M3, MxScaleRule::kCeil), 127 - 8);
  // Just above 1: floor unchanged; ceil unchanged too (1/6 is far from a power of two).
  EXPECT_EQ(ScaleOf(Block(just_above_1), MxElement::kE2M1, MxScaleRule::kOcpFloor), 125);
  // amax = 6 (E2M1 max) and 448 (E4M3 max): scale 1 under both rules.
  EXPECT_EQ(ScaleOf(Block(6.0f), MxElement::kE2M1, MxScaleRule::kOcpFloor), 127);
  EXPECT_EQ(ScaleOf(Block(6.0f), MxElement::kE2M1, MxScaleRule::kCeil), 127);
  EXPECT_EQ(ScaleOf(Block(448.0f), MxElement::kE4M3, MxScaleRule::kOcpFloor), 127);
  EXPECT_EQ(ScaleOf(Block(448.0f), MxElement::kE4M3, MxScaleRule::kCeil), 127);
  // One ulp above the element max: ceil moves to the next power (never clips), floor does not.
  EXPECT_EQ(ScaleOf(Block(just_above_6), MxElement::kE2M1, MxScaleRule::kCeil), 128);
  EXPECT_EQ(ScaleOf(Block(just_above_6), MxElement::kE2M1, MxScaleRule::kOcpFloor), 127);
  EXPECT_EQ(ScaleOf(Block(just_above_448), MxElement::kE4M3, MxScaleRule::kCeil), 128);
  EXPECT_EQ(ScaleOf(Block(just_above_448), MxElement::kE4M3, MxScaleRule::kOcpFloor), 127);
  // amax = 8 = 2^3: OCP e = 3 - 2 = 1, 8 / 2 = 4 exactly; ceil(log2(8/6)) = 1 as well.
  // amax = 7.9: OCP e = 0 and 7.9 saturates to 6 (code 7); ceil gives e = 1, 3.95 -> 4 (code 6).
  {
    const MxTensor ocp = QuantizeMx(MakeView(Block(7.9f), {1, 32}), MxElement::kE2M1);
    EXPECT_EQ(ocp.scales[0], 127);
    EXPECT_EQ(CodeAt(ocp, 0), 0x7);
    const MxTensor ceil =
        QuantizeMx(MakeView(Block(7.9f), {1, 32}), MxElement::kE2M1, MxScaleRule::kCeil);
    EXPECT_EQ(ceil.scales[0], 128);
    EXPECT_EQ(CodeAt(ceil, 0), 0x6);
  }
  // MXFP8 saturation: amax 500, OCP e = floor(log2 500) - 8 = 0, 500 -> 448 (0x7E), -500 -> 0xFE.
  {
    const MxTensor t =
        QuantizeMx(MakeView(Block(500.0f, {-500.0f, 1.0f}), {1, 32}), MxElement::kE4M3);
    EXPECT_EQ(t.scales[0], 127);
    EXPECT_EQ(t.codes[0], 0x7E);
    EXPECT_EQ(t.codes[1], 0xFE);
    EXPECT_EQ(t.codes[2], 0x38);  // 1.0
  }
}

TEST(MxScaleRuleTest, ZeroAndTinyAmax) {
  // All-zero block (with -0): smallest scale code 0 under both rules (docs/FORMATS.md).
  const std::vector<float> zeros = Block(0.0f, {-0.0f, 0.0f, -0.0f});
  for (MxElement e : kElements) {
    for (MxScaleRule r : kRules) EXPECT_EQ(ScaleOf(zeros, e, r), 0) << Name(e, r);
  }
  // Zero codes: E4M3 keeps the sign of -0 (0x80); OCP E2M1 follows qf::EncodeE2M1 (sign bit =
  // x < 0, so -0 -> 0x0); Model Optimizer's MXFP4 stores every zero as 0x8.
  const MxTensor fp8 = QuantizeMx(MakeView(zeros, {1, 32}), MxElement::kE4M3);
  EXPECT_EQ(fp8.codes[0], 0x00);
  EXPECT_EQ(fp8.codes[1], 0x80);
  const MxTensor ocp4 = QuantizeMx(MakeView(zeros, {1, 32}), MxElement::kE2M1);
  EXPECT_EQ(ocp4.codes[0], 0x00);
  const MxTensor mo4 = QuantizeMx(MakeView(zeros, {1, 32}), MxElement::kE2M1, MxScaleRule::kCeil);
  for (uint8_t byte : mo4.codes) EXPECT_EQ(byte, 0x88);

  // amax = 2^-127 (a binary32 subnormal): OCP e = -129 and ceil(log2(2^-127 / 6)) = -129 both
  // clamp to -127 (code 0); the element 2^-127 / 2^-127 = 1 -> E2M1 code 2, E4M3 0x38.
  const float two_m127 = std::ldexp(1.0f, -127);
  for (MxScaleRule r : kRules) {
    const MxTensor t4 = QuantizeMx(MakeView(Block(two_m127), {1, 32}), MxElement::kE2M1, r);
    EXPECT_EQ(t4.scales[0], 0);
    EXPECT_EQ(CodeAt(t4, 0), 0x2);
    const MxTensor t8 = QuantizeMx(MakeView(Block(-two_m127), {1, 32}), MxElement::kE4M3, r);
    EXPECT_EQ(t8.scales[0], 0);
    EXPECT_EQ(t8.codes[0], 0xB8);  // -1.0
  }
  // amax = 2^-149: 2^-149 / 6 underflows to 0 in binary32 -> e = -127 under ceil; OCP -151 ->
  // -127. The element 2^-22 rounds to 0; Model Optimizer's sign rule still writes 0x8.
  const float min_sub = std::numeric_limits<float>::denorm_min();
  EXPECT_EQ(CodeAt(QuantizeMx(MakeView(Block(min_sub), {1, 32}), MxElement::kE2M1), 0), 0x0);
  EXPECT_EQ(
      CodeAt(QuantizeMx(MakeView(Block(min_sub), {1, 32}), MxElement::kE2M1, MxScaleRule::kCeil),
             0),
      0x0);  // positive nonzero: !(x > 0) is false, and 2^-22 rounds to magnitude 0
  // Model Optimizer's binary32 descale: amax = 448 * 2^-127 * (1 + 2^-23/1.75) divides to a
  // quotient that rounds (subnormal spacing 2^-149) to exactly 2^-127, so e = -127, not the exact
  // ceil -126, and the element 448.0000x saturates to 448.
  const float just_above = std::nextafter(448.0f * two_m127, 1.0f);
  const MxTensor q =
      QuantizeMx(MakeView(Block(just_above), {1, 32}), MxElement::kE4M3, MxScaleRule::kCeil);
  EXPECT_EQ(q.scales[0], 0);
  EXPECT_EQ(q.codes[0], 0x7E);
}

TEST(MxScaleRuleTest, E2M1TiesAndPacking) {
  // amax 6 -> e = 0 under both rules, so elements are the inputs themselves.
  const std::vector<float> block =
      Block(6.0f, {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, -0.75f, -0.1f, -0.0f});
  const MxTensor ocp = QuantizeMx(MakeView(block, {1, 32}), MxElement::kE2M1);
  const MxTensor mo = QuantizeMx(MakeView(block, {1, 32}), MxElement::kE2M1, MxScaleRule::kCeil);
  // OCP rule = qf::EncodeE2M1: ties to the even code (0.75 -> 1.0, 1.75 -> 2, 3.5 -> 4, 5 -> 4).
  const uint8_t ocp_expected[] = {0x7, 0x0, 0x2, 0x2, 0x4, 0x4, 0x6, 0x6, 0xA, 0x8, 0x0, 0x0};
  // Model Optimizer's MXFP4 export: ties down (0.75 -> 0.5, 1.75 -> 1.5, 3.5 -> 3, 5 -> 4);
  // the sign bit is !(x > 0): set for negatives, zeros and padding, clear for 0.25 (a positive
  // value that rounds to zero).
  const uint8_t mo_expected[] = {0x7, 0x0, 0x1, 0x2, 0x3, 0x4, 0x5, 0x6, 0x9, 0x8, 0x8, 0x8};
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(CodeAt(ocp, i), ocp_expected[i]) << i;
    EXPECT_EQ(CodeAt(mo, i), mo_expected[i]) << i;
  }
  // The even element sits in the low nibble: bytes {6, 0.25} -> 0x07, {0.75, 1.25} -> 0x22.
  EXPECT_EQ(ocp.codes[0], 0x07);
  EXPECT_EQ(ocp.codes[1], 0x22);
  EXPECT_EQ(mo.codes[0], 0x07);
  EXPECT_EQ(mo.codes[15], 0x88);  // elements 30 and 31: zeros
}

TEST(MxTest, OddLastDimensionIsZeroPadded) {
  // 2 x 33: padded to 64 columns (two blocks per row); the second block of each row holds one
  // value plus 31 padding zeros.
  std::vector<float> v(66);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.1f * static_cast<float>(i) - 3.0f;
  const MxTensor t8 = QuantizeMx(MakeView(v, {2, 33}), MxElement::kE4M3);
  EXPECT_EQ(t8.padded_cols, 64);
  EXPECT_EQ(t8.codes.size(), 128u);
  EXPECT_EQ(t8.scales.size(), 4u);
  for (int c = 33; c < 64; ++c) EXPECT_EQ(t8.codes[c], 0x00);
  const MxTensor t4 = QuantizeMx(MakeView(v, {2, 33}), MxElement::kE2M1, MxScaleRule::kCeil);
  EXPECT_EQ(t4.codes.size(), 64u);
  EXPECT_EQ(t4.codes[31], 0x88);  // padding zeros under Model Optimizer's sign rule
  std::vector<float> out(66);
  DequantizeMx(t8, out);
  EXPECT_EQ(out[32], DecodeE4M3(t8.codes[32]) * DecodeE8M0(t8.scales[1]));
}

TEST(MxTest, BadInputsThrow) {
  std::vector<float> v(100, 1.0f);
  v[77] = -std::numeric_limits<float>::infinity();
  ThreadPool three(3);
  try {
    QuantizeMx(MakeView(v, {4, 25}, "m.w"), MxElement::kE2M1, MxScaleRule::kOcpFloor, &three);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "tensor 'm.w': element 77 is -Inf; expected finite values (F32)");
  }
  const std::vector<float> empty;
  EXPECT_THROW(QuantizeMx(MakeView(empty, {0, 32}, "e"), MxElement::kE4M3), Error);
  MxTensor bad =
      QuantizeMx(MakeView(std::span<const float>(v).first(64), {2, 32}), MxElement::kE4M3);
  std::vector<float> out(64);
  bad.scales.pop_back();
  EXPECT_THROW(DequantizeMx(bad, out), Error);
  std::vector<float> short_out(63);
  EXPECT_THROW(DequantizeMx(QuantizeMx(MakeView(std::span<const float>(v).first(64), {2, 32}),
                                       MxElement::kE4M3),
                            short_out),
               Error);
}

}  // namespace
}  // namespace qf::test
