// Finite-difference checking shared by the grad tests.
//
// Every check differentiates a double-precision reference forward written in the test (never
// the F32 code under test): the central difference (f(x + h) - f(x - h)) / 2h has truncation
// error h^2 f''' / 6 and rounding error ~1e-16 |f| / h. With h = 1e-4 and inputs, outputs and
// derivatives of order 1 both are below 1e-8, far under the 1e-3 tolerance, so a mismatch is
// the backward's error. (F32 central differences were not usable: with forward rounding
// ~1e-7 |L| the error of the difference quotient is ~1e-7 |L| / h, i.e. 1e-3 at h = 1e-4.)
//
// Tolerance (issue 5: "gradients match finite differences to 1e-3 relative"):
//   |analytic - numeric| <= 1e-3 * max(|numeric|, 1e-2 * max_i |numeric_i|).
// The floor keeps elements 100x smaller than the largest gradient from demanding more than F32
// backward arithmetic can give (its error is a few ulp of the largest terms, ~1e-6 of them).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace qf::grad_test {

inline constexpr double kFdStep = 1e-4;
inline constexpr double kRelTolerance = 1e-3;
inline constexpr double kFloorOfMax = 1e-2;

// d f / d delta at 0 by central difference.
inline double CentralDifference(const std::function<double(double)>& f, double h = kFdStep) {
  return (f(h) - f(-h)) / (2.0 * h);
}

inline uint32_t Bits(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  return b;
}

// Compares every element; on a mismatch prints index, analytic (value and hex) and numeric,
// then the count. Returns the largest relative error seen (for the test's log).
inline double ExpectGradientsMatch(std::span<const float> analytic, std::span<const double> numeric,
                                   const std::string& what) {
  EXPECT_EQ(analytic.size(), numeric.size()) << what;
  double max_abs = 0.0;
  for (const double n : numeric) max_abs = std::max(max_abs, std::abs(n));
  const double floor = kFloorOfMax * max_abs;
  double worst = 0.0;
  int64_t mismatches = 0;
  for (size_t i = 0; i < std::min(analytic.size(), numeric.size()); ++i) {
    const double denom = std::max({std::abs(numeric[i]), floor, 1e-30});
    const double rel = std::abs(static_cast<double>(analytic[i]) - numeric[i]) / denom;
    worst = std::max(worst, rel);
    if (!(rel <= kRelTolerance)) {
      if (++mismatches <= 10) {
        ADD_FAILURE() << what << ": element " << i << " analytic " << analytic[i] << " (0x"
                      << std::hex << Bits(analytic[i]) << std::dec << ") numeric " << numeric[i]
                      << " relative error " << rel;
      }
    }
  }
  EXPECT_EQ(mismatches, 0) << what << ": " << mismatches << " of " << analytic.size()
                           << " elements off by more than " << kRelTolerance << " relative";
  EXPECT_GT(max_abs, 0.0) << what << ": all-zero gradient checks nothing";
  std::printf("%s: %zu elements, worst relative error %.2e\n", what.c_str(), analytic.size(),
              worst);
  return worst;
}

}  // namespace qf::grad_test
