// LocalHessianNvfp4 (output-MSE block-scale search): against a brute-force scalar search written
// here, equal to QuantizeNvfp4's `mse` when every H_b is the identity, independent of the thread
// count, and input errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "quantforge/calib.h"
#include "quantforge/error.h"
#include "quantforge/formats.h"
#include "tests/calib/calib_test_util.h"
#include "tests/quant/nvfp4_order_sensitive.h"

namespace qf {
namespace {

using calib_test::CorrelatedInputs;
using calib_test::SameBytes;

BlockHessians MakeBlocks(int64_t dim, int64_t n, uint32_t seed) {
  const std::vector<float> x = CorrelatedInputs(n, dim, seed);
  HessianAccumulator acc(dim, HessianKind::kBlockDiagonal);
  acc.Add(x.data(), n, dim);
  return acc.LocalHessians();
}

BlockHessians IdentityBlocks(int64_t dim) {
  BlockHessians h;
  h.dim = dim;
  h.num_blocks = (dim + 15) / 16;
  h.num_tokens = 1;
  h.blocks.assign(static_cast<size_t>(h.num_blocks * 256), 0.0f);
  for (int64_t b = 0; b < h.num_blocks; ++b) {
    for (int i = 0; i < 16; ++i) h.blocks[b * 256 + i * 17] = 1.0f;
  }
  return h;
}

// Weights with the cases a scale search meets: normal values, heavy tails, an all-zero block and
// a block of tiny values.
std::vector<float> SearchWeights(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::student_t_distribution<float> student(3.0f);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows * cols; ++i) {
    const int64_t block = i / 16;
    w[i] = block % 5 == 2 ? 0.01f * student(rng) : normal(rng);
    if (block % 11 == 4) w[i] = 0.0f;
    if (block % 13 == 6) w[i] *= 1e-4f;
  }
  return w;
}

// The brute-force search: every candidate scale written out from the formulas of docs/FORMATS.md
// (static block scale e4m3(clamp((amax_c / 6 * 448) / (global_amax / 6), 2^-9, 448))), every
// element re-encoded, the loss dw^T H_b dw in double. Returns the scale code; the float loss
// order of the library may pick a different candidate only when the two losses agree to float
// rounding, which the caller checks.
struct Choice {
  uint8_t scale;
  double loss;
};
std::vector<double> BlockLosses(const float* w, const float* h, float global_amax,
                                const std::vector<float>& candidate_amax) {
  const float g = global_amax / (6.0f * 448.0f);
  std::vector<double> losses;
  for (const float amax : candidate_amax) {
    float ps = amax / 6.0f;
    if (ps == 0.0f) ps = 1.0f;
    const float s = DecodeE4M3(EncodeE4M3(
        std::fmin(std::fmax((ps * 448.0f) / (global_amax / 6.0f), 0.001953125f), 448.0f)));
    double dw[16];
    for (int i = 0; i < 16; ++i) {
      dw[i] = static_cast<double>(w[i]) - (DecodeE2M1(EncodeE2M1(w[i] / (s * g))) * s) * g;
    }
    double loss = 0.0;
    for (int i = 0; i < 16; ++i) {
      for (int j = 0; j < 16; ++j) loss += dw[i] * h[i * 16 + j] * dw[j];
    }
    losses.push_back(loss);
  }
  return losses;
}

TEST(LocalHessianTest, MatchesBruteForceSearch) {
  const int64_t rows = 16, cols = 64;
  const std::vector<float> w = SearchWeights(rows, cols, 1);
  const BlockHessians h = MakeBlocks(cols, 300, 2);
  float global_amax = 0.0f;
  for (const float v : w) global_amax = std::fmax(global_amax, std::fabs(v));
  for (const bool sweep : {false, true}) {
    Nvfp4Options options;
    options.mse.fp8_scale_sweep = sweep;
    const Nvfp4Tensor got = LocalHessianNvfp4(w, rows, cols, h, options);
    int64_t different_choice = 0;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t b = 0; b < cols / 16; ++b) {
        const float* block = w.data() + r * cols + b * 16;
        float amax = 0.0f;
        for (int i = 0; i < 16; ++i) amax = std::fmax(amax, std::fabs(block[i]));
        std::vector<float> candidates;
        if (sweep) {  // every positive finite E4M3 block scale: codes 0x01 .. 0x7E
          for (int code = 1; code <= 0x7E; ++code) {
            candidates.push_back(global_amax * (DecodeE4M3(static_cast<uint8_t>(code)) / 448.0f));
          }
        } else {  // amax * m for m = 0.25, 0.35, ..., 4.0 (39 multipliers)
          for (const float m : MseMultipliers({})) candidates.push_back(amax * m);
        }
        const std::vector<double> losses =
            BlockLosses(block, h.Block(b).data(), global_amax, candidates);
        size_t best = 0;
        for (size_t k = 1; k < losses.size(); ++k) best = losses[k] < losses[best] ? k : best;
        const size_t index = static_cast<size_t>(r * (cols / 16) + b);
        const size_t chosen = got.chosen_candidate[index];
        ASSERT_LT(chosen, losses.size());
        if (chosen != best) {
          ++different_choice;
          // Only a near-tie may go the other way: within float rounding of 16 * 16 terms.
          EXPECT_LE(losses[chosen], losses[best] * (1.0 + 1e-5) + 1e-30)
              << "row " << r << " block " << b << " chose " << chosen << " brute force " << best;
        }
      }
    }
    EXPECT_LE(different_choice, 2) << "sweep " << sweep;
  }
}

// With H_b = I the loss is the squared weight error, added in QuantizeNvfp4's order: the result
// is QuantizeNvfp4(kMse) byte for byte, padding of an odd width included.
TEST(LocalHessianTest, IdentityHessianEqualsMse) {
  for (const int64_t cols : {64, 72}) {
    const int64_t rows = 33;
    const std::vector<float> w = SearchWeights(rows, cols, 3);
    for (const bool sweep : {false, true}) {
      for (const bool four_over_six_norm : {false, true}) {
        Nvfp4Options options;
        options.algorithm = BlockScaleAlgorithm::kMse;
        options.mse.fp8_scale_sweep = sweep;
        options.four_over_six_normalization = four_over_six_norm;
        const Nvfp4Tensor mse = QuantizeNvfp4(MakeView(w, {rows, cols}), options);
        const Nvfp4Tensor lh = LocalHessianNvfp4(w, rows, cols, IdentityBlocks(cols), options);
        EXPECT_TRUE(SameBytes(mse.codes, lh.codes)) << cols << " " << sweep << four_over_six_norm;
        EXPECT_TRUE(SameBytes(mse.block_scales, lh.block_scales));
        EXPECT_TRUE(SameBytes(mse.chosen_candidate, lh.chosen_candidate));
        EXPECT_EQ(mse.global_scale, lh.global_scale);
        EXPECT_EQ(mse.padded_cols, lh.padded_cols);
      }
    }
  }
}

// The calibration layer sums the block loss in its own copy of QuantizeNvfp4's fixed order
// (nvfp4_block.cc TreeSum): on blocks whose choice between M = 6 and M = 4 flips under another
// order, the identity Hessian gives QuantizeNvfp4's four_over_six bytes.
TEST(LocalHessianTest, IdentityHessianFollowsTheLossOrder) {
  const nvfp4_test::OrderSensitive set = nvfp4_test::OrderSensitiveBlocks(false);
  const int64_t rows = static_cast<int64_t>(set.blocks.size() / 16);
  ASSERT_GE(rows, 20) << "too few order-sensitive blocks";
  Nvfp4Options four_over_six;
  four_over_six.algorithm = BlockScaleAlgorithm::kFourOverSix;
  four_over_six.global_amax = set.global_amax;
  Nvfp4Options two_candidates;  // the same candidates as an mse sweep, which the search takes
  two_candidates.algorithm = BlockScaleAlgorithm::kMse;
  two_candidates.four_over_six_normalization = true;
  two_candidates.global_amax = set.global_amax;
  two_candidates.mse = MseSweep{1.0f, 1.5f, 0.5f, false};
  const Nvfp4Tensor expected = QuantizeNvfp4(MakeView(set.blocks, {rows, 16}), four_over_six);
  const Nvfp4Tensor lh =
      LocalHessianNvfp4(set.blocks, rows, 16, IdentityBlocks(16), two_candidates);
  EXPECT_TRUE(SameBytes(expected.codes, lh.codes));
  EXPECT_TRUE(SameBytes(expected.block_scales, lh.block_scales));
  EXPECT_TRUE(SameBytes(expected.chosen_candidate, lh.chosen_candidate));
}

TEST(LocalHessianTest, GlobalAmaxOverrideAndThreadCount) {
  const int64_t rows = 70, cols = 48;
  const std::vector<float> w = SearchWeights(rows, cols, 4);
  const BlockHessians h = MakeBlocks(cols, 100, 5);
  Nvfp4Options options;
  options.mse.fp8_scale_sweep = true;
  options.global_amax = 1.0f;  // a fused group's larger amax
  const Nvfp4Tensor one = LocalHessianNvfp4(w, rows, cols, h, options);
  EXPECT_EQ(one.global_amax, 1.0f);
  EXPECT_EQ(one.global_scale, 1.0f / 2688.0f);
  ThreadPool pool(3);
  const Nvfp4Tensor three = LocalHessianNvfp4(w, rows, cols, h, options, &pool);
  EXPECT_TRUE(SameBytes(one.codes, three.codes));
  EXPECT_TRUE(SameBytes(one.block_scales, three.block_scales));
}

TEST(LocalHessianTest, RejectsBadInput) {
  const std::vector<float> w = SearchWeights(4, 32, 6);
  const BlockHessians h = IdentityBlocks(32);
  EXPECT_THROW(LocalHessianNvfp4(w, 4, 32, IdentityBlocks(48), {}), Error);
  EXPECT_THROW(LocalHessianNvfp4(w, 4, 16, h, {}), Error);
  Nvfp4Options low;
  low.global_amax = 1e-6f;
  EXPECT_THROW(LocalHessianNvfp4(w, 4, 32, h, low), Error);
  std::vector<float> bad = w;
  bad[3] = INFINITY;
  EXPECT_THROW(LocalHessianNvfp4(bad, 4, 32, h, {}), Error);
  BlockHessians nan_h = h;
  nan_h.blocks[5] = NAN;
  EXPECT_THROW(LocalHessianNvfp4(w, 4, 32, nan_h, {}), Error);
}

}  // namespace
}  // namespace qf
