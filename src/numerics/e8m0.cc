// E8M0 scale codec (OCP Microscaling Formats (MX) v1.0, section 5.4.1; the MXFP4/MXFP8 block
// scale, stored by Model Optimizer as uint8 "e + 127").
//
// One unsigned byte, value 2^(code - 127): 0x00 = 2^-127, 0x7F = 1, 0xFE = 2^127, 0xFF = NaN.
// No sign, no zero, no infinity. 2^-127 is a binary32 subnormal (bits 0x00400000), still exact.
//
// EncodeE8M0 rounds |x| = 2^k * (1 + f), 0 <= f < 1, to a power of two as round-to-nearest-even
// with zero fraction bits would: f < 0.5 -> 2^k, f > 0.5 -> 2^(k+1), f == 0.5 (a tie, |x| = 1.5 *
// 2^k) -> whichever of the two codes is even. Results saturate to [2^-127, 2^127]; the sign is
// dropped (|x|) and 0 gives 2^-127; NaN gives 0xFF. MX quantizers normally compute the exponent
// themselves (ceil(log2(amax / max_element))) and call E8M0FromExponent.
#include <algorithm>
#include <cmath>

#include "quantforge/formats.h"
#include "src/numerics/float_bits.h"

namespace qf {
namespace {
constexpr uint8_t kNaNCode = 0xFF;
constexpr uint8_t kMaxCode = 0xFE;  // 2^127
}  // namespace

uint8_t EncodeE8M0(float x) {
  const uint32_t abs_bits = FloatBits(x) & kF32AbsMask;
  if (IsNaNBits(abs_bits)) return kNaNCode;
  if (abs_bits == kF32InfBits) return kMaxCode;
  const uint32_t fraction = abs_bits & 0x7FFFFFu;
  const uint32_t half = 0x400000u;  // f = 0.5
  const int biased_exp32 = static_cast<int>(abs_bits >> kF32FractionBits);
  if (biased_exp32 == 0) {
    // Zero or binary32 subnormal: |x| = fraction * 2^-149 < 2^-126. The candidates are 2^-127
    // (code 0, fraction 0x400000) and 2^-126 (code 1); their tie 1.5 * 2^-127 (0x600000) goes to
    // the even code 0. Smaller values saturate to 2^-127.
    return fraction > 0x600000u ? 1 : 0;
  }
  // Normal: |x| = 2^(biased_exp32 - 127) * (1 + f); the E8M0 code of 2^(biased_exp32 - 127) is
  // biased_exp32 itself (both biases are 127).
  int code = biased_exp32;
  if (fraction > half || (fraction == half && (code & 1) != 0)) code += 1;
  return static_cast<uint8_t>(std::min<int>(code, kMaxCode));  // 2^128 would be NaN: saturate
}

float DecodeE8M0(uint8_t code) {
  if (code == kNaNCode) return NAN;
  return std::ldexp(1.0f, static_cast<int>(code) - 127);  // exact, 2^-127 included (subnormal)
}

uint8_t E8M0FromExponent(int exponent) {
  return static_cast<uint8_t>(std::clamp(exponent, -127, 127) + 127);
}

}  // namespace qf
