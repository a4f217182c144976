// Independent scalar references for the numerics tests, written from the format specifications
// (OCP FP8 v1.0, OCP MX v1.0, IEEE 754) and sharing no code with src/numerics: decoding evaluates
// sign * 2^(e - bias) * (1 + m / 2^M) with ldexp, and encoding searches the decoded code table
// for the nearest value. Agreement between these and the bit-twiddling codecs is the test.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace qf::test {

// How a format uses its all-ones exponent field.
enum class Specials {
  kNone,        // E2M1: every code is finite
  kNaNAllOnes,  // E4M3 fn: only S.1111.111 is NaN, the rest of that binade is finite
  kIEEE,        // E5M2, FP16, BF16: fraction 0 is Inf, anything else NaN
};

struct FormatSpec {
  const char* name;
  int exponent_bits;
  int fraction_bits;
  int bias;
  Specials specials;
  uint32_t nan_code;  // what the encoder produces for NaN (sign added where the format has one)
  bool sign_from_less_than_zero;  // E2M1 (ModelOpt): sign bit = (x < 0); else signbit(x)
};

inline constexpr FormatSpec kE4M3Spec = {"E4M3", 4, 3, 7, Specials::kNaNAllOnes, 0x7F, false};
inline constexpr FormatSpec kE5M2Spec = {"E5M2", 5, 2, 15, Specials::kIEEE, 0x7F, false};
// E2M1 has no NaN: a NaN input saturates to 6 with the sign bit clear (code 0x7).
inline constexpr FormatSpec kE2M1Spec = {"E2M1", 2, 1, 1, Specials::kNone, 0x7, true};
inline constexpr FormatSpec kFP16Spec = {"FP16", 5, 10, 15, Specials::kIEEE, 0x7E00, false};
inline constexpr FormatSpec kBF16Spec = {"BF16", 8, 7, 127, Specials::kIEEE, 0x7FC0, false};

inline uint32_t SignBit(const FormatSpec& f) { return 1u << (f.exponent_bits + f.fraction_bits); }
bool ReferenceIsNaN(const FormatSpec& f, uint32_t code);
bool ReferenceIsInf(const FormatSpec& f, uint32_t code);

// The value of `code` from the spec formula; NaN codes give a NaN.
double ReferenceDecode(const FormatSpec& f, uint32_t code);

// Round x to `f` from the spec: NaN -> nan_code (with sign), +-Inf -> Inf code where the format
// has one, otherwise |x| saturates at the largest finite value; then the finite code of the right
// sign nearest to x, a tie going to the even code. Ties are exact in double for every input the
// tests use (binary32 or narrower), so "tie" is an exact comparison.
uint32_t ReferenceEncode(const FormatSpec& f, double x);

// E8M0: 2^(code - 127), 0xFF NaN; encode = nearest power of two to |x| (ties to the even code),
// saturating to [2^-127, 2^127], NaN -> 0xFF.
double ReferenceDecodeE8M0(uint32_t code);
uint32_t ReferenceEncodeE8M0(double x);

// "0x7e" style formatting for mismatch reports.
std::string Hex(uint32_t value);

// Runs check(i) for every i in [0, num_cases); check returns "" when case i matches and a
// description (index, input and both outputs in hex) when it does not. Fails with the first ten
// descriptions and the total mismatch count, so one run shows the shape of a bug.
template <typename Check>
::testing::AssertionResult AllMatch(uint64_t num_cases, Check check) {
  uint64_t num_mismatches = 0;
  std::string report;
  for (uint64_t i = 0; i < num_cases; ++i) {
    const std::string mismatch = check(i);
    if (mismatch.empty()) continue;
    if (++num_mismatches <= 10) report += mismatch + "\n";
  }
  if (num_mismatches == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << report << num_mismatches << " of " << num_cases << " cases mismatch";
}

}  // namespace qf::test
