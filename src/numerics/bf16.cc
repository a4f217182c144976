// BF16 codec: bfloat16 is the upper 16 bits of an IEEE binary32 (sign, 8-bit exponent with bias
// 127, 7 fraction bits), torch.bfloat16. Decoding appends 16 zero bits, so it is exact.
//
// Encoding rounds the low 16 bits away, to nearest with ties to even, by the usual integer trick:
// add 0x7FFF plus the lowest kept bit, then truncate. BF16 has binary32's exponent range, so
// binary32 subnormals round to BF16 subnormals through the same trick.
// Differences from a plain IEEE cast (torch's x.to(torch.bfloat16)):
//   - finite values that would round past 0x7F7F (3.3895e38) saturate to +-0x7F7F instead of
//     overflowing to Inf (quantforge's common rule: finite in, finite out);
//   - NaN becomes the quiet NaN 0x7FC0 with the input's sign bit (torch returns 0x7FC0 for every
//     NaN, dropping the sign). +-Inf stays +-Inf.
#include "quantforge/formats.h"
#include "src/numerics/float_bits.h"

namespace qf {
namespace {
constexpr uint16_t kQuietNaN = 0x7FC0;
constexpr uint16_t kInf = 0x7F80;
constexpr uint16_t kMaxFinite = 0x7F7F;
}  // namespace

uint16_t EncodeBF16(float x) {
  const uint32_t bits = FloatBits(x);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  if (IsNaNBits(bits)) return sign | kQuietNaN;
  const uint32_t abs_bits = bits & kF32AbsMask;
  if (abs_bits == kF32InfBits) return sign | kInf;
  // Ties to even: 0x7FFF rounds a dropped part above 0x8000 up and below it down; at exactly 0x8000
  // the extra lowest-kept-bit makes it round up only when the kept part is odd.
  const uint32_t lowest_kept_bit = (abs_bits >> 16) & 1u;
  const uint32_t rounded = (abs_bits + 0x7FFFu + lowest_kept_bit) >> 16;
  if (rounded >= kInf) return sign | kMaxFinite;  // a finite input carried into the Inf code
  return sign | static_cast<uint16_t>(rounded);
}

float DecodeBF16(uint16_t bits) { return FloatFromBits(static_cast<uint32_t>(bits) << 16); }

}  // namespace qf
