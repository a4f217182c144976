// Test data of the NVFP4 tests: blocks whose four-over-six choice depends on the order in which
// the block loss is summed (nvfp4_reference.h ReferenceBlockLoss), for the vectorized kernels
// (nvfp4_kernel_test.cc) and the calibration layer's copy of the loss (local_hessian_test.cc).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "quantforge/formats.h"
#include "quantforge/quantize.h"
#include "src/quant/nvfp4_reference.h"

namespace qf::nvfp4_test {

// Blocks whose four-over-six choice depends on the order of the loss sum, so a kernel that adds
// the squared errors in any other order than ReferenceBlockLoss's fails. With g = 1 (global_amax
// 1536) and block amax 6, M = 6 uses scale 1 and M = 4 scale 1.5: elements at 0.5, 1, 2 are exact
// for M = 6 and 0.25 off for M = 4, elements at 0.75, 2.25 the reverse, so both losses are
// 3 * 0.0625 exactly, with the 0.0625 terms at different tree positions. Elements the two
// candidates share add the same small d^2 to both at the same positions: 1.5 + d and 3 + d for
// F32 inputs; for BF16 (8-bit significands, whose squares near 1.5 would add exactly) values
// |d| < 2^-11 that both round to 0, whose squares sit near half an ulp of the partial sums.
// Random layouts are searched for ones where the tree order and a left-to-right sum, or a tree
// that adds e[i] + e[i + 8] first (the order before commit b334d44), choose differently
// (thousands of the 20,000 tried).
struct OrderSensitive {
  std::vector<float> blocks;
  float global_amax;
};

inline OrderSensitive OrderSensitiveBlocks(bool bf16) {
  std::mt19937 rng(bf16 ? 77 : 2024);
  std::uniform_int_distribution<int> pick(0, 8);
  std::uniform_real_distribution<float> delta(-0.05f, 0.05f), unit(-1.0f, 1.0f);
  const float global_amax = 1536.0f;
  std::vector<float> candidates;
  const float m6_exact[] = {0.5f, 1.0f, 2.0f}, m4_exact[] = {0.75f, 2.25f, 0.75f};
  for (int b = 0; b < 20000; ++b) {
    float block[16] = {};
    int slots[16];
    for (int i = 0; i < 16; ++i) slots[i] = i;
    std::shuffle(slots, slots + 16, rng);
    block[slots[0]] = 6.0f;
    for (int i = 0; i < 3; ++i) block[slots[1 + i]] = m6_exact[i];
    for (int i = 0; i < 3; ++i) block[slots[4 + i]] = m4_exact[i];
    const int num_common = pick(rng);
    for (int i = 7; i < 7 + num_common; ++i) {
      block[slots[i]] = bf16 ? DecodeBF16(EncodeBF16(std::ldexp(unit(rng), -11)))
                             : (i % 2 ? 1.5f : 3.0f) + delta(rng);
    }
    candidates.insert(candidates.end(), block, block + 16);
  }
  const int64_t rows = static_cast<int64_t>(candidates.size() / 16);
  const TensorView view = MakeView(std::span<const float>(candidates), {rows, 16}, "order");
  std::vector<float> squared[2];
  for (int c = 0; c < 2; ++c) {  // each candidate alone: mse with one multiplier, C = 256
    Nvfp4Options one;
    one.algorithm = BlockScaleAlgorithm::kMse;
    one.four_over_six_normalization = true;
    one.global_amax = global_amax;
    one.mse = MseSweep{c == 0 ? 1.0f : 1.5f, c == 0 ? 1.0f : 1.5f, 0.5f, false};
    std::vector<float> deq(candidates.size());
    ReferenceDequantizeNvfp4(ReferenceQuantizeNvfp4(view, one), deq);
    squared[c].resize(candidates.size());
    for (size_t i = 0; i < deq.size(); ++i) {
      const float e = candidates[i] - deq[i];
      squared[c][i] = e * e;
    }
  }
  OrderSensitive out{{}, global_amax};
  for (int64_t b = 0; b < rows; ++b) {
    float tree[2], sequential[2], halves_first[2];
    for (int c = 0; c < 2; ++c) {
      const float* e = &squared[c][b * 16];
      tree[c] = ReferenceBlockLoss(std::span<const float, 16>(e, 16));
      sequential[c] = 0.0f;
      for (int i = 0; i < 16; ++i) sequential[c] += e[i];
      float pairs[8], quads[4];
      for (int i = 0; i < 8; ++i) pairs[i] = e[i] + e[i + 8];
      for (int i = 0; i < 4; ++i) quads[i] = pairs[i] + pairs[i + 4];
      halves_first[c] = (quads[0] + quads[2]) + (quads[1] + quads[3]);
    }
    const bool by_tree = tree[1] < tree[0];
    if (by_tree != (sequential[1] < sequential[0]) ||
        by_tree != (halves_first[1] < halves_first[0])) {
      out.blocks.insert(out.blocks.end(), &candidates[b * 16], &candidates[b * 16] + 16);
    }
  }
  return out;
}

}  // namespace qf::nvfp4_test
