// Synthetic weight generator: identical output for any thread count and row range, the moments
// the header promises (std, heavy tails, row gains, outlier columns, isolated outliers, zero
// rows/blocks), and BF16 output equal to round-to-nearest-even of the F32 stream.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "quantforge/error.h"
#include "quantforge/formats.h"
#include "quantforge/synth.h"

namespace qf {
namespace {

std::vector<float> Generate(const WeightStats& stats, uint64_t key, int64_t rows, int64_t cols,
                            ThreadPool* pool) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  GenerateWeights(stats, key, rows, cols, out, pool);
  return out;
}

uint32_t Bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}

// Independent BF16 round-to-nearest-even of a finite float (the bit trick, no shared code).
uint16_t ReferenceBF16(float x) {
  const uint32_t u = Bits(x);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

void ExpectSameBits(const std::vector<float>& a, const std::vector<float>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size());
  int64_t mismatches = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Bits(a[i]) != Bits(b[i]) && ++mismatches <= 5) {
      ADD_FAILURE() << what << ": index " << i << " got " << std::hexfloat << a[i] << " (0x"
                    << std::hex << Bits(a[i]) << ") expected " << std::hexfloat << b[i] << " (0x"
                    << std::hex << Bits(b[i]) << ")";
    }
  }
  EXPECT_EQ(mismatches, 0) << what;
}

TEST(SynthWeights, SameBitsForAnyThreadCountAndRowRange) {
  WeightStats stats = LinearWeightStats(517);
  stats.isolated_outlier_rate = 1e-4;  // a few isolated outliers in 157k elements
  stats.zero_block_fraction = 0.05f;
  stats.zero_row_fraction = 0.02f;
  const int64_t rows = 303, cols = 517;  // odd: tasks of 16 rows leave a short last task
  const uint64_t key = SynthTensorKey(7, "model.layers.0.mlp.up_proj.weight");
  const std::vector<float> single = Generate(stats, key, rows, cols, nullptr);
  ThreadPool two(2), five(5);
  ExpectSameBits(Generate(stats, key, rows, cols, &two), single, "2 threads");
  ExpectSameBits(Generate(stats, key, rows, cols, &five), single, "5 threads");

  const WeightGenerator gen(stats, key, rows, cols);
  std::vector<float> slice(static_cast<size_t>(7 * cols));
  gen.FillRows(100, 107, slice);
  ExpectSameBits(slice,
                 std::vector<float>(single.begin() + 100 * cols, single.begin() + 107 * cols),
                 "rows 100..107");
  for (const int64_t idx : gen.IsolatedOutliers()) {
    EXPECT_EQ(Bits(gen.At(idx / cols, idx % cols)), Bits(single[idx])) << "isolated " << idx;
  }
  EXPECT_EQ(Bits(gen.At(302, 516)), Bits(single.back()));
}

TEST(SynthWeights, KeyDependsOnSeedAndName) {
  EXPECT_EQ(SynthTensorKey(1, "a.weight"), SynthTensorKey(1, "a.weight"));
  EXPECT_NE(SynthTensorKey(1, "a.weight"), SynthTensorKey(2, "a.weight"));
  EXPECT_NE(SynthTensorKey(1, "a.weight"), SynthTensorKey(1, "b.weight"));
  const WeightStats stats = LinearWeightStats(64);
  const auto a = Generate(stats, SynthTensorKey(1, "a.weight"), 8, 64, nullptr);
  const auto b = Generate(stats, SynthTensorKey(1, "b.weight"), 8, 64, nullptr);
  int64_t equal = 0;
  for (size_t i = 0; i < a.size(); ++i) equal += Bits(a[i]) == Bits(b[i]);
  EXPECT_LT(equal, 5);
}

struct Moments {
  double mean = 0, std = 0, kurtosis = 0;
};
Moments ComputeMoments(const std::vector<float>& v) {
  double s1 = 0;
  for (const float x : v) s1 += x;
  Moments m;
  m.mean = s1 / v.size();
  double s2 = 0, s4 = 0;
  for (const float x : v) {
    const double d = x - m.mean;
    s2 += d * d;
    s4 += d * d * d * d;
  }
  const double var = s2 / v.size();
  m.std = std::sqrt(var);
  m.kurtosis = (s4 / v.size()) / (var * var);
  return m;
}

// Body only (no gains, no outliers): std as asked, heavy tails. Student-t with df 5 has kurtosis
// 3 + 6 / (df - 4) = 9; its 8th moment is infinite, so the sample kurtosis converges slowly and
// the bound is loose (> 5); a normal has 3 and df = 30 has 3.23.
TEST(SynthWeights, BodyHasRequestedStdAndHeavyTails) {
  WeightStats stats;
  stats.std = 0.02f;
  stats.row_scale_sigma = 0.0f;
  stats.outlier_column_fraction = 0.0f;
  stats.min_outlier_columns = 0;
  stats.isolated_outlier_rate = 0.0;
  const std::vector<float> v = Generate(stats, SynthTensorKey(3, "body"), 1024, 1024, nullptr);
  const Moments m = ComputeMoments(v);
  EXPECT_NEAR(m.mean, 0.0, 0.02 * 0.01);
  EXPECT_NEAR(m.std, 0.02, 0.02 * 0.03);
  EXPECT_GT(m.kurtosis, 5.0);
  EXPECT_LT(m.kurtosis, 20.0);

  stats.student_t_df = 30.0f;
  const Moments light =
      ComputeMoments(Generate(stats, SynthTensorKey(3, "body"), 512, 1024, nullptr));
  EXPECT_NEAR(light.std, 0.02, 0.02 * 0.03);
  EXPECT_NEAR(light.kurtosis, 3.23, 0.25);
}

// Row gains: log of the row RMS has standard deviation ~ row_scale_sigma (0.25); the sampling
// noise of one row's RMS over 2048 values is ~ sqrt((kurtosis - 1) / 2048) / 2 ~ 0.03.
TEST(SynthWeights, RowScalesAreLogNormal) {
  WeightStats stats = LinearWeightStats(2048);
  stats.outlier_column_fraction = 0.0f;
  stats.min_outlier_columns = 0;
  const int64_t rows = 512, cols = 2048;
  const std::vector<float> v = Generate(stats, SynthTensorKey(4, "rows"), rows, cols, nullptr);
  std::vector<double> log_rms;
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t c = 0; c < cols; ++c) s += double(v[r * cols + c]) * v[r * cols + c];
    log_rms.push_back(0.5 * std::log(s / cols));
  }
  double mean = 0, var = 0;
  for (const double x : log_rms) mean += x / rows;
  for (const double x : log_rms) var += (x - mean) * (x - mean) / rows;
  EXPECT_NEAR(std::sqrt(var), 0.25, 0.04);
}

// Outlier columns are exactly the columns whose RMS stands out, by 10x-100x over the median.
TEST(SynthWeights, OutlierColumnsStandOut) {
  WeightStats stats = LinearWeightStats(4096);  // 0.1% of 4096 -> 4 columns
  stats.isolated_outlier_rate = 0.0;  // one isolated outlier would make its column stand out too
  const int64_t rows = 256, cols = 4096;
  const uint64_t key = SynthTensorKey(5, "model.layers.3.self_attn.q_proj.weight");
  const WeightGenerator gen(stats, key, rows, cols);
  ASSERT_EQ(gen.OutlierColumns().size(), 4u);
  const std::vector<float> v = Generate(stats, key, rows, cols, nullptr);
  std::vector<double> col_rms(cols);
  for (int64_t c = 0; c < cols; ++c) {
    double s = 0;
    for (int64_t r = 0; r < rows; ++r) s += double(v[r * cols + c]) * v[r * cols + c];
    col_rms[c] = std::sqrt(s / rows);
  }
  std::vector<double> sorted = col_rms;
  std::nth_element(sorted.begin(), sorted.begin() + cols / 2, sorted.end());
  const double median = sorted[cols / 2];
  std::vector<int64_t> loud;
  for (int64_t c = 0; c < cols; ++c) {
    if (col_rms[c] > 5.0 * median) loud.push_back(c);
  }
  EXPECT_EQ(loud, gen.OutlierColumns());
  for (const int64_t c : gen.OutlierColumns()) {
    EXPECT_GT(col_rms[c] / median, 8.0) << "column " << c;
    EXPECT_LT(col_rms[c] / median, 130.0) << "column " << c;
  }
}

TEST(SynthWeights, IsolatedOutliersAreHuge) {
  WeightStats stats = LinearWeightStats(1024);
  stats.isolated_outlier_rate = 1e-4;
  const int64_t rows = 256, cols = 1024;  // 262144 elements -> 26 draws
  const WeightGenerator gen(stats, SynthTensorKey(6, "iso"), rows, cols);
  EXPECT_GE(gen.IsolatedOutliers().size(), 24u);
  EXPECT_LE(gen.IsolatedOutliers().size(), 26u);
  for (const int64_t idx : gen.IsolatedOutliers()) {
    const float x = std::fabs(gen.At(idx / cols, idx % cols));
    EXPECT_GE(x, stats.std * stats.isolated_outlier_min_gain * 0.999f) << idx;
    EXPECT_LE(x, stats.std * stats.isolated_outlier_max_gain * 1.001f) << idx;
  }
  stats.isolated_outlier_rate = 1e-6;  // the default: none in a small tensor
  EXPECT_TRUE(WeightGenerator(stats, 1, 64, 64).IsolatedOutliers().empty());
}

TEST(SynthWeights, ZeroRowsAndBlocks) {
  WeightStats stats = LinearWeightStats(512);
  stats.zero_row_fraction = 0.1f;
  stats.zero_block_fraction = 0.2f;
  const int64_t rows = 400, cols = 512;
  const uint64_t key = SynthTensorKey(8, "zeros");
  const WeightGenerator gen(stats, key, rows, cols);
  const std::vector<float> v = Generate(stats, key, rows, cols, nullptr);
  int64_t zero_rows = 0, zero_blocks = 0, live_blocks = 0;
  for (int64_t r = 0; r < rows; ++r) {
    bool all_zero = true;
    for (int64_t c = 0; c < cols; ++c) all_zero &= v[r * cols + c] == 0.0f;
    EXPECT_EQ(all_zero, gen.IsZeroRow(r)) << "row " << r;
    if (gen.IsZeroRow(r)) {
      ++zero_rows;
      continue;
    }
    for (int64_t b = 0; b < cols / 16; ++b) {
      bool zero = true;
      for (int64_t c = b * 16; c < b * 16 + 16; ++c) zero &= v[r * cols + c] == 0.0f;
      zero_blocks += zero;
      ++live_blocks;
    }
  }
  // Binomial(400, 0.1): 40 +- 6; Binomial(~11500, 0.2): 0.2 +- 0.004.
  EXPECT_GT(zero_rows, 20);
  EXPECT_LT(zero_rows, 60);
  EXPECT_NEAR(double(zero_blocks) / live_blocks, 0.2, 0.02);
}

TEST(SynthWeights, Bf16IsRoundToNearestEvenOfTheFloatStream) {
  WeightStats stats = LinearWeightStats(333);
  stats.isolated_outlier_rate = 1e-4;
  const int64_t rows = 97, cols = 333;
  const uint64_t key = SynthTensorKey(9, "bf16");
  const std::vector<float> f = Generate(stats, key, rows, cols, nullptr);
  std::vector<uint16_t> b(f.size());
  ThreadPool pool(3);
  GenerateWeightsBF16(stats, key, rows, cols, b, &pool);
  int64_t mismatches = 0, inexact = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    const uint16_t want = ReferenceBF16(f[i]);
    inexact += (Bits(f[i]) & 0xFFFFu) != 0;
    if (b[i] != want || b[i] != EncodeBF16(f[i])) {
      if (++mismatches <= 5) {
        ADD_FAILURE() << "index " << i << " input 0x" << std::hex << Bits(f[i]) << " got 0x" << b[i]
                      << " expected 0x" << want;
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_GT(inexact, int64_t(f.size()) * 9 / 10);  // the F32 stream really has 24-bit values
}

TEST(SynthWeights, RejectsBadParameters) {
  WeightStats stats;
  stats.student_t_df = 2.0f;
  EXPECT_THROW(WeightGenerator(stats, 1, 4, 4), Error);
  std::vector<float> out(15);
  EXPECT_THROW(GenerateWeights(WeightStats{}, 1, 4, 4, out), Error);
  EXPECT_THROW(WeightGenerator(WeightStats{}, 1, -1, 4), Error);
}

}  // namespace
}  // namespace qf
