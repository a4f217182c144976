// One NVFP4 block at a time (nvfp4_block.h). Sources: Model Optimizer's
// qtensor/nvfp4_tensor.py (static: ps = amax / 6, ps == 0 -> 1, s = e4m3(clamp((ps * norm) /
// (global_amax / 6), 2^-9, 448)); dynamic: s = amax / (6 * g), 0 -> 1, same clamp) and
// calib/mse.py (candidate sets, strict-< argmin), as restated in docs/FORMATS.md.
#include "src/calib/nvfp4_block.h"

#include <cmath>

#include "quantforge/formats.h"

namespace qf::calib {
namespace {

uint8_t StaticScale(float candidate_amax, const Nvfp4BlockRule& rule) {
  float per_block_scale = candidate_amax / 6.0f;
  if (per_block_scale == 0.0f) per_block_scale = 1.0f;
  float s = (per_block_scale * rule.norm) / (rule.global_amax / 6.0f);
  s = std::fmin(std::fmax(s, kE4M3MinSubnormal), kE4M3Max);
  return EncodeE4M3(s);
}

uint8_t DynamicScale(float block_amax, const Nvfp4BlockRule& rule) {
  float s = block_amax / (6.0f * rule.global_scale);
  if (s == 0.0f) s = 1.0f;
  s = std::fmin(std::fmax(s, kE4M3MinSubnormal), kE4M3Max);
  return EncodeE4M3(s);
}

// The fixed addition tree of QuantizeNvfp4's block loss (nvfp4_reference.h ReferenceBlockLoss).
float TreeSum(const float (&e)[16]) {
  float p[8], r[4], t[2];
  for (int i = 0; i < 8; ++i) p[i] = e[2 * i] + e[2 * i + 1];
  for (int i = 0; i < 4; ++i) r[i] = p[i] + p[i + 4];
  for (int i = 0; i < 2; ++i) t[i] = r[i] + r[i + 2];
  return t[0] + t[1];
}

}  // namespace

Nvfp4BlockRule MakeNvfp4BlockRule(const Nvfp4Options& options, float global_amax,
                                  bool force_search) {
  Nvfp4BlockRule rule;
  const BlockScaleAlgorithm algorithm =
      force_search ? BlockScaleAlgorithm::kMse : options.algorithm;
  const bool four_over_six =
      algorithm == BlockScaleAlgorithm::kFourOverSix || options.four_over_six_normalization;
  rule.dynamic_scales = algorithm == BlockScaleAlgorithm::kMax && !options.static_block_scales;
  rule.norm = four_over_six ? kNvfp4Fp8NormFourOverSix : kNvfp4Fp8Norm;
  rule.global_amax = global_amax;
  rule.global_scale = global_amax == 0.0f ? 1.0f : global_amax / (6.0f * rule.norm);
  if (algorithm == BlockScaleAlgorithm::kMse) {
    rule.candidates = MseMultipliers(options.mse);
    rule.candidates_are_amax = options.mse.fp8_scale_sweep;
    if (rule.candidates_are_amax) {
      for (float& c : rule.candidates) c = global_amax * c;
    }
  } else if (algorithm == BlockScaleAlgorithm::kFourOverSix) {
    rule.candidates = MseMultipliers(MseSweep{1.0f, 1.5f, 0.5f, false});
  }
  return rule;
}

void EncodeNvfp4Block(std::span<const float, 16> w, uint8_t scale_code, float global_scale,
                      std::span<uint8_t, 16> codes, std::span<float, 16> deq) {
  const float s = DecodeE4M3(scale_code);
  const float divisor = s * global_scale;
  for (int i = 0; i < 16; ++i) {
    codes[i] = EncodeE2M1(w[i] / divisor);
    deq[i] = (DecodeE2M1(codes[i]) * s) * global_scale;
  }
}

uint8_t ChooseNvfp4BlockScale(std::span<const float, 16> w, std::span<const float> h,
                              const Nvfp4BlockRule& rule, std::span<uint8_t, 16> codes,
                              uint8_t* chosen) {
  float block_amax = 0.0f;
  for (int i = 0; i < 16; ++i) block_amax = std::fmax(block_amax, std::fabs(w[i]));
  float deq[16];
  *chosen = 0;
  if (rule.candidates.empty()) {
    const uint8_t scale =
        rule.dynamic_scales ? DynamicScale(block_amax, rule) : StaticScale(block_amax, rule);
    EncodeNvfp4Block(w, scale, rule.global_scale, codes, deq);
    return scale;
  }
  uint8_t best_scale = 0;
  float best_loss = 0.0f;
  uint8_t trial[16];
  for (size_t k = 0; k < rule.candidates.size(); ++k) {
    const float candidate_amax =
        rule.candidates_are_amax ? rule.candidates[k] : block_amax * rule.candidates[k];
    const uint8_t scale = StaticScale(candidate_amax, rule);
    EncodeNvfp4Block(w, scale, rule.global_scale, trial, deq);
    float dw[16], e[16];
    for (int i = 0; i < 16; ++i) dw[i] = w[i] - deq[i];
    if (h.empty()) {
      for (int i = 0; i < 16; ++i) e[i] = dw[i] * dw[i];
    } else {
      for (int i = 0; i < 16; ++i) {
        float v = 0.0f;
        for (int j = 0; j < 16; ++j) v += h[i * 16 + j] * dw[j];
        e[i] = dw[i] * v;
      }
    }
    const float loss = TreeSum(e);
    if (k == 0 || loss < best_loss) {
      best_loss = loss;
      best_scale = scale;
      *chosen = static_cast<uint8_t>(k);
      for (int i = 0; i < 16; ++i) codes[i] = trial[i];
    }
  }
  return best_scale;
}

}  // namespace qf::calib
