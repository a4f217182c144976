// Test helpers shared by tensor_ops_test, mx_test and fp8_test: seeded random tensors of the
// shapes that break kernels (heavy tails, outliers, zero blocks, subnormals, -0) and a Highway
// target fixture so each kernel test runs once per compiled target (AVX3_DL, AVX3, AVX2, ...,
// SCALAR).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "hwy/targets.h"
#include "hwy/tests/hwy_gtest.h"
#include "quantforge/formats.h"

namespace qf::test {

enum class Distribution { kNormal, kHeavyTailed, kOutliers, kZeroBlocks, kSubnormal, kMixed };
inline constexpr Distribution kAllDistributions[] = {
    Distribution::kNormal,     Distribution::kHeavyTailed, Distribution::kOutliers,
    Distribution::kZeroBlocks, Distribution::kSubnormal,   Distribution::kMixed};

inline std::string DistributionName(Distribution d) {
  switch (d) {
    case Distribution::kNormal:
      return "normal";
    case Distribution::kHeavyTailed:
      return "heavy_tailed";
    case Distribution::kOutliers:
      return "outliers";
    case Distribution::kZeroBlocks:
      return "zero_blocks";
    case Distribution::kSubnormal:
      return "subnormal";
    default:
      return "mixed";
  }
}

// `n` finite floats. kZeroBlocks zeroes runs of 32 (and some -0.0); kSubnormal draws binary32
// subnormals and values near 2^-126; kMixed spreads magnitudes over 2^-40 .. 2^40 with -0 and
// exact powers of two, which lands on every scale-rule boundary.
inline std::vector<float> RandomValues(Distribution dist, size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::student_t_distribution<float> student(2.0f);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    switch (dist) {
      case Distribution::kNormal:
        v[i] = 0.02f * normal(rng);
        break;
      case Distribution::kHeavyTailed:
        v[i] = 0.01f * student(rng);
        break;
      case Distribution::kOutliers:
        v[i] = uniform(rng) < 0.002f ? 300.0f * normal(rng) : 0.05f * normal(rng);
        break;
      case Distribution::kZeroBlocks:
        v[i] = ((i / 32) % 3 == 1) ? ((i % 5 == 0) ? -0.0f : 0.0f) : normal(rng);
        break;
      case Distribution::kSubnormal:
        v[i] = std::ldexp(normal(rng), -126 - static_cast<int>(rng() % 24));
        break;
      default: {
        const int e = static_cast<int>(rng() % 81) - 40;
        const uint32_t kind = rng() % 8;
        if (kind == 0) {
          v[i] = -0.0f;
        } else if (kind == 1) {
          v[i] = std::ldexp((rng() & 1) ? -1.0f : 1.0f, e);  // exact power of two
        } else {
          v[i] = std::ldexp(normal(rng), e);
        }
      }
    }
  }
  return v;
}

inline std::vector<uint16_t> ToBF16(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = EncodeBF16(v[i]);
  return out;
}
inline std::vector<uint16_t> ToF16(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = EncodeFP16(v[i]);
  return out;
}

inline uint32_t Bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return b;
}

// "1.5 (0x3fc00000)": a float with its bits, for mismatch reports.
inline std::string FloatWithBits(float x) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g (0x%08x)", static_cast<double>(x), Bits(x));
  return buf;
}

// Byte-for-byte comparison that reports the first few mismatches with their index, the input
// (described by `input`, given the byte index) and both bytes in hex, then the total count.
inline void ExpectBytesEqual(std::span<const uint8_t> expected, std::span<const uint8_t> actual,
                             const std::string& what,
                             const std::function<std::string(size_t)>& input = nullptr) {
  ASSERT_EQ(expected.size(), actual.size()) << what;
  size_t mismatches = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    if (expected[i] == actual[i]) continue;
    if (++mismatches <= 5) {
      ADD_FAILURE() << what << ": byte " << i << " expected 0x" << std::hex << int{expected[i]}
                    << " got 0x" << int{actual[i]} << std::dec
                    << (input ? " input " + input(i) : std::string());
    }
  }
  EXPECT_EQ(mismatches, 0u) << what << ": mismatching bytes";
}

// One test instance per Highway target compiled into qf_kernels and supported by this CPU.
using TargetTest = hwy::TestWithParamTarget;

}  // namespace qf::test
