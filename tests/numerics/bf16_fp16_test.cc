// BF16 and FP16 codecs against the spec-derived references: every 16-bit code decodes and
// re-encodes, seeded random binary32 inputs encode like the reference's nearest-code search, and
// golden tables name each case (ties, saturation where an IEEE cast would give Inf, NaN, -0,
// subnormals).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include "quantforge/formats.h"
#include "tests/numerics/reference.h"

namespace qf::test {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// The reference encoder's binary search needs each format's positive finite codes to decode in
// increasing order; check that from the spec formula for every format the tests use.
TEST(ReferenceTest, PositiveFiniteCodesDecodeInIncreasingOrder) {
  for (const FormatSpec* f : {&kE4M3Spec, &kE5M2Spec, &kE2M1Spec, &kFP16Spec, &kBF16Spec}) {
    double previous = -1.0;
    for (uint32_t code = 0; code < SignBit(*f); ++code) {
      if (ReferenceIsNaN(*f, code) || ReferenceIsInf(*f, code)) continue;
      const double value = ReferenceDecode(*f, code);
      ASSERT_GT(value, previous) << f->name << " code " << Hex(code);
      previous = value;
    }
  }
}

template <typename Encode, typename Decode>
::testing::AssertionResult EveryCodeDecodesAndRoundTrips(const FormatSpec& f, Encode encode,
                                                         Decode decode) {
  return AllMatch(65536, [&](uint64_t i) -> std::string {
    const uint32_t code = static_cast<uint32_t>(i);
    const double expected = ReferenceDecode(f, code);
    const float decoded = decode(static_cast<uint16_t>(code));
    const bool decode_ok =
        std::isnan(expected)
            ? std::isnan(decoded) && std::signbit(decoded) == std::signbit(expected)
            : decoded == expected && std::signbit(decoded) == std::signbit(expected);
    // NaN codes re-encode to the canonical quiet NaN of the same sign.
    const uint32_t expected_code = std::isnan(expected) ? (f.nan_code | (code & 0x8000)) : code;
    const uint32_t reencoded = encode(decoded);
    if (decode_ok && reencoded == expected_code) return "";
    return std::string(f.name) + " code " + Hex(code) + ": decodes to " + std::to_string(decoded) +
           " (expected " + std::to_string(expected) + "), re-encodes to " + Hex(reencoded) +
           " (expected " + Hex(expected_code) + ")";
  });
}

TEST(BF16Test, EveryCodeDecodesLikeSpecAndRoundTrips) {
  EXPECT_TRUE(EveryCodeDecodesAndRoundTrips(kBF16Spec, EncodeBF16, DecodeBF16));
}

TEST(FP16Test, EveryCodeDecodesLikeSpecAndRoundTrips) {
  EXPECT_TRUE(EveryCodeDecodesAndRoundTrips(kFP16Spec, EncodeFP16, DecodeFP16));
}

// Seeded random binary32 inputs: half uniform over all bit patterns (every exponent, NaN and Inf
// included), half with exponents in [-27, 17] where FP16's subnormals, normals and saturation are.
template <typename Encode>
::testing::AssertionResult RandomBinary32EncodeLikeSpec(const FormatSpec& f, Encode encode,
                                                        uint32_t seed) {
  std::mt19937 rng(seed);
  return AllMatch(200000, [&](uint64_t i) -> std::string {
    uint32_t bits = static_cast<uint32_t>(rng());
    if (i % 2 == 1) {
      const uint32_t exponent = 127 - 27 + static_cast<uint32_t>(rng() % 45);
      bits = (bits & 0x807FFFFFu) | (exponent << 23);
    }
    const float x = std::bit_cast<float>(bits);
    const uint32_t expected = ReferenceEncode(f, x);
    const uint32_t actual = encode(x);
    if (actual == expected) return "";
    return std::string(f.name) + " from f32 " + Hex(bits) + ": expected " + Hex(expected) +
           ", got " + Hex(actual);
  });
}

TEST(BF16Test, RandomBinary32EncodeLikeSpec) {
  EXPECT_TRUE(RandomBinary32EncodeLikeSpec(kBF16Spec, EncodeBF16, 1));
}

TEST(FP16Test, RandomBinary32EncodeLikeSpec) {
  EXPECT_TRUE(RandomBinary32EncodeLikeSpec(kFP16Spec, EncodeFP16, 2));
}

struct EncodeCase {
  uint32_t f32_bits;  // bits, so NaN payloads and exact ties are spelled out
  uint16_t code;
};

TEST(BF16Test, GoldenEncode) {
  const EncodeCase cases[] = {
      {0x3F800000, 0x3F80},  // 1.0
      {0x80000000, 0x8000},  // -0
      {0x3F808000, 0x3F80},  // 1 + 2^-8: tie 0x3F80 / 0x3F81, even code
      {0x3F818000, 0x3F82},  // 1 + 3 * 2^-8: tie 0x3F81 / 0x3F82, even code
      {0x3F808001, 0x3F81},  // just above a tie: up
      {0x7F7F0000, 0x7F7F},  // largest finite BF16, 3.3895e38
      {0x7F7F8000, 0x7F7F},  // tie largest / next (Inf): saturates (an IEEE cast gives Inf)
      {0x7F7FFFFF, 0x7F7F},  // FLT_MAX saturates (an IEEE cast gives Inf)
      {0xFF7FFFFF, 0xFF7F},  // -FLT_MAX saturates to -max
      {0x7F800000, 0x7F80},  // +Inf stays Inf
      {0xFF800000, 0xFF80},  // -Inf stays -Inf
      {0x7FC00000, 0x7FC0},  // quiet NaN
      {0xFFC00000, 0xFFC0},  // negative NaN keeps its sign
      {0x7F800001, 0x7FC0},  // signalling NaN with a low payload: quieted, not rounded to Inf
      {0x00010000, 0x0001},  // smallest BF16 subnormal 2^-133
      {0x00008000, 0x0000},  // half of it: tie to even 0
      {0x00018000, 0x0002},  // 1.5 * smallest subnormal: tie, even code 2
      {0x00000001, 0x0000},  // smallest binary32 subnormal 2^-149: rounds to 0
  };
  for (const EncodeCase& c : cases) {
    EXPECT_EQ(Hex(EncodeBF16(std::bit_cast<float>(c.f32_bits))), Hex(c.code))
        << "f32 " << Hex(c.f32_bits);
  }
}

TEST(FP16Test, GoldenEncode) {
  const EncodeCase cases[] = {
      {0x3F800000, 0x3C00},  // 1.0
      {0x80000000, 0x8000},  // -0
      {0x3EAAAAAB, 0x3555},  // 1/3 rounds down
      {0x3F801000, 0x3C00},  // 1 + 2^-11: tie 0x3C00 / 0x3C01, even code
      {0x3F803000, 0x3C02},  // 1 + 3 * 2^-11: tie 0x3C01 / 0x3C02, even code
      {0x477FE000, 0x7BFF},  // 65504, largest finite
      {0x477FEF00, 0x7BFF},  // 65519 rounds down to the max
      {0x477FF000, 0x7BFF},  // 65520 (tie max / 65536): saturates; an IEEE cast gives Inf
      {0x49742400, 0x7BFF},  // 1e6 saturates
      {0xC9742400, 0xFBFF},  // -1e6 saturates to -65504
      {0x7F800000, 0x7C00},  // +Inf stays Inf
      {0xFF800000, 0xFC00},  // -Inf stays -Inf
      {0x7FC00000, 0x7E00},  // NaN -> quiet NaN
      {0xFFC00001, 0xFE00},  // negative NaN keeps its sign, payload dropped
      {0x33800000, 0x0001},  // smallest subnormal 2^-24
      {0x33000000, 0x0000},  // half of it, 2^-25: tie to even 0
      {0x33000001, 0x0001},  // just above half of the smallest subnormal
      {0x33C00000, 0x0002},  // 1.5 * 2^-24: tie, even code 2
      {0x387FE000, 0x0400},  // largest subnormal + half a step: tie, carries into 2^-14 (even)
      {0x38800000, 0x0400},  // smallest normal 2^-14
      {0xB3000001, 0x8001},  // negative just above half the smallest subnormal
  };
  for (const EncodeCase& c : cases) {
    EXPECT_EQ(Hex(EncodeFP16(std::bit_cast<float>(c.f32_bits))), Hex(c.code))
        << "f32 " << Hex(c.f32_bits);
  }
}

TEST(FP16Test, GoldenDecode) {
  EXPECT_EQ(DecodeFP16(0x7BFF), 65504.0f);               // largest finite
  EXPECT_EQ(DecodeFP16(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(DecodeFP16(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(DecodeFP16(0xFC00), -kInf);                  // -Inf
  EXPECT_TRUE(std::isnan(DecodeFP16(0x7E00)));           // NaN
  EXPECT_TRUE(std::signbit(DecodeFP16(0x8000)));         // -0
  EXPECT_TRUE(std::isnan(DecodeBF16(0xFFC0)) && std::signbit(DecodeBF16(0xFFC0)));  // -NaN
  EXPECT_EQ(DecodeBF16(0x3F80), 1.0f);
  EXPECT_EQ(std::bit_cast<uint32_t>(DecodeBF16(0x0001)), 0x00010000u);  // subnormal, exact
}

}  // namespace
}  // namespace qf::test
