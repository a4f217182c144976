// Test helpers of the calib tests: seeded weights and correlated activations, Hessians built
// directly from activation rows (an independent scalar twin of HessianAccumulator), and a byte
// comparison that reports the first mismatches in hex.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include "quantforge/calib.h"

namespace qf::calib_test {

// Activations whose channels are correlated (each channel leans on the previous one, rho = 0.8)
// and unevenly scaled (channel c scaled by 0.25 .. 4, a few by 20 as LLM outlier channels do):
// the situation where GPTQ's error propagation pays. [n, dim] row-major.
inline std::vector<float> CorrelatedInputs(int64_t n, int64_t dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> scale(static_cast<size_t>(dim));
  for (int64_t c = 0; c < dim; ++c) {
    scale[c] = 0.25f + 3.75f * static_cast<float>((c * 37) % 17) / 16.0f;
    if (c % 29 == 3) scale[c] = 20.0f;
  }
  std::vector<float> x(static_cast<size_t>(n * dim));
  const float rho = 0.8f, tail = std::sqrt(1.0f - rho * rho);
  for (int64_t t = 0; t < n; ++t) {
    float prev = normal(rng);
    for (int64_t c = 0; c < dim; ++c) {
      prev = rho * prev + tail * normal(rng);
      x[t * dim + c] = scale[c] * prev;
    }
  }
  return x;
}

inline std::vector<float> RandomWeights(int64_t rows, int64_t cols, uint32_t seed,
                                        float sigma = 0.02f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (float& v : w) v = normal(rng);
  return w;
}

// H = (2/n) sum_t x_t x_t^T with each element's terms added in token order in double: the
// definition HessianAccumulator must reproduce bit for bit.
inline Hessian ReferenceHessian(const std::vector<float>& x, int64_t n, int64_t dim) {
  Hessian h;
  h.dim = dim;
  h.num_tokens = n;
  h.matrix.assign(static_cast<size_t>(dim * dim), 0.0);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t i = 0; i < dim; ++i) {
      for (int64_t j = 0; j < dim; ++j) {
        h.matrix[i * dim + j] += static_cast<double>(x[t * dim + i]) * x[t * dim + j];
      }
    }
  }
  for (double& v : h.matrix) v = (2.0 * v) / static_cast<double>(n);
  return h;
}

// Inverse of a symmetric positive definite matrix by Gauss-Jordan elimination with partial
// pivoting, in double.
inline std::vector<double> ReferenceInverse(std::vector<double> a, int64_t n) {
  std::vector<double> inv(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) inv[i * n + i] = 1.0;
  for (int64_t c = 0; c < n; ++c) {
    int64_t pivot = c;
    for (int64_t r = c + 1; r < n; ++r) {
      if (std::fabs(a[r * n + c]) > std::fabs(a[pivot * n + c])) pivot = r;
    }
    for (int64_t k = 0; k < n; ++k) {
      std::swap(a[c * n + k], a[pivot * n + k]);
      std::swap(inv[c * n + k], inv[pivot * n + k]);
    }
    const double d = a[c * n + c];
    for (int64_t k = 0; k < n; ++k) {
      a[c * n + k] /= d;
      inv[c * n + k] /= d;
    }
    for (int64_t r = 0; r < n; ++r) {
      if (r == c) continue;
      const double f = a[r * n + c];
      for (int64_t k = 0; k < n; ++k) {
        a[r * n + k] -= f * a[c * n + k];
        inv[r * n + k] -= f * inv[c * n + k];
      }
    }
  }
  return inv;
}

// Reports up to 8 differing bytes (index, both values in hex) and the count.
inline ::testing::AssertionResult SameBytes(std::span<const uint8_t> expected,
                                            std::span<const uint8_t> actual) {
  if (expected.size() != actual.size()) {
    return ::testing::AssertionFailure()
           << "sizes " << expected.size() << " vs " << actual.size();
  }
  int64_t mismatches = 0;
  auto failure = ::testing::AssertionFailure();
  for (size_t i = 0; i < expected.size(); ++i) {
    if (expected[i] == actual[i]) continue;
    if (++mismatches <= 8) {
      char line[96];
      std::snprintf(line, sizeof(line), "byte %zu: expected 0x%02x, got 0x%02x\n", i, expected[i],
                    actual[i]);
      failure << line;
    }
  }
  if (mismatches == 0) return ::testing::AssertionSuccess();
  return failure << mismatches << " of " << expected.size() << " bytes differ";
}

}  // namespace qf::calib_test
