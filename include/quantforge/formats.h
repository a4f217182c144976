// Scalar codecs for every element and scale format quantforge reads or writes.
//
// These are the specification: plain, readable, one value at a time. SIMD kernels in src/kernels
// must agree with them bit for bit (tests check it). docs/FORMATS.md states each format's source,
// rounding, zero, NaN and Inf handling.
//
// Common rules of the encoders:
//   - round to nearest, ties to even;
//   - finite values beyond the largest finite magnitude saturate to it (keeping the sign);
//   - formats without infinities (E4M3, E2M1, E8M0) saturate +-Inf too; formats with infinities
//     (E5M2, FP16, BF16) keep +-Inf as +-Inf;
//   - NaN becomes the format's NaN with the input's sign (E2M1 has no NaN: see EncodeE2M1);
//   - subnormals of the target are produced where the format has them (E4M3, E5M2, FP16, BF16,
//     E2M1's 0.5); values below half the smallest subnormal round to (signed) zero.
#pragma once

#include <array>
#include <cstdint>
#include <span>

namespace qf {

inline constexpr float kE4M3Max = 448.0f;     // S.1111.110
inline constexpr float kE5M2Max = 57344.0f;   // S.11110.11
inline constexpr float kE2M1Max = 6.0f;       // S.11.1
inline constexpr float kFP16Max = 65504.0f;
inline constexpr float kE4M3MinSubnormal = 0.001953125f;  // 2^-9

// FP8 E4M3 "fn" (OCP FP8 v1.0, torch.float8_e4m3fn): bias 7, no infinities, NaN = S.1111.111.
uint8_t EncodeE4M3(float x);
float DecodeE4M3(uint8_t code);

// FP8 E5M2 (OCP FP8 v1.0, IEEE-like): bias 15, Inf = S.11111.00, NaN = S.11111.{01,10,11}.
// Encoding a NaN yields S.11111.11.
uint8_t EncodeE5M2(float x);
float DecodeE5M2(uint8_t code);

// FP4 E2M1 (OCP MX v1.0 section 5.3.3): magnitudes {0, 0.5, 1, 1.5, 2, 3, 4, 6} for codes 0..7,
// bit 3 is the sign. Returns the 4-bit code in the low nibble.
// Rounding follows Model Optimizer's NVFP4 export: nearest, ties to the even code (0.25 -> 0,
// 0.75 -> 1, 1.25 -> 1, 1.75 -> 2, 2.5 -> 2, 3.5 -> 4, 5 -> 4), saturating at 6. The sign bit is
// (x < 0): a negative value that rounds to zero is stored as 0x8, while +0 and -0.0 give 0x0.
// NaN has no code; it saturates to 6 with the sign bit clear (callers reject NaN earlier).
uint8_t EncodeE2M1(float x);
float DecodeE2M1(uint8_t code);  // only the low nibble is read; 0x8 decodes to -0.0f

// E8M0 (OCP MX v1.0 section 5.4.1): unsigned power of two 2^(code - 127), code 0xFF = NaN; no zero.
// EncodeE8M0 rounds |x| to the nearest power of two in the sense of RNE with zero mantissa bits
// (|x| > 1.5 * 2^k rounds up to 2^(k+1); exactly 1.5 * 2^k goes to the even exponent code),
// saturates to 2^127 and 2^-127; zero and negative inputs use |x| (0 -> 2^-127); NaN -> 0xFF.
uint8_t EncodeE8M0(float x);
float DecodeE8M0(uint8_t code);
// The E8M0 code of 2^exponent, exponent clamped to [-127, 127].
uint8_t E8M0FromExponent(int exponent);

// BF16 (the upper 16 bits of an IEEE binary32).
uint16_t EncodeBF16(float x);
float DecodeBF16(uint16_t bits);

// FP16 (IEEE binary16).
uint16_t EncodeFP16(float x);
float DecodeFP16(uint16_t bits);

// FP16 with stochastic rounding: x lies between two adjacent FP16 values lo <= |x| <= hi (taken
// toward and away from zero); it becomes hi with probability p = (|x| - lo) / (hi - lo), decided
// as hi iff random_bits < p * 2^32 (compared exactly). E[decode(result)] == x up to
// 2^-32 relative to the gap. Exactly representable values are returned unchanged. Saturation,
// Inf and NaN as for EncodeFP16.
uint16_t EncodeFP16Stochastic(float x, uint32_t random_bits);

// Philox4x32 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11; Random123).
// A counter-based generator: output = bijection_key(counter), `rounds` Feistel-like rounds
// (10 is the standard, known-answer-tested variant; fewer rounds trade statistical margin for
// speed, e.g. 5 for the Mamba SSM cache in SGLang).
using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;
PhiloxCounter Philox4x32(PhiloxCounter counter, PhiloxKey key, int rounds = 10);

// Stochastic rounding of a whole array, reproducible from (seed, counter_offset): element i uses
// word (i % 4) of Philox4x32({lo32(c), hi32(c), 0, 0}, {lo32(seed), hi32(seed)}, rounds) with
// c = counter_offset + i / 4. The same (seed, counter_offset, input) always gives the same bits,
// whatever the thread count.
void StochasticRoundToFP16(std::span<const float> in, std::span<uint16_t> out, uint64_t seed,
                           uint64_t counter_offset, int rounds = 10);

}  // namespace qf
