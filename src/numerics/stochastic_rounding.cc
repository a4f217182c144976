// FP16 with stochastic rounding, driven by Philox4x32 (the Nemotron recipe keeps the Mamba SSM
// cache in FP16 this way, with a 5-round Philox).
//
// A value between two adjacent FP16 values lo <= |x| <= hi rounds to hi with probability
// p = (|x| - lo) / (hi - lo), so E[result] = x: rounding errors average out over many steps instead
// of drifting toward zero as nearest rounding of small updates does. TruncateMagnitude gives p
// exactly as dropped / 2^dropped_bits; hi is chosen when random_bits < p * 2^32, compared exactly
// (random_bits * 2^dropped_bits < dropped * 2^32), so with uniform random_bits
// P(hi) = ceil(p * 2^32) / 2^32. That is p itself whenever p * 2^32 is an integer, i.e.
// dropped_bits <= 32, which holds for every |x| >= 2^-33 (there the FP16 step is 2^-24 and the
// last binary32 bit is 2^-56 = 2^-24 * 2^-32); below, P(hi) exceeds p by less than 2^-32.
// Exactly representable values have dropped == 0 and never move.
// Saturation, Inf and NaN follow EncodeFP16: |x| > 65504 gives 65504 (no randomness: the next
// value up would be Inf), +-Inf and NaN are kept.
#include <cstddef>

#include "quantforge/formats.h"
#include "src/numerics/float_bits.h"

namespace qf {
namespace {
constexpr int kFractionBits = 10;
constexpr int kBias = 15;
}  // namespace

uint16_t EncodeFP16Stochastic(float x, uint32_t random_bits) {
  const uint32_t bits = FloatBits(x);
  const uint32_t abs_bits = bits & kF32AbsMask;
  if (abs_bits >= kF32InfBits || FloatFromBits(abs_bits) >= kFP16Max) {
    return EncodeFP16(x);  // NaN, Inf and saturation: deterministic
  }
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  const TruncatedMagnitude t = TruncateMagnitude(abs_bits, kFractionBits, kBias);
  // round_up <=> random_bits < p * 2^32 <=> random_bits < threshold = ceil(p * 2^32) <= 2^32 - 1.
  uint64_t threshold;
  if (t.dropped_bits <= 32) {
    threshold = static_cast<uint64_t>(t.dropped) << (32 - t.dropped_bits);  // exact
  } else if (t.dropped_bits - 32 < 32) {
    const int excess_bits = t.dropped_bits - 32;
    threshold =
        (static_cast<uint64_t>(t.dropped) + (uint64_t{1} << excess_bits) - 1) >> excess_bits;
  } else {
    threshold = t.dropped != 0 ? 1 : 0;  // 0 < p * 2^32 < 1: only random_bits == 0 rounds up
  }
  const bool round_up = random_bits < threshold;
  // lower_code + 1 is the next FP16 value up, at most 65504's code since |x| < 65504.
  return sign | static_cast<uint16_t>(t.lower_code + (round_up ? 1u : 0u));
}

void StochasticRoundToFP16(std::span<const float> in, std::span<uint16_t> out, uint64_t seed,
                           uint64_t counter_offset, int rounds) {
  // Callers pass equal sizes (kernels do not throw); extra output elements are left untouched.
  const size_t num_elements = in.size() < out.size() ? in.size() : out.size();
  const PhiloxKey key = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  PhiloxCounter random_words{};
  for (size_t i = 0; i < num_elements; ++i) {
    if (i % 4 == 0) {  // one Philox call serves four consecutive elements
      const uint64_t c = counter_offset + i / 4;
      random_words =
          Philox4x32({static_cast<uint32_t>(c), static_cast<uint32_t>(c >> 32), 0, 0}, key, rounds);
    }
    out[i] = EncodeFP16Stochastic(in[i], random_words[i % 4]);
  }
}

}  // namespace qf
