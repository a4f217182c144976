// FP8 E4M3 "fn" codec (OCP 8-bit Floating Point Specification v1.0, section 5.1.1;
// torch.float8_e4m3fn; Model Optimizer's block scales and FP8 weights).
//
// Byte layout S.EEEE.MMM, exponent bias 7:
//   E = 0:      subnormal, value = M * 2^-9 (0x01 = 2^-9 = 0.001953125, 0x07 = 7 * 2^-9)
//   E = 1..15:  normal, value = (1 + M/8) * 2^(E-7) (0x08 = 2^-6, 0x7E = 1.75 * 2^8 = 448)
//   S.1111.111 (0x7F, 0xFF): NaN, the only special code. There is no infinity: the "fn" variant
//   gives the all-ones exponent to finite values up to 448.
// Encoding: round to nearest, ties to even code; |x| > 448 and +-Inf saturate to +-448 (torch's
// cast instead gives NaN from 464 up: Model Optimizer clamps before casting wherever that matters);
// NaN -> 0x7F with the input's sign bit; -0.0 and negatives that round to zero give 0x80.
#include <cmath>

#include "quantforge/formats.h"
#include "src/numerics/float_bits.h"

namespace qf {
namespace {
constexpr int kFractionBits = 3;
constexpr int kBias = 7;
constexpr uint8_t kNaNCode = 0x7F;
}  // namespace

uint8_t EncodeE4M3(float x) {
  const uint32_t bits = FloatBits(x);
  const uint8_t sign = static_cast<uint8_t>((bits >> 24) & 0x80);  // bit 31 -> bit 7
  if (IsNaNBits(bits)) return sign | kNaNCode;
  float magnitude = FloatFromBits(bits & kF32AbsMask);
  if (magnitude > kE4M3Max) magnitude = kE4M3Max;  // saturate finite overflow and Inf
  // Rounding a value <= 448 cannot pass 448 (448 is representable), so no NaN code can appear.
  return sign | static_cast<uint8_t>(
                    RoundMagnitudeNearestEven(FloatBits(magnitude), kFractionBits, kBias));
}

float DecodeE4M3(uint8_t code) {
  const float sign = (code & 0x80) ? -1.0f : 1.0f;
  const int exponent_field = (code >> kFractionBits) & 0xF;
  const int fraction = code & 0x7;
  if (exponent_field == 0xF && fraction == 0x7) return std::copysign(NAN, sign);
  if (exponent_field == 0) return sign * std::ldexp(static_cast<float>(fraction), 1 - kBias - 3);
  return sign * std::ldexp(1.0f + fraction / 8.0f, exponent_field - kBias);
}

}  // namespace qf
