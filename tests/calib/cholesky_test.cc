// The GPTQ factor (PrepareGptq, tiled in src/calib/cholesky.cc): U is upper triangular with a
// positive diagonal and U^T U equals the damped inverse Hessian from Gauss-Jordan elimination,
// across tile boundaries; the bits do not depend on the thread count; a Hessian that is not
// positive definite in its first or in a later tile falls back to the identity.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "quantforge/calib.h"
#include "tests/calib/calib_test_util.h"

namespace qf {
namespace {

using calib_test::CorrelatedInputs;
using calib_test::RandomWeights;

Hessian MakeHessian(int64_t dim, int64_t n, uint32_t seed) {
  const std::vector<float> x = CorrelatedInputs(n, dim, seed);
  HessianAccumulator acc(dim, HessianKind::kFull);
  acc.Add(x.data(), n, dim);
  return acc.GptqHessian();
}

TEST(GptqFactorTest, UpperFactorOfTheDampedInverse) {
  for (const int64_t dim : {40, 128, 129, 300}) {
    const Hessian h = MakeHessian(dim, 1024, static_cast<uint32_t>(dim));
    const std::vector<float> w = RandomWeights(4, dim, 1);
    const GptqFactor f = PrepareGptq(w, 4, dim, h);
    ASSERT_TRUE(f.stats.positive_definite);
    std::vector<double> damped = h.matrix;
    double mean = 0.0;
    for (int64_t i = 0; i < dim; ++i) mean += h.matrix[i * dim + i];
    for (int64_t i = 0; i < dim; ++i) damped[i * dim + i] += 0.01 * (mean / dim);
    const std::vector<double> inv = calib_test::ReferenceInverse(damped, dim);
    double inv_max = 0.0;
    for (const double v : inv) inv_max = std::max(inv_max, std::fabs(v));
    // Both sides are backward stable: errors of order cond(H) * n * 2^-53 relative to |H^-1|;
    // cond <= 1e4 here (1% damping), so 1e-9 leaves a wide margin yet catches any wrong tile.
    double worst = 0.0;
    for (int64_t i = 0; i < dim; ++i) {
      EXPECT_GT(f.u[i * dim + i], 0.0);
      for (int64_t j = 0; j < dim; ++j) {
        if (j < i) {
          ASSERT_EQ(f.u[i * dim + j], 0.0) << i << " " << j;
        }
        double utu = 0.0;
        for (int64_t k = 0; k <= std::min(i, j); ++k) utu += f.u[k * dim + i] * f.u[k * dim + j];
        worst = std::max(worst, std::fabs(utu - inv[i * dim + j]) / inv_max);
      }
    }
    EXPECT_LT(worst, 1e-9) << "dim " << dim;
  }
}

TEST(GptqFactorTest, SameBitsForAnyThreadCount) {
  const int64_t dim = 300;
  const Hessian h = MakeHessian(dim, 512, 7);
  const std::vector<float> w = RandomWeights(4, dim, 2);
  const GptqFactor one = PrepareGptq(w, 4, dim, h);
  ThreadPool pool(4);
  const GptqFactor four = PrepareGptq(w, 4, dim, h, {}, &pool);
  ASSERT_EQ(one.u.size(), four.u.size());
  EXPECT_EQ(0, std::memcmp(one.u.data(), four.u.data(), one.u.size() * sizeof(double)));
}

TEST(GptqFactorTest, NotPositiveDefiniteInAnyTileFallsBackToIdentity) {
  const int64_t dim = 300;
  const std::vector<float> w = RandomWeights(4, dim, 3);
  GptqOptions no_damp;
  no_damp.perc_damp = 0.0;
  // The factor reverses the order (J H J), so index dim-1 is in its first tile, index 0 in its
  // last one.
  for (const int64_t bad : {int64_t{0}, int64_t{150}, dim - 1}) {
    Hessian h{dim, 1, std::vector<double>(dim * dim, 0.0)};
    for (int64_t i = 0; i < dim; ++i) h.matrix[i * dim + i] = 1.0;
    h.matrix[bad * dim + bad] = -5.0;
    const GptqFactor f = PrepareGptq(w, 4, dim, h, no_damp);
    EXPECT_FALSE(f.stats.positive_definite) << bad;
    for (int64_t i = 0; i < dim; ++i) {
      for (int64_t j = 0; j < dim; ++j) ASSERT_EQ(f.u[i * dim + j], i == j ? 1.0 : 0.0);
    }
  }
}

}  // namespace
}  // namespace qf
