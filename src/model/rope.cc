// RoPE frequencies (with rope_scaling) and the in-place rotation.
#include "src/model/rope.h"

#include <cmath>
#include <numbers>

namespace qf::model {

std::vector<double> RopeInverseFrequencies(int64_t head_dim, double theta,
                                           const RopeScaling& scaling) {
  const int64_t half = head_dim / 2;
  std::vector<double> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    inv_freq[i] = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(head_dim));
  }
  if (scaling.kind == RopeScalingKind::kLinear) {
    for (double& f : inv_freq) f /= scaling.factor;
  } else if (scaling.kind == RopeScalingKind::kLlama3) {
    // transformers' _compute_llama3_parameters: wavelengths longer than old_len / low_freq_factor
    // are slowed by `factor`, shorter than old_len / high_freq_factor kept, and in between
    // interpolated with smooth = (old_len / wavelen - low) / (high - low).
    const double old_len = static_cast<double>(scaling.original_max_position_embeddings);
    const double low_freq_wavelen = old_len / scaling.low_freq_factor;
    const double high_freq_wavelen = old_len / scaling.high_freq_factor;
    for (double& f : inv_freq) {
      const double wavelen = 2.0 * std::numbers::pi / f;
      if (wavelen > low_freq_wavelen) {
        f = f / scaling.factor;
      } else if (wavelen >= high_freq_wavelen) {
        const double smooth = (old_len / wavelen - scaling.low_freq_factor) /
                              (scaling.high_freq_factor - scaling.low_freq_factor);
        f = (1.0 - smooth) * f / scaling.factor + smooth * f;
      }
    }
  }
  return inv_freq;
}

RopeTable::RopeTable(const std::vector<double>& inv_freq, int64_t num_positions)
    : half_dim(static_cast<int64_t>(inv_freq.size())) {
  cos.resize(static_cast<size_t>(num_positions * half_dim));
  sin.resize(cos.size());
  for (int64_t p = 0; p < num_positions; ++p) {
    for (int64_t i = 0; i < half_dim; ++i) {
      const double angle = static_cast<double>(p) * inv_freq[i];
      cos[p * half_dim + i] = static_cast<float>(std::cos(angle));
      sin[p * half_dim + i] = static_cast<float>(std::sin(angle));
    }
  }
}

void ApplyRope(const RopeTable& table, int32_t position, int64_t num_heads, float* x) {
  const int64_t half = table.half_dim;
  const float* c = table.cos.data() + position * half;
  const float* s = table.sin.data() + position * half;
  for (int64_t head = 0; head < num_heads; ++head) {
    float* v = x + head * 2 * half;
    for (int64_t i = 0; i < half; ++i) {
      const float x1 = v[i];
      const float x2 = v[i + half];
      v[i] = x1 * c[i] - x2 * s[i];
      v[i + half] = x2 * c[i] + x1 * s[i];
    }
  }
}

}  // namespace qf::model
