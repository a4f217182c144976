// FP8 E5M2 codec (OCP 8-bit Floating Point Specification v1.0, section 5.1.2; torch.float8_e5m2).
//
// Byte layout S.EEEEE.MM, exponent bias 15, IEEE-like (it is the top byte of an FP16):
//   E = 0:      subnormal, value = M * 2^-16 (0x01 = 2^-16 = 1.52587890625e-5)
//   E = 1..30:  normal, value = (1 + M/4) * 2^(E-15) (0x04 = 2^-14, 0x7B = 1.75 * 2^15 = 57344)
//   E = 31:     M = 0 is +-Inf (0x7C, 0xFC); M = 1..3 is NaN.
// Encoding: round to nearest, ties to even code; finite |x| > 57344 saturates to +-57344 (an IEEE
// style cast would give Inf from 61440 up); +-Inf stays +-Inf; NaN -> S.11111.11 (0x7F | sign).
#include <cmath>

#include "quantforge/formats.h"
#include "src/numerics/float_bits.h"

namespace qf {
namespace {
constexpr int kFractionBits = 2;
constexpr int kBias = 15;
constexpr uint8_t kNaNCode = 0x7F;
constexpr uint8_t kInfCode = 0x7C;
}  // namespace

uint8_t EncodeE5M2(float x) {
  const uint32_t bits = FloatBits(x);
  const uint8_t sign = static_cast<uint8_t>((bits >> 24) & 0x80);
  if (IsNaNBits(bits)) return sign | kNaNCode;
  const uint32_t abs_bits = bits & kF32AbsMask;
  if (abs_bits == kF32InfBits) return sign | kInfCode;
  float magnitude = FloatFromBits(abs_bits);
  if (magnitude > kE5M2Max) magnitude = kE5M2Max;  // rounding 57344 cannot reach the Inf code
  return sign | static_cast<uint8_t>(
                    RoundMagnitudeNearestEven(FloatBits(magnitude), kFractionBits, kBias));
}

float DecodeE5M2(uint8_t code) {
  const float sign = (code & 0x80) ? -1.0f : 1.0f;
  const int exponent_field = (code >> kFractionBits) & 0x1F;
  const int fraction = code & 0x3;
  if (exponent_field == 0x1F) return fraction == 0 ? sign * INFINITY : std::copysign(NAN, sign);
  if (exponent_field == 0) return sign * std::ldexp(static_cast<float>(fraction), 1 - kBias - 2);
  return sign * std::ldexp(1.0f + fraction / 4.0f, exponent_field - kBias);
}

}  // namespace qf
