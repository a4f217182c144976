// Internal to src/calib: NVFP4 arithmetic on one 16-element block, written from the formulas of
// docs/FORMATS.md "NVFP4" (Model Optimizer's nvfp4_tensor.py export path), for the two places
// that choose block scales outside QuantizeNvfp4: the output-MSE search (a 16x16 H_b in the
// loss) and GPTQ's scales chosen at group start (from updated weights that may exceed the global
// amax, which QuantizeNvfp4 rightly refuses). With no H_b these functions reproduce
// QuantizeNvfp4 byte for byte; the tests check it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "quantforge/quantize.h"

namespace qf::calib {

struct Nvfp4BlockRule {
  bool dynamic_scales = false;  // kMax without static_block_scales
  float norm = kNvfp4Fp8Norm;   // 448, or 256 with four-over-six normalization
  float global_amax = 0.0f;
  float global_scale = 1.0f;    // g = global_amax / (6 * norm), 1 when global_amax is 0
  // Search candidates: multipliers of the block amax, or (candidates_are_amax) candidate block
  // amaxes global_amax * c. Empty: the max formula, no search.
  std::vector<float> candidates;
  bool candidates_are_amax = false;
};

// The rule QuantizeNvfp4(options) applies for a tensor whose (validated) global amax is given.
// `force_search` turns kMax into the `mse` search (local_hessian always searches).
Nvfp4BlockRule MakeNvfp4BlockRule(const Nvfp4Options& options, float global_amax,
                                  bool force_search);

// E2M1 codes of a block under one E4M3 scale and the dequantized values:
// code = e2m1(w / (s * g)), deq = (e2m1_value * s) * g, all binary32.
void EncodeNvfp4Block(std::span<const float, 16> w, uint8_t scale_code, float global_scale,
                      std::span<uint8_t, 16> codes, std::span<float, 16> deq);

// Chooses the block's scale: the max formula, or the candidate with the least loss, where the
// loss is sum_i dw_i * (H_b dw)_i with H_b = `h` (16x16 row-major), or sum_i dw_i^2 when h is
// empty; (H_b dw)_i adds H_b[i][j] * dw_j for j = 0..15 in order, and the 16 terms are added in
// the tree order of QuantizeNvfp4's search, so H_b = I gives the `mse` losses bit for bit.
// Strict <: ties keep the first candidate. Writes the codes; returns the scale code and sets
// *chosen to the candidate index (0 without a search).
uint8_t ChooseNvfp4BlockScale(std::span<const float, 16> w, std::span<const float> h,
                              const Nvfp4BlockRule& rule, std::span<uint8_t, 16> codes,
                              uint8_t* chosen);

}  // namespace qf::calib
