// FP16 stochastic rounding: the decision rule against a double-arithmetic reference, unbiasedness
// within a binomial bound, exact values unchanged, reproducibility from (seed, counter), and
// independence from how an array is split.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "quantforge/formats.h"
#include "tests/numerics/reference.h"

namespace qf::test {
namespace {

// The FP16 neighbours lo <= |x| < hi of a finite |x| < 65504, found from the spec-decoded table
// (codes 0..0x7BFF), and the reference decision: hi iff random_bits < p * 2^32 with
// p = (|x| - lo) / (hi - lo). Every quantity is exact in double: |x| - lo has at most 24
// significant bits, hi - lo is a power of two, and p * 2^32 only rescales.
struct Neighbours {
  uint32_t lo_code;
  double lo;
  double hi;
};

// Binary search in the spec-decoded values of the positive finite codes 0..0x7BFF (increasing:
// ReferenceTest.PositiveFiniteCodesDecodeInIncreasingOrder). Requires 0 <= a < 65504.
Neighbours FP16Neighbours(double a) {
  static const std::vector<double> kValues = [] {
    std::vector<double> values;
    for (uint32_t code = 0; code <= 0x7BFF; ++code) {
      values.push_back(ReferenceDecode(kFP16Spec, code));
    }
    return values;
  }();
  // The first value > a is hi; the one before it is lo <= a.
  const size_t hi_code = std::upper_bound(kValues.begin(), kValues.end(), a) - kValues.begin();
  const uint32_t lo_code = static_cast<uint32_t>(hi_code - 1);
  return {lo_code, kValues[lo_code], kValues[hi_code]};
}

uint32_t ReferenceStochasticFP16(float x, uint32_t random_bits) {
  if (!std::isfinite(x) || std::fabs(x) >= 65504.0f) return ReferenceEncode(kFP16Spec, x);
  const double a = std::fabs(static_cast<double>(x));
  const Neighbours n = FP16Neighbours(a);
  const double p = (a - n.lo) / (n.hi - n.lo);
  const bool up = static_cast<double>(random_bits) < std::ldexp(p, 32);
  return (std::signbit(x) ? 0x8000u : 0u) | (n.lo_code + (up ? 1u : 0u));
}

TEST(StochasticFP16Test, RandomInputsMatchReference) {
  std::mt19937 rng(7);
  EXPECT_TRUE(AllMatch(20000, [&](uint64_t i) -> std::string {
    // Exponents 2^-40 .. 2^16: deep below FP16 subnormals (dropped_bits > 32), the subnormals,
    // the normals and the saturation region; every 16th input is any bit pattern.
    uint32_t bits = static_cast<uint32_t>(rng());
    if (i % 16 != 0)
      bits = (bits & 0x807FFFFFu) | ((127 - 40 + static_cast<uint32_t>(rng() % 57)) << 23);
    const float x = std::bit_cast<float>(bits);
    const uint32_t random_bits = static_cast<uint32_t>(rng());
    const uint32_t expected = ReferenceStochasticFP16(x, random_bits);
    const uint32_t actual = EncodeFP16Stochastic(x, random_bits);
    if (actual == expected) return "";
    return "f32 " + Hex(bits) + ", random " + Hex(random_bits) + ": expected " + Hex(expected) +
           ", got " + Hex(actual);
  }));
}

TEST(StochasticFP16Test, GoldenDecisions) {
  struct Case {
    uint32_t f32_bits;
    uint32_t random_bits;
    uint16_t code;
  };
  const Case cases[] = {
      {0x3F801000, 0x7FFFFFFF, 0x3C01},  // 1 + 2^-11, p = 1/2: threshold 2^31, just below -> up
      {0x3F801000, 0x80000000, 0x3C00},  // same x, random at the threshold -> down
      {0x3F800800, 0x3FFFFFFF, 0x3C01},  // 1 + 2^-12, p = 1/4: threshold 2^30 -> up
      {0x3F800800, 0x40000000, 0x3C00},  // at the threshold -> down
      {0xBF801000, 0x00000000, 0xBC01},  // negative, random 0: away from zero
      {0x3F801000, 0xFFFFFFFF, 0x3C00},  // random all ones: toward zero
      {0x33000000, 0x7FFFFFFF, 0x0001},  // 2^-25 = half the smallest subnormal: up
      {0x33000000, 0x80000000, 0x0000},  // ... or down to +0
      {0x2B800000, 0x0000FFFF, 0x0001},  // 2^-40, p = 2^-16: threshold 65536 -> up
      {0x2B800000, 0x00010000, 0x0000},  // at the threshold -> down
      {0x26800000, 0x0000003F, 0x0001},  // 2^-50, p = 2^-26 (dropped_bits 49): threshold 64
      {0x26800000, 0x00000040, 0x0000},  // at the threshold -> down
      {0x00000001, 0x00000000, 0x0001},  // 2^-149: 0 < p * 2^32 < 1, only random 0 rounds up
      {0x00000001, 0x00000001, 0x0000},  // ... anything else rounds down
      {0x477FD000, 0x7FFFFFFF, 0x7BFF},  // 65488 = (65472 + 65504) / 2: up to the max
      {0x477FD000, 0x80000000, 0x7BFE},  // ... or down to 65472
      {0x477FE600, 0x00000000, 0x7BFF},  // 65510 > max: saturates whatever the random bits
      {0x477FF000, 0xFFFFFFFF, 0x7BFF},  // 65520: saturates (an IEEE cast gives Inf)
      {0x7F800000, 0x00000000, 0x7C00},  // +Inf stays Inf
      {0xFFC00000, 0x00000000, 0xFE00},  // NaN -> quiet NaN with its sign
      {0x80000000, 0x00000000, 0x8000},  // -0 stays -0
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Hex(EncodeFP16Stochastic(std::bit_cast<float>(c.f32_bits), c.random_bits)),
              Hex(c.code))
        << "f32 " << Hex(c.f32_bits) << ", random " << Hex(c.random_bits);
  }
}

// Every finite FP16 value (and +-Inf) comes back unchanged whatever the random bits.
TEST(StochasticFP16Test, ExactValuesAreUnchanged) {
  std::mt19937 rng(11);
  EXPECT_TRUE(AllMatch(65536, [&](uint64_t code) -> std::string {
    const double value = ReferenceDecode(kFP16Spec, static_cast<uint32_t>(code));
    if (std::isnan(value)) return "";
    const float x = static_cast<float>(value);
    for (const uint32_t random_bits : {0u, 0xFFFFFFFFu, static_cast<uint32_t>(rng())}) {
      const uint32_t actual = EncodeFP16Stochastic(x, random_bits);
      if (actual != code)
        return "code " + Hex(code) + ", random " + Hex(random_bits) + " -> " + Hex(actual);
    }
    return "";
  }));
}

// Unbiasedness. Each of N roundings of x (lo < x < hi) independently gives hi with probability p,
// so the count K of hi is Binomial(N, p), and the mean of the decoded results is
// lo + (hi - lo) * K / N with standard deviation (hi - lo) * sqrt(p (1 - p) / N). We require
// |mean - x| <= 5 standard deviations + (hi - lo) * 2^-32 (the rule's own quantisation of p); a
// correct rounder fails that with probability about 6e-7 per value, and the data are seeded, so
// the outcome is fixed. Nearest rounding would miss by (hi - lo) * min(p, 1 - p), which for the
// p used here (0.25 to 0.75; 5 sigma is at most 0.0098 of a step with N = 2^16) is 25x to 50x the
// allowance, so the test tells the two apart.
TEST(StochasticFP16Test, MeanConvergesToTheInput) {
  const size_t kNumRoundings = 1 << 16;
  const float inputs[] = {
      1.0f + 0.3f * 0.0009765625f,     // normal, p = 0.3 between 1 and 1 + 2^-10
      -(1.0f + 0.7f * 0.0009765625f),  // negative, p = 0.7
      0.37f * 5.9604644775390625e-8f,  // subnormal, between 0 and 2^-24
      5.25f * 5.9604644775390625e-8f,  // subnormal, p = 0.25 between 5 and 6 * 2^-24
      65490.0f,                        // next to saturation: p = 18 / 32 between 65472 and 65504
      3.14159265f,                     // an arbitrary normal value
  };
  for (const float x : inputs) {
    const std::vector<float> in(kNumRoundings, x);
    std::vector<uint16_t> out(kNumRoundings);
    StochasticRoundToFP16(in, out, /*seed=*/0x5EED, /*counter_offset=*/0);
    const Neighbours n = FP16Neighbours(std::fabs(static_cast<double>(x)));
    const double p = (std::fabs(static_cast<double>(x)) - n.lo) / (n.hi - n.lo);
    const uint32_t sign = std::signbit(x) ? 0x8000u : 0u;
    size_t num_hi = 0;
    for (size_t i = 0; i < kNumRoundings; ++i) {
      ASSERT_TRUE(out[i] == (sign | n.lo_code) || out[i] == (sign | (n.lo_code + 1)))
          << "x " << x << " element " << i << " -> " << Hex(out[i]);
      num_hi += out[i] == (sign | (n.lo_code + 1));
    }
    const double gap = n.hi - n.lo;
    const double mean = n.lo + gap * static_cast<double>(num_hi) / kNumRoundings;
    const double sigma = gap * std::sqrt(p * (1.0 - p) / kNumRoundings);
    EXPECT_LE(std::fabs(mean - std::fabs(static_cast<double>(x))),
              5.0 * sigma + std::ldexp(gap, -32))
        << "x " << x << ", p " << p << ", hits " << num_hi << " of " << kNumRoundings;
  }
}

std::vector<float> RandomInputs(size_t num_elements, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> v(num_elements);
  for (float& x : v) x = normal(rng);
  return v;
}

TEST(StochasticFP16Test, SameSeedAndCounterGiveSameBits) {
  const std::vector<float> in = RandomInputs(1001, 1);
  std::vector<uint16_t> a(in.size()), b(in.size());
  for (const int rounds : {10, 7, 5}) {
    StochasticRoundToFP16(in, a, 42, 1000, rounds);
    StochasticRoundToFP16(in, b, 42, 1000, rounds);
    EXPECT_EQ(a, b) << "rounds " << rounds;
  }
}

// Different counters, seeds or round counts draw different random words, so some of the ~1000
// inexact values must round differently (each differs with probability 2p(1-p), about 0.3 on
// average; all equal by chance has probability below 0.7^1000).
TEST(StochasticFP16Test, DifferentCountersSeedsAndRoundsDiffer) {
  const std::vector<float> in = RandomInputs(1001, 2);
  std::vector<uint16_t> base(in.size()), other(in.size());
  StochasticRoundToFP16(in, base, 42, 0, 10);
  StochasticRoundToFP16(in, other, 42, 1, 10);
  EXPECT_NE(base, other) << "counter offset 0 vs 1";
  StochasticRoundToFP16(in, other, 43, 0, 10);
  EXPECT_NE(base, other) << "seed 42 vs 43";
  StochasticRoundToFP16(in, other, 42, 0, 5);
  EXPECT_NE(base, other) << "10 vs 5 rounds";
  StochasticRoundToFP16(in, other, uint64_t{42} | (uint64_t{1} << 32), 0, 10);
  EXPECT_NE(base, other) << "the seed's high word is used";
  StochasticRoundToFP16(in, other, 42, uint64_t{1} << 32, 10);
  EXPECT_NE(base, other) << "the counter's high word is used";
}

// Element i's random word depends only on (seed, counter_offset + i / 4, i % 4): rounding the
// array in pieces that start at multiples of 4, each with counter_offset advanced by start / 4
// (what a thread pool does), gives the same bits as one call.
TEST(StochasticFP16Test, ElementsDoNotDependOnTheSplit) {
  const std::vector<float> in = RandomInputs(1001, 3);
  const uint64_t seed = 0xDEADBEEFCAFEull;
  const uint64_t counter_offset = 77;
  std::vector<uint16_t> whole(in.size()), pieces(in.size());
  StochasticRoundToFP16(in, whole, seed, counter_offset, 5);
  const size_t starts[] = {0, 4, 8, 400, 404, 996, 1001};
  for (size_t k = 0; k + 1 < std::size(starts); ++k) {
    const size_t begin = starts[k], end = starts[k + 1];
    StochasticRoundToFP16(std::span<const float>(in).subspan(begin, end - begin),
                          std::span<uint16_t>(pieces).subspan(begin, end - begin), seed,
                          counter_offset + begin / 4, 5);
  }
  EXPECT_EQ(whole, pieces);
  // And element i matches EncodeFP16Stochastic with word i % 4 of the documented counter.
  for (size_t i = 0; i < in.size(); i += 97) {
    const uint64_t c = counter_offset + i / 4;
    const PhiloxCounter words =
        Philox4x32({static_cast<uint32_t>(c), static_cast<uint32_t>(c >> 32), 0, 0},
                   {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)}, 5);
    EXPECT_EQ(whole[i], EncodeFP16Stochastic(in[i], words[i % 4])) << "element " << i;
  }
}

}  // namespace
}  // namespace qf::test
