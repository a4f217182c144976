// FP4 E2M1 codec (OCP Microscaling Formats (MX) v1.0, section 5.3.3; the NVFP4 and MXFP4 element).
//
// Nibble layout S.EE.M, exponent bias 1: codes 0..7 are 0, 0.5, 1, 1.5, 2, 3, 4, 6 (code 1 is the
// only subnormal, 0.5 = 1 * 2^-1); bit 3 is the sign, so 0x8 is -0. No Inf, no NaN.
//
// Encoding follows Model Optimizer's NVFP4 export (qtensor/nvfp4_tensor.py, a searchsorted over
// the midpoints [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5] with ties sent to the even code): round to
// nearest, a tie goes to the neighbour whose code is even, so the midpoints alternate between
// "<=" (tie goes down: 0.25, 1.25, 2.5, 5) and "<" (tie goes up: 0.75, 1.75, 3.5). Magnitudes above
// 6 saturate to 6. The sign bit is (x < 0): -0.03 -> 0x8 but -0.0 -> 0x0, as ModelOpt stores it.
// NaN compares false everywhere and so lands on code 7 (6.0) with a clear sign bit; callers reject
// NaN before this point. MXFP4 export rounds ties down instead: that is src/quant's concern.
#include <cmath>

#include "quantforge/formats.h"

namespace qf {
namespace {
constexpr float kE2M1Values[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
}  // namespace

uint8_t EncodeE2M1(float x) {
  const float a = std::fabs(x);
  uint8_t code;
  if (a <= 0.25f) {
    code = 0;  // tie 0.25 -> 0 (even)
  } else if (a < 0.75f) {
    code = 1;  // tie 0.75 -> 1.0 (code 2)
  } else if (a <= 1.25f) {
    code = 2;  // tie 1.25 -> 1.0 (code 2)
  } else if (a < 1.75f) {
    code = 3;  // tie 1.75 -> 2.0 (code 4)
  } else if (a <= 2.5f) {
    code = 4;  // tie 2.5 -> 2.0 (code 4)
  } else if (a < 3.5f) {
    code = 5;  // tie 3.5 -> 4.0 (code 6)
  } else if (a <= 5.0f) {
    code = 6;  // tie 5 -> 4.0 (code 6)
  } else {
    code = 7;  // (5, Inf] saturates to 6; NaN also lands here (every comparison above is false)
  }
  const uint8_t sign = (x < 0.0f) ? 0x8 : 0x0;
  return sign | code;
}

float DecodeE2M1(uint8_t code) {
  const float magnitude = kE2M1Values[code & 0x7];
  return (code & 0x8) ? -magnitude : magnitude;  // 0x8 -> -0.0f
}

}  // namespace qf
