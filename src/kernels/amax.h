// Vectorized tensor scans used by every quantizer: max |x| with a non-finite flag, and widening
// of BF16 / F16 to F32. Plain C++ API over spans; the Highway bodies are in amax-inl.h and
// dispatch at run time to the best target (AVX3_DL, AVX3, AVX2, SSE4, ..., SCALAR).
//
// Max |x| is computed on the bit patterns: for IEEE-like formats, |x| ordered as a float equals
// (bits & abs_mask) ordered as an unsigned integer, and NaN / Inf are exactly the patterns at or
// above the Inf pattern. So one integer max gives both the amax (exact, no float rounding, -0 and
// subnormals included) and the "some element is NaN or Inf" flag. Callers rescan scalar-wise only
// when the flag is set, to name the first bad index.
#pragma once

#include <cstdint>
#include <span>

namespace qf {

struct AmaxResult {
  float amax = 0.0f;       // max |x| over the finite elements when all_finite; else meaningless
  bool all_finite = true;  // false if any element is NaN or +-Inf
};

AmaxResult AmaxF32(std::span<const float> values);
AmaxResult AmaxBF16(std::span<const uint16_t> bf16_bits);
AmaxResult AmaxF16(std::span<const uint16_t> f16_bits);

// Exact widening; out.size() must equal in.size(). BF16: the bits shifted up by 16 (NaN payloads
// kept). F16: equals DecodeFP16 for every pattern (NaN -> quiet NaN 0x7FC00000 with its sign).
void WidenBF16(std::span<const uint16_t> bf16_bits, std::span<float> out);
void WidenF16(std::span<const uint16_t> f16_bits, std::span<float> out);

}  // namespace qf
