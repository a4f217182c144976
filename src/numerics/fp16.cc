// FP16 codec: IEEE 754 binary16 (torch.float16): sign, 5-bit exponent with bias 15, 10 fraction
// bits. Exponent 0 holds subnormals M * 2^-24 (smallest 5.96e-8); exponent 31 holds Inf
// (fraction 0) and NaN; the largest finite value is 0x7BFF = 65504.
//
// Encoding: round to nearest, ties to even, through TruncateMagnitude (float_bits.h). Differences
// from a plain IEEE cast (torch's x.to(torch.float16), F16C's vcvtps2ph):
//   - finite |x| > 65504 saturates to +-65504 instead of overflowing to Inf (an IEEE cast sends
//     [65520, Inf) to Inf); +-Inf stays +-Inf;
//   - NaN becomes the quiet NaN 0x7E00 with the input's sign (torch also gives 0x7E00 | sign;
//     F16C would keep the top payload bits).
// Decoding is exact; a NaN decodes to a quiet binary32 NaN with the same sign.
#include <cmath>

#include "quantforge/formats.h"
#include "src/numerics/float_bits.h"

namespace qf {
namespace {
constexpr int kFractionBits = 10;
constexpr int kBias = 15;
constexpr uint16_t kQuietNaN = 0x7E00;
constexpr uint16_t kInf = 0x7C00;
}  // namespace

uint16_t EncodeFP16(float x) {
  const uint32_t bits = FloatBits(x);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  if (IsNaNBits(bits)) return sign | kQuietNaN;
  const uint32_t abs_bits = bits & kF32AbsMask;
  if (abs_bits == kF32InfBits) return sign | kInf;
  float magnitude = FloatFromBits(abs_bits);
  if (magnitude > kFP16Max) magnitude = kFP16Max;  // saturate: rounding 65504 cannot reach Inf
  return sign | static_cast<uint16_t>(
                    RoundMagnitudeNearestEven(FloatBits(magnitude), kFractionBits, kBias));
}

float DecodeFP16(uint16_t bits) {
  const float sign = (bits & 0x8000) ? -1.0f : 1.0f;
  const int exponent_field = (bits >> kFractionBits) & 0x1F;
  const int fraction = bits & 0x3FF;
  if (exponent_field == 0x1F) return fraction == 0 ? sign * INFINITY : std::copysign(NAN, sign);
  if (exponent_field == 0) return sign * std::ldexp(static_cast<float>(fraction), 1 - kBias - 10);
  return sign * std::ldexp(1.0f + fraction / 1024.0f, exponent_field - kBias);
}

}  // namespace qf
