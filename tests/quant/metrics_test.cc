// ComputeError / ComputeBlockError against direct double computations, edge cases (zero error,
// zero signal, short last blocks) and thread-count independence.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "quantforge/error.h"
#include "quantforge/metrics.h"

namespace qf {
namespace {

TEST(Metrics, ComputeErrorMatchesDirectDouble) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const size_t n = 200001;  // several chunks, the last one short
  std::vector<float> x(n), y(n);
  for (size_t i = 0; i < n; ++i) {
    x[i] = normal(rng);
    y[i] = x[i] + 0.01f * normal(rng);
  }
  double sse = 0, ssx = 0, max_abs = 0;
  for (size_t i = 0; i < n; ++i) {
    const double e = static_cast<double>(x[i]) - y[i];
    sse += e * e;
    ssx += static_cast<double>(x[i]) * x[i];
    max_abs = std::max(max_abs, std::fabs(e));
  }
  ThreadPool pool(3);
  const ErrorStats stats = ComputeError(x, y, &pool);
  EXPECT_EQ(stats.count, static_cast<int64_t>(n));
  // Different summation order than the direct loop: relative agreement to double rounding.
  EXPECT_NEAR(stats.mse, sse / n, 1e-12 * sse / n);
  EXPECT_NEAR(stats.signal_power, ssx / n, 1e-12 * ssx / n);
  EXPECT_NEAR(stats.rel_rms, std::sqrt(sse / ssx), 1e-12);
  EXPECT_NEAR(stats.sqnr_db, 10 * std::log10(ssx / sse), 1e-9);
  EXPECT_EQ(stats.max_abs_error, max_abs);
  // Fixed chunks combined in order: bit-identical for any thread count.
  const ErrorStats single = ComputeError(x, y, nullptr);
  EXPECT_EQ(single.mse, stats.mse);
  EXPECT_EQ(single.sqnr_db, stats.sqnr_db);
}

TEST(Metrics, ZeroErrorAndZeroSignal) {
  const std::vector<float> x = {1.0f, -2.0f}, zeros = {0.0f, 0.0f};
  const ErrorStats exact = ComputeError(x, x);
  EXPECT_EQ(exact.mse, 0.0);
  EXPECT_EQ(exact.rel_rms, 0.0);
  EXPECT_TRUE(std::isinf(exact.sqnr_db) && exact.sqnr_db > 0);
  EXPECT_EQ(exact.signal_power, 2.5);
  const ErrorStats both_zero = ComputeError(zeros, zeros);
  EXPECT_EQ(both_zero.rel_rms, 0.0);
  EXPECT_THROW(ComputeError(x, std::vector<float>{1.0f}), Error);
}

TEST(Metrics, BlockErrorCountsRealElementsOfShortBlocks) {
  // 2 rows of 5 with blocks of 4: blocks [0..3], [4] per row.
  const std::vector<float> x = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  const std::vector<float> y = {1, 1, 1, 1, 3, 0, 0, 0, 2, 0};
  const BlockErrorStats s = ComputeBlockError(x, y, 5, 4);
  EXPECT_EQ(s.num_blocks, 4);
  // Block MSEs: 1, 9, 1, 0 (the short block [4] of row 0 has 1 element: 9 / 1).
  EXPECT_EQ(s.num_zero_error_blocks, 1);
  EXPECT_EQ(s.max_block_mse, 9.0);
  EXPECT_EQ(s.worst_block_idx, 1);
  EXPECT_EQ(s.mean_block_mse, 11.0 / 4);
  EXPECT_EQ(s.median_block_mse, 1.0);  // sorted 0, 1, 1, 9
  EXPECT_EQ(s.p99_block_mse, 9.0);     // rank ceil(3.96) = 4
  EXPECT_THROW(ComputeBlockError(x, y, 3, 4), Error);
}

}  // namespace
}  // namespace qf
