// Test helpers of the NVFP4 tests: seeded tensors of the kinds that break block quantizers and a
// byte comparison that reports the block, its input and both outputs in hex.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "quantforge/formats.h"
#include "quantforge/quantize.h"

namespace qf::nvfp4_test {

enum class Kind {
  kNormal,         // N(0, 0.02), a typical weight
  kStudentT,       // heavy tails (Student-t, 3 degrees of freedom)
  kOutliers,       // 0.2% of values 1000x larger
  kZeroBlocks,     // every third 16-block all zero, with -0.0 mixed in
  kSubnormal,      // blocks made only of binary32 subnormals
  kNegativeZeros,  // -0.0 and tiny negatives that round to a -0 code
  kHugeOutlier,    // normal values plus one 1e30
  kMixed,          // magnitudes 2^-40 .. 2^40, powers of two, -0
};
inline constexpr Kind kAllKinds[] = {Kind::kNormal,        Kind::kStudentT,   Kind::kOutliers,
                                     Kind::kZeroBlocks,    Kind::kSubnormal,  Kind::kNegativeZeros,
                                     Kind::kHugeOutlier,   Kind::kMixed};

inline const char* KindName(Kind kind) {
  static const char* const kNames[] = {"normal",         "student_t",    "outliers",
                                       "zero_blocks",    "subnormal",    "negative_zeros",
                                       "huge_outlier",   "mixed"};
  return kNames[static_cast<int>(kind)];
}

inline std::vector<float> RandomTensor(Kind kind, size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::student_t_distribution<float> student(3.0f);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    switch (kind) {
      case Kind::kNormal: v[i] = 0.02f * normal(rng); break;
      case Kind::kStudentT: v[i] = 0.01f * student(rng); break;
      case Kind::kOutliers:
        v[i] = 0.02f * normal(rng) * (uniform(rng) < 0.002f ? 1000.0f : 1.0f);
        break;
      case Kind::kZeroBlocks:
        v[i] = (i / 16) % 3 == 1 ? ((i % 3 == 0) ? -0.0f : 0.0f) : normal(rng);
        break;
      case Kind::kSubnormal: v[i] = std::ldexp(normal(rng), -130 - static_cast<int>(rng() % 16)); break;
      case Kind::kNegativeZeros:
        v[i] = (rng() % 4 == 0) ? -0.0f : (rng() % 2 ? -1e-4f : 1.0f) * uniform(rng);
        break;
      case Kind::kHugeOutlier: v[i] = i == n / 2 ? 1e30f : normal(rng); break;
      case Kind::kMixed: {
        const int e = static_cast<int>(rng() % 81) - 40;
        const uint32_t pick = rng() % 8;
        v[i] = pick == 0   ? -0.0f
               : pick == 1 ? std::ldexp((rng() & 1) ? -1.0f : 1.0f, e)
                           : std::ldexp(normal(rng), e);
        break;
      }
    }
  }
  return v;
}

inline uint32_t Bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return b;
}

inline std::string Hex(uint32_t x) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%02x", x);
  return buf;
}

// The 16 inputs of block `block` of a padded [rows, padded_cols] view, as "value(bits)" pairs.
inline std::string DescribeBlock(const std::vector<float>& values, int64_t cols, int64_t block) {
  const int64_t blocks_per_row = (cols + 15) / 16;
  const int64_t row = block / blocks_per_row, first = (block % blocks_per_row) * 16;
  std::string s;
  for (int64_t c = first; c < first + 16 && c < cols; ++c) {
    char buf[48];
    std::snprintf(buf, sizeof(buf), "%.7g(%08x) ", static_cast<double>(values[row * cols + c]),
                  Bits(values[row * cols + c]));
    s += buf;
  }
  return s;
}

// Expects byte-identical NVFP4 tensors; reports the first mismatching blocks with their input.
inline void ExpectSameNvfp4(const Nvfp4Tensor& expected, const Nvfp4Tensor& actual,
                            const std::vector<float>& input, const std::string& what) {
  ASSERT_EQ(expected.rows, actual.rows) << what;
  ASSERT_EQ(expected.padded_cols, actual.padded_cols) << what;
  EXPECT_EQ(Bits(expected.global_scale), Bits(actual.global_scale)) << what;
  EXPECT_EQ(Bits(expected.global_amax), Bits(actual.global_amax)) << what;
  ASSERT_EQ(expected.codes.size(), actual.codes.size()) << what;
  ASSERT_EQ(expected.block_scales.size(), actual.block_scales.size()) << what;
  ASSERT_EQ(expected.chosen_candidate.size(), actual.chosen_candidate.size()) << what;
  size_t bad_blocks = 0;
  for (size_t b = 0; b < expected.block_scales.size(); ++b) {
    bool same = expected.block_scales[b] == actual.block_scales[b] &&
                std::memcmp(&expected.codes[b * 8], &actual.codes[b * 8], 8) == 0;
    if (!expected.chosen_candidate.empty()) {
      same = same && expected.chosen_candidate[b] == actual.chosen_candidate[b];
    }
    if (same) continue;
    if (++bad_blocks <= 3) {
      std::string codes_e, codes_a;
      for (int k = 0; k < 8; ++k) {
        codes_e += Hex(expected.codes[b * 8 + k]) + " ";
        codes_a += Hex(actual.codes[b * 8 + k]) + " ";
      }
      ADD_FAILURE() << what << ": block " << b << " input " << DescribeBlock(input, expected.cols, static_cast<int64_t>(b))
                    << "\n  expected scale " << Hex(expected.block_scales[b]) << " codes " << codes_e
                    << "\n  actual   scale " << Hex(actual.block_scales[b]) << " codes " << codes_a;
    }
  }
  EXPECT_EQ(bad_blocks, 0u) << what << ": mismatching blocks of " << expected.block_scales.size();
}

}  // namespace qf::nvfp4_test
