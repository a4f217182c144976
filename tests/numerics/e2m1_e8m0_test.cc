// FP4 E2M1 and E8M0 codecs against the spec-derived references: every code, every BF16 and FP16
// input (E2M1), random binary32 inputs (E8M0), and golden tables with one named case per row.
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
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

TEST(E2M1Test, EveryCodeDecodesLikeSpec) {
  EXPECT_TRUE(AllMatch(16, [](uint64_t code) -> std::string {
    const double expected = ReferenceDecode(kE2M1Spec, static_cast<uint32_t>(code));
    const float actual = DecodeE2M1(static_cast<uint8_t>(code));
    if (actual == expected && std::signbit(actual) == std::signbit(expected)) return "";
    return "code " + Hex(code) + ": expected " + std::to_string(expected) + ", got " +
           std::to_string(actual);
  }));
}

// Every code re-encodes to itself except 0x8 (-0): the sign rule (x < 0) stores -0.0 as 0x0.
TEST(E2M1Test, EveryCodeRoundTripsExceptNegativeZero) {
  for (uint8_t code = 0; code < 16; ++code) {
    const uint8_t expected = code == 0x8 ? 0x0 : code;
    EXPECT_EQ(Hex(EncodeE2M1(DecodeE2M1(code))), Hex(expected)) << "code " << Hex(code);
  }
}

TEST(E2M1Test, DecodeReadsOnlyTheLowNibble) {
  EXPECT_EQ(DecodeE2M1(0xF1), 0.5f);  // high nibble (the other element of a byte) ignored
  EXPECT_EQ(DecodeE2M1(0x2F), -6.0f);
}

TEST(E2M1Test, EveryBF16AndFP16InputEncodesLikeSpec) {
  EXPECT_TRUE(AllMatch(2 * 65536, [](uint64_t i) -> std::string {
    const uint32_t bits = static_cast<uint32_t>(i & 0xFFFF);
    const bool is_bf16 = i < 65536;
    const float x = is_bf16 ? std::bit_cast<float>(bits << 16)
                            : static_cast<float>(ReferenceDecode(kFP16Spec, bits));
    const uint32_t expected = ReferenceEncode(kE2M1Spec, x);
    const uint32_t actual = EncodeE2M1(x);
    if (actual == expected) return "";
    return std::string(is_bf16 ? "bf16 " : "fp16 ") + Hex(bits) + " (" + std::to_string(x) +
           "): expected " + Hex(expected) + ", got " + Hex(actual);
  }));
}

TEST(E2M1Test, GoldenEncode) {
  struct Case {
    float x;
    uint8_t code;
  };
  const Case cases[] = {
      {0.0f, 0x0},     // +0
      {-0.0f, 0x0},    // -0.0 is not < 0: stored as +0 (ModelOpt's sign rule)
      {-0.1f, 0x8},    // negative rounding to zero keeps the sign bit: 0x8
      {0.25f, 0x0},    // tie 0 / 0.5: even code 0
      {-0.25f, 0x8},   // same tie, negative
      {0.2501f, 0x1},  // just above the tie
      {0.5f, 0x1},     // the one subnormal
      {0.75f, 0x2},    // tie 0.5 / 1: even code 2 (up)
      {0.7499f, 0x1},  // just below that tie
      {1.25f, 0x2},    // tie 1 / 1.5: even code 2 (down)
      {1.75f, 0x4},    // tie 1.5 / 2: even code 4 (up)
      {2.5f, 0x4},     // tie 2 / 3: even code 4 (down)
      {3.5f, 0x6},     // tie 3 / 4: even code 6 (up)
      {5.0f, 0x6},     // tie 4 / 6: even code 6 (down)
      {5.0001f, 0x7},  // just above that tie
      {6.0f, 0x7},     // largest
      {-6.0f, 0xF},    // most negative
      {7.0f, 0x7},     // overflow saturates at 6
      {kInf, 0x7},     // +Inf saturates
      {-kInf, 0xF},    // -Inf saturates at -6
      {kNaN, 0x7},     // NaN: no code; lands on 6 with the sign clear
      {-kNaN, 0x7},    // even a negative NaN (NaN < 0 is false)
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Hex(EncodeE2M1(c.x)), Hex(c.code)) << "x = " << c.x;
  }
}

TEST(E8M0Test, EveryCodeDecodesLikeSpecAndRoundTrips) {
  EXPECT_TRUE(AllMatch(256, [](uint64_t code) -> std::string {
    const double expected = ReferenceDecodeE8M0(static_cast<uint32_t>(code));
    const float decoded = DecodeE8M0(static_cast<uint8_t>(code));
    const bool decode_ok = std::isnan(expected) ? std::isnan(decoded) : decoded == expected;
    const uint32_t reencoded = EncodeE8M0(decoded);  // 0xFF (NaN) re-encodes to 0xFF
    if (decode_ok && reencoded == code) return "";
    return "code " + Hex(code) + ": decodes to " + std::to_string(decoded) + " (expected " +
           std::to_string(expected) + "), re-encodes to " + Hex(reencoded);
  }));
}

TEST(E8M0Test, EveryBF16InputEncodesLikeSpec) {
  EXPECT_TRUE(AllMatch(65536, [](uint64_t bits) -> std::string {
    const float x = std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
    const uint32_t expected = ReferenceEncodeE8M0(x);
    const uint32_t actual = EncodeE8M0(x);
    if (actual == expected) return "";
    return "bf16 " + Hex(bits) + ": expected " + Hex(expected) + ", got " + Hex(actual);
  }));
}

TEST(E8M0Test, RandomBinary32InputsEncodeLikeSpec) {
  std::mt19937 rng(20261123);
  EXPECT_TRUE(AllMatch(20000, [&](uint64_t) -> std::string {
    const uint32_t bits = static_cast<uint32_t>(rng());
    const float x = std::bit_cast<float>(bits);
    const uint32_t expected = ReferenceEncodeE8M0(x);
    const uint32_t actual = EncodeE8M0(x);
    if (actual == expected) return "";
    return "f32 " + Hex(bits) + ": expected " + Hex(expected) + ", got " + Hex(actual);
  }));
}

TEST(E8M0Test, GoldenEncode) {
  struct Case {
    float x;
    uint8_t code;
  };
  const float two_pow_minus_127 = std::ldexp(1.0f, -127);  // binary32 subnormal 0x00400000
  const Case cases[] = {
      {1.0f, 127},                                    // 2^0
      {2.0f, 128},                                    // 2^1
      {0.5f, 126},                                    // 2^-1
      {-4.0f, 129},                                   // sign dropped: |x|
      {1.4999999f, 127},                              // below the midpoint 1.5: down
      {1.5f, 128},                                    // tie 1 / 2: even code 128 (up)
      {3.0f, 128},                                    // tie 2 / 4: even code 128 (down)
      {1.5000001f, 128},                              // above the midpoint: up
      {std::ldexp(1.0f, 127), 254},                   // largest, 2^127
      {std::numeric_limits<float>::max(), 254},       // would round to 2^128: saturates
      {kInf, 254},                                    // Inf saturates
      {kNaN, 255},                                    // NaN code
      {0.0f, 0},                                      // zero -> 2^-127
      {two_pow_minus_127, 0},                         // smallest, 2^-127 (a binary32 subnormal)
      {std::ldexp(1.0f, -126), 1},                    // 2^-126
      {1.5f * two_pow_minus_127, 0},                  // tie 2^-127 / 2^-126: even code 0
      {std::ldexp(1.75f, -127), 1},                   // above that tie: up
      {std::numeric_limits<float>::denorm_min(), 0},  // 2^-149 saturates to 2^-127
  };
  for (const Case& c : cases) {
    EXPECT_EQ(static_cast<int>(EncodeE8M0(c.x)), c.code) << "x = " << c.x;
  }
}

TEST(E8M0Test, FromExponentClamps) {
  EXPECT_EQ(E8M0FromExponent(0), 127);    // 2^0
  EXPECT_EQ(E8M0FromExponent(-127), 0);   // smallest
  EXPECT_EQ(E8M0FromExponent(-200), 0);   // clamped up
  EXPECT_EQ(E8M0FromExponent(127), 254);  // largest
  EXPECT_EQ(E8M0FromExponent(128), 254);  // clamped down: never the NaN code
}

TEST(E8M0Test, GoldenDecode) {
  EXPECT_EQ(DecodeE8M0(127), 1.0f);
  EXPECT_EQ(DecodeE8M0(0), std::ldexp(1.0f, -127));  // exact binary32 subnormal
  EXPECT_EQ(DecodeE8M0(254), std::ldexp(1.0f, 127));
  EXPECT_TRUE(std::isnan(DecodeE8M0(255)));
}

}  // namespace
}  // namespace qf::test
