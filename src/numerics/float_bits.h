// Bit-level helpers shared by the scalar codecs in src/numerics (internal, not a public header).
//
// The narrow binary formats (E4M3, E5M2, FP16) all round the same way: take |x| as an IEEE
// binary32, drop the low significand bits the target cannot hold, and round the kept part.
// TruncateMagnitude does the dropping once, so nearest-even (EncodeE4M3/E5M2/FP16) and stochastic
// rounding (EncodeFP16Stochastic) are two small decisions on the same split.
#pragma once

#include <bit>
#include <cstdint>

namespace qf {

inline uint32_t FloatBits(float x) { return std::bit_cast<uint32_t>(x); }
inline float FloatFromBits(uint32_t bits) { return std::bit_cast<float>(bits); }

// binary32 layout: sign (bit 31), exponent (bits 30..23, bias 127), fraction (bits 22..0).
inline constexpr uint32_t kF32SignMask = 0x80000000u;
inline constexpr uint32_t kF32AbsMask = 0x7FFFFFFFu;
inline constexpr uint32_t kF32InfBits = 0x7F800000u;
inline constexpr int kF32FractionBits = 23;
inline constexpr int kF32Bias = 127;

inline bool IsNaNBits(uint32_t bits) { return (bits & kF32AbsMask) > kF32InfBits; }

// |x| in a target format with `fraction_bits` stored fraction bits and exponent bias `bias`,
// written as  |x| = (lower_code + dropped / 2^dropped_bits) * step,  where lower_code is the target
// code (exponent and fraction fields, no sign) of the largest representable value <= |x|, and
// step is the gap from that value to the next code. Codes of a binary format are ordered like
// their values, so "the next code" is lower_code + 1, even across a binade (fraction all ones
// plus one carries into the exponent field) and from the subnormals into the normals.
struct TruncatedMagnitude {
  uint32_t lower_code;
  uint32_t dropped;  // the discarded significand bits, < 2^dropped_bits
  int dropped_bits;  // may exceed 32 for inputs far below the target's smallest subnormal
};

// abs_bits: a finite, non-negative binary32 (sign clear). The caller has already saturated it to
// the target's largest finite value, so lower_code never exceeds the largest finite code.
inline TruncatedMagnitude TruncateMagnitude(uint32_t abs_bits, int fraction_bits, int bias) {
  const int biased_exp32 = static_cast<int>(abs_bits >> kF32FractionBits);
  uint32_t significand = abs_bits & ((1u << kF32FractionBits) - 1);
  int exponent;  // |x| = significand * 2^(exponent - 23)
  if (biased_exp32 == 0) {
    exponent = 1 - kF32Bias;  // binary32 subnormal (or zero): no implicit bit
  } else {
    exponent = biased_exp32 - kF32Bias;
    significand |= 1u << kF32FractionBits;  // the implicit leading 1
  }
  // The target keeps `fraction_bits` bits below the leading 1 while |x| is normal there
  // (exponent >= 1 - bias); below that its step is fixed at 2^(1 - bias - fraction_bits), so one
  // more bit is dropped per binade (target subnormals).
  const int min_normal_exp = 1 - bias;
  int dropped_bits = kF32FractionBits - fraction_bits;
  if (exponent < min_normal_exp) dropped_bits += min_normal_exp - exponent;

  TruncatedMagnitude t;
  t.dropped_bits = dropped_bits;
  if (dropped_bits >= 32) {  // everything is dropped (a shift by >= 32 is undefined in C++)
    t.lower_code = 0;
    t.dropped = significand;
    return t;
  }
  const uint32_t kept = significand >> dropped_bits;  // includes the implicit 1 when normal
  t.dropped = significand & ((1u << dropped_bits) - 1);
  if (exponent < min_normal_exp) {
    t.lower_code = kept;  // subnormal: exponent field 0, fraction = kept
  } else {
    // kept = 2^fraction_bits + fraction. Code = (biased exponent << fraction_bits) + fraction,
    // which is ((exponent + bias - 1) << fraction_bits) + kept: the implicit 1 adds the missing 1.
    t.lower_code = (static_cast<uint32_t>(exponent + bias - 1) << fraction_bits) + kept;
  }
  return t;
}

// Round to nearest, ties to even code: up when the dropped part is more than half a step, or
// exactly half and lower_code is odd. A carry out of the fraction moves into the exponent field
// (see TruncatedMagnitude), which is the right next value.
inline uint32_t RoundMagnitudeNearestEven(uint32_t abs_bits, int fraction_bits, int bias) {
  const TruncatedMagnitude t = TruncateMagnitude(abs_bits, fraction_bits, bias);
  // dropped < 2^24 always (it is at most the 24-bit significand), so for dropped_bits > 24 it is
  // below half a step and rounds down; only dropped_bits <= 24 needs the comparison.
  if (t.dropped_bits > 24) return t.lower_code;
  const uint32_t half = 1u << (t.dropped_bits - 1);
  const bool round_up = t.dropped > half || (t.dropped == half && (t.lower_code & 1u) != 0);
  return t.lower_code + (round_up ? 1u : 0u);
}

}  // namespace qf
