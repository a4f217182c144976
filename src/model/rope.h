// Rotary position embedding in Hugging Face's rotate_half convention: within each head of
// head_dim values, element i pairs with element i + head_dim/2 (not with i+1 as in Meta's
// original code), rotated by angle position * inv_freq[i]:
//   out[i]        = x[i] * cos - x[i + h] * sin
//   out[i + h]    = x[i + h] * cos + x[i] * sin,     h = head_dim / 2
// inv_freq[i] = rope_theta^(-2i / head_dim), changed by rope_scaling ("linear": / factor;
// "llama3": transformers' _compute_llama3_parameters, long wavelengths divided by factor,
// short ones kept, a smooth blend between).
#pragma once

#include <cstdint>
#include <vector>

#include "quantforge/model.h"

namespace qf::model {

std::vector<double> RopeInverseFrequencies(int64_t head_dim, double theta,
                                           const RopeScaling& scaling);

// cos and sin of position * inv_freq for positions [0, num_positions): [num_positions, h] each.
// Angles are formed in double and rounded once, so the table is correct to F32 rounding.
struct RopeTable {
  int64_t half_dim = 0;
  std::vector<float> cos;
  std::vector<float> sin;
  RopeTable(const std::vector<double>& inv_freq, int64_t num_positions);
};

// Rotates `num_heads` heads laid out back to back (head_dim each) in place at `position`.
void ApplyRope(const RopeTable& table, int32_t position, int64_t num_heads, float* x);

}  // namespace qf::model
