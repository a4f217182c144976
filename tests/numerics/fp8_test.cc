// FP8 E4M3 (fn) and E5M2 codecs against the spec-derived references: every code, every BF16 and
// FP16 input, and golden tables with one named case per row.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "quantforge/formats.h"
#include "tests/numerics/reference.h"

namespace qf::test {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Equal as values, NaN matching NaN with the same sign, and -0 distinct from +0.
bool SameFloat(double expected, float actual) {
  if (std::isnan(expected))
    return std::isnan(actual) && std::signbit(expected) == std::signbit(actual);
  return static_cast<double>(actual) == expected && std::signbit(actual) == std::signbit(expected);
}

float FloatOfBF16(uint32_t bits) { return std::bit_cast<float>(bits << 16); }

template <typename Decode>
::testing::AssertionResult DecodesLikeReference(const FormatSpec& f, Decode decode) {
  return AllMatch(2 * SignBit(f), [&](uint64_t code) -> std::string {
    const double expected = ReferenceDecode(f, static_cast<uint32_t>(code));
    const float actual = decode(static_cast<uint8_t>(code));
    if (SameFloat(expected, actual)) return "";
    return "code " + Hex(code) + ": expected " + std::to_string(expected) + ", got " +
           std::to_string(actual);
  });
}

// decode -> encode is the identity on every code; a NaN code re-encodes to the canonical NaN of
// the same sign (E4M3 has only the canonical ones; E5M2 folds S.11111.{01,10} into S.11111.11).
template <typename Encode, typename Decode>
::testing::AssertionResult RoundTrips(const FormatSpec& f, Encode encode, Decode decode) {
  return AllMatch(2 * SignBit(f), [&](uint64_t code) -> std::string {
    const uint32_t sign = static_cast<uint32_t>(code) & SignBit(f);
    const uint32_t expected =
        ReferenceIsNaN(f, static_cast<uint32_t>(code)) ? (f.nan_code | sign) : code;
    const uint32_t actual = encode(decode(static_cast<uint8_t>(code)));
    if (actual == expected) return "";
    return "code " + Hex(code) + " re-encodes to " + Hex(actual) + ", expected " + Hex(expected);
  });
}

// Every BF16 bit pattern (as the float it widens to) and every FP16 bit pattern encodes like the
// reference's exhaustive nearest-code search.
template <typename Encode>
::testing::AssertionResult EncodesAllBF16AndFP16(const FormatSpec& f, Encode encode) {
  return AllMatch(2 * 65536, [&](uint64_t i) -> std::string {
    const uint32_t bits = static_cast<uint32_t>(i & 0xFFFF);
    const bool is_bf16 = i < 65536;
    const float x =
        is_bf16 ? FloatOfBF16(bits) : static_cast<float>(ReferenceDecode(kFP16Spec, bits));
    const uint32_t expected = ReferenceEncode(f, x);
    const uint32_t actual = encode(x);
    if (actual == expected) return "";
    return std::string(is_bf16 ? "bf16 " : "fp16 ") + Hex(bits) + " (" + std::to_string(x) +
           "): expected " + Hex(expected) + ", got " + Hex(actual);
  });
}

struct EncodeCase {
  float x;
  uint8_t code;
};

TEST(E4M3Test, EveryCodeDecodesLikeSpec) {
  EXPECT_TRUE(DecodesLikeReference(kE4M3Spec, DecodeE4M3));
}

TEST(E4M3Test, EveryCodeRoundTrips) { EXPECT_TRUE(RoundTrips(kE4M3Spec, EncodeE4M3, DecodeE4M3)); }

TEST(E4M3Test, EveryBF16AndFP16InputEncodesLikeSpec) {
  EXPECT_TRUE(EncodesAllBF16AndFP16(kE4M3Spec, EncodeE4M3));
}

TEST(E4M3Test, GoldenEncode) {
  const EncodeCase cases[] = {
      {0.0f, 0x00},           // +0
      {-0.0f, 0x80},          // -0 keeps its sign
      {1.0f, 0x38},           // exponent field 7 = bias
      {-2.75f, 0xC3},         // 1.375 * 2^1, negative
      {448.0f, 0x7E},         // largest finite, S.1111.110
      {449.0f, 0x7E},         // finite overflow saturates at 448
      {464.0f, 0x7E},         // midpoint 448..480: saturates (torch's cast gives NaN)
      {1.0e6f, 0x7E},         // far overflow saturates
      {-1.0e6f, 0xFE},        // negative overflow saturates at -448
      {kInf, 0x7E},           // +Inf saturates: no infinity in E4M3 fn
      {-kInf, 0xFE},          // -Inf saturates
      {kNaN, 0x7F},           // NaN -> S.1111.111
      {-kNaN, 0xFF},          // NaN keeps its sign
      {0.001953125f, 0x01},   // smallest subnormal 2^-9
      {0.0009765625f, 0x00},  // half of smallest subnormal 2^-10: tie to even code 0
      {std::nextafter(0.0009765625f, 1.0f), 0x01},  // just above half of smallest subnormal
      {-0.0009f, 0x80},                             // negative below half of smallest subnormal: -0
      {0.0029296875f, 0x02},  // 1.5 * 2^-9: tie between 0x01 and 0x02, even wins
      {0.013671875f, 0x07},   // largest subnormal 7 * 2^-9
      {0.0146484375f, 0x08},  // 7.5 * 2^-9: tie between 0x07 and smallest normal 0x08
      {0.015625f, 0x08},      // smallest normal 2^-6
      {1.0625f, 0x38},        // tie 1.0 / 1.125: even code 0x38
      {1.1875f, 0x3A},        // tie 1.125 / 1.25: even code 0x3A
      {17.0f, 0x58},          // tie 16 / 18: even code 0x58
      {248.0f, 0x78},         // tie 240 / 256 across a binade: 0x78 = 256
      {1.0e-40f, 0x00},       // binary32 subnormal input underflows to 0
  };
  for (const EncodeCase& c : cases) {
    EXPECT_EQ(Hex(EncodeE4M3(c.x)), Hex(c.code)) << "x = " << c.x;
  }
}

TEST(E4M3Test, GoldenDecode) {
  EXPECT_EQ(DecodeE4M3(0x7E), 448.0f);          // largest finite
  EXPECT_EQ(DecodeE4M3(0xFE), -448.0f);         // most negative
  EXPECT_EQ(DecodeE4M3(0x01), 0.001953125f);    // smallest subnormal 2^-9
  EXPECT_EQ(DecodeE4M3(0x08), 0.015625f);       // smallest normal 2^-6
  EXPECT_EQ(DecodeE4M3(0x38), 1.0f);            // one
  EXPECT_TRUE(std::signbit(DecodeE4M3(0x80)));  // -0
  EXPECT_EQ(DecodeE4M3(0x80), 0.0f);
  EXPECT_TRUE(std::isnan(DecodeE4M3(0x7F)));                                    // NaN
  EXPECT_TRUE(std::isnan(DecodeE4M3(0xFF)) && std::signbit(DecodeE4M3(0xFF)));  // -NaN
  EXPECT_EQ(DecodeE4M3(0x78), 256.0f);  // exponent field 15 is finite in fn
}

TEST(E5M2Test, EveryCodeDecodesLikeSpec) {
  EXPECT_TRUE(DecodesLikeReference(kE5M2Spec, DecodeE5M2));
}

TEST(E5M2Test, EveryCodeRoundTrips) { EXPECT_TRUE(RoundTrips(kE5M2Spec, EncodeE5M2, DecodeE5M2)); }

TEST(E5M2Test, EveryBF16AndFP16InputEncodesLikeSpec) {
  EXPECT_TRUE(EncodesAllBF16AndFP16(kE5M2Spec, EncodeE5M2));
}

TEST(E5M2Test, GoldenEncode) {
  const EncodeCase cases[] = {
      {0.0f, 0x00},                // +0
      {-0.0f, 0x80},               // -0
      {1.0f, 0x3C},                // exponent field 15 = bias
      {57344.0f, 0x7B},            // largest finite S.11110.11
      {61440.0f, 0x7B},            // midpoint 57344..65536: saturates (IEEE rounding gives Inf)
      {1.0e9f, 0x7B},              // far overflow saturates
      {-1.0e9f, 0xFB},             // negative overflow saturates
      {kInf, 0x7C},                // +Inf stays Inf
      {-kInf, 0xFC},               // -Inf stays -Inf
      {kNaN, 0x7F},                // NaN -> S.11111.11
      {-kNaN, 0xFF},               // NaN keeps its sign
      {1.52587890625e-5f, 0x01},   // smallest subnormal 2^-16
      {7.62939453125e-6f, 0x00},   // half of smallest subnormal 2^-17: tie to even 0
      {2.288818359375e-5f, 0x02},  // 1.5 * 2^-16: tie 0x01 / 0x02, even wins
      {6.103515625e-5f, 0x04},     // smallest normal 2^-14
      {1.125f, 0x3C},              // tie 1.0 / 1.25: even code 0x3C
      {1.375f, 0x3E},              // tie 1.25 / 1.5: even code 0x3E
  };
  for (const EncodeCase& c : cases) {
    EXPECT_EQ(Hex(EncodeE5M2(c.x)), Hex(c.code)) << "x = " << c.x;
  }
}

TEST(E5M2Test, GoldenDecode) {
  EXPECT_EQ(DecodeE5M2(0x7B), 57344.0f);           // largest finite
  EXPECT_EQ(DecodeE5M2(0x01), 1.52587890625e-5f);  // smallest subnormal
  EXPECT_EQ(DecodeE5M2(0x7C), kInf);               // +Inf
  EXPECT_EQ(DecodeE5M2(0xFC), -kInf);              // -Inf
  for (uint8_t nan_code : {0x7D, 0x7E, 0x7F}) {    // three NaN codes per sign
    EXPECT_TRUE(std::isnan(DecodeE5M2(nan_code)));
  }
  EXPECT_TRUE(std::signbit(DecodeE5M2(0x80)));  // -0
}

}  // namespace
}  // namespace qf::test
