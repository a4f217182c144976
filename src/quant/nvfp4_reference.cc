// Scalar NVFP4 reference (nvfp4_reference.h): Model Optimizer's export arithmetic, float32,
// operation by operation, one 16-element block at a time.
//
// Sources (github NVIDIA/Model-Optimizer at a2fbac7):
//   modelopt/torch/quantization/qtensor/nvfp4_tensor.py
//     get_weights_scaling_factor_2[_from_quantizer]: g = amax / (E2M1_MAX * m_fp8), one division
//       by the exact constant 2688 (6 * 448) or 1536 (6 * 256, four_over_six);
//     get_weights_scaling_factor (dynamic): s = block_amax / (6 * g), the product 6 * g rounded to
//       float32 first; s == 0 -> 1.0; clamp [2^-9, 448]; cast to float8_e4m3fn (RNE);
//     get_weights_scaling_factor_from_quantizer (static): ps = block_amax / 6, ps == 0 -> 1.0,
//       s = e4m3(clamp((ps * m_fp8) / (global_amax / 6), 2^-9, 448))  (_cast_per_block_scale_to_fp8);
//     quantize: x / (float(s) * g), product first; _cast_fp4: E2M1 ties to the even code, sign bit
//       (x < 0); packing (q[2k+1] << 4) | q[2k].
//   modelopt/torch/quantization/utils/numeric_utils.py: E2M1_MAX 6, E4M3_MAX 448, E4M3_MAX_46 256,
//     fp8_max_for_normalization (256 iff block_sizes.four_over_six).
//   modelopt/torch/quantization/calib/mse.py: MseCalibrator (candidate amax = block_amax * m),
//     NVFP4MSECalibrator (candidate amax = global_amax * (e4m3 / 448)); argmin keeps the first.
// Deliberate choices where Model Optimizer's calibration differs from its export (the search runs
// its fake quant, without the 2^-9 clamp) are listed in docs/FORMATS.md.
#include "src/quant/nvfp4_reference.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "quantforge/error.h"
#include "quantforge/formats.h"
#include "src/quant/tensor_ops.h"

namespace qf {
namespace {

float ElementAt(const TensorView& tensor, int64_t i) {
  if (tensor.dtype == DType::kF32) {
    float v;
    std::memcpy(&v, tensor.data.data() + i * 4, 4);
    return v;
  }
  uint16_t bits;
  std::memcpy(&bits, tensor.data.data() + i * 2, 2);
  return tensor.dtype == DType::kBF16 ? DecodeBF16(bits) : DecodeFP16(bits);
}

// Encodes 16 values under one block scale; returns the block loss.
float EncodeBlock(const float* w, uint8_t scale_code, float g, uint8_t* codes) {
  const float s = DecodeE4M3(scale_code);
  const float divisor = s * g;
  float squared_errors[16];
  for (int i = 0; i < 16; ++i) {
    codes[i] = EncodeE2M1(w[i] / divisor);
    const float deq = (DecodeE2M1(codes[i]) * s) * g;
    const float e = w[i] - deq;
    squared_errors[i] = e * e;
  }
  return ReferenceBlockLoss(std::span<const float, 16>(squared_errors, 16));
}

}  // namespace

uint8_t ReferenceStaticBlockScale(float candidate_amax, float norm, float global_amax_over_6) {
  float per_block_scale = candidate_amax / 6.0f;
  if (per_block_scale == 0.0f) per_block_scale = 1.0f;
  float s = (per_block_scale * norm) / global_amax_over_6;
  s = std::fmin(std::fmax(s, kE4M3MinSubnormal), kE4M3Max);
  return EncodeE4M3(s);
}

uint8_t ReferenceDynamicBlockScale(float block_amax, float six_g) {
  float s = block_amax / six_g;
  if (s == 0.0f) s = 1.0f;
  s = std::fmin(std::fmax(s, kE4M3MinSubnormal), kE4M3Max);
  return EncodeE4M3(s);
}

float ReferenceBlockLoss(std::span<const float, 16> e) {
  float p[8], r[4], t[2];
  for (int i = 0; i < 8; ++i) p[i] = e[2 * i] + e[2 * i + 1];
  for (int i = 0; i < 4; ++i) r[i] = p[i] + p[i + 4];
  for (int i = 0; i < 2; ++i) t[i] = r[i] + r[i + 2];
  return t[0] + t[1];
}

Nvfp4Tensor ReferenceQuantizeNvfp4(const TensorView& tensor, const Nvfp4Options& options) {
  CheckQuantizableView(tensor);
  const ErrorContext where{{}, std::string(tensor.name), {}};
  const int64_t rows = tensor.Rows();
  const int64_t cols = tensor.Cols();
  const int64_t padded_cols = (cols + kNvfp4BlockSize - 1) / kNvfp4BlockSize * kNvfp4BlockSize;
  const int64_t blocks_per_row = padded_cols / kNvfp4BlockSize;

  // The padded [rows, padded_cols] matrix in float32, validated, and its amax.
  std::vector<float> w(static_cast<size_t>(rows * padded_cols), 0.0f);
  float own_amax = 0.0f;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const float v = ElementAt(tensor, r * cols + c);
      if (!std::isfinite(v)) {
        throw Error("element " + std::to_string(r * cols + c) + " is " +
                        (std::isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf")) +
                        "; expected finite values",
                    where);
      }
      w[r * padded_cols + c] = v;
      own_amax = std::fmax(own_amax, std::fabs(v));
    }
  }
  float global_amax = own_amax;
  if (options.global_amax) {
    global_amax = *options.global_amax;
    if (!std::isfinite(global_amax) || global_amax < own_amax) {
      throw Error("global_amax override " + std::to_string(global_amax) +
                      " is below the tensor's own amax " + std::to_string(own_amax) +
                      " (or not finite); expected the max over the fused group",
                  where);
    }
  }

  const BlockScaleAlgorithm algorithm = options.algorithm;
  const bool is_static = algorithm != BlockScaleAlgorithm::kMax || options.static_block_scales;
  const bool four_over_six =
      algorithm == BlockScaleAlgorithm::kFourOverSix || options.four_over_six_normalization;
  const float norm = four_over_six ? kNvfp4Fp8NormFourOverSix : kNvfp4Fp8Norm;
  // An all-zero tensor gets g = 1 (Transformer Engine's convention for amax 0); its block scales
  // then follow the formulas below with their guards (dynamic 1.0, static 448), never NaN.
  const float g = global_amax == 0.0f ? 1.0f : global_amax / (6.0f * norm);
  const float six_g = 6.0f * g;
  const float global_amax_over_6 = global_amax / 6.0f;

  // Candidates of the search: block amax multipliers, or (fp8 sweep) fixed candidate amaxes.
  std::vector<float> candidates;
  bool fixed_candidates = false;
  if (algorithm == BlockScaleAlgorithm::kMse) {
    candidates = MseMultipliers(options.mse);
    fixed_candidates = options.mse.fp8_scale_sweep;
  } else if (algorithm == BlockScaleAlgorithm::kFourOverSix) {
    candidates = MseMultipliers(MseSweep{1.0f, 1.5f, 0.5f, false});
  }

  Nvfp4Tensor out;
  out.rows = rows;
  out.cols = cols;
  out.padded_cols = padded_cols;
  out.global_scale = g;
  out.global_amax = global_amax;
  out.codes.assign(static_cast<size_t>(rows * padded_cols / 2), 0);
  out.block_scales.assign(static_cast<size_t>(rows * blocks_per_row), 0);
  if (!candidates.empty()) out.chosen_candidate.assign(out.block_scales.size(), 0);

  uint8_t codes[16], best_codes[16];
  for (int64_t b = 0; b < rows * blocks_per_row; ++b) {
    const float* block = w.data() + b * kNvfp4BlockSize;
    float block_amax = 0.0f;
    for (int i = 0; i < 16; ++i) block_amax = std::fmax(block_amax, std::fabs(block[i]));

    uint8_t best_scale;
    if (candidates.empty()) {
      best_scale = is_static ? ReferenceStaticBlockScale(block_amax, norm, global_amax_over_6)
                             : ReferenceDynamicBlockScale(block_amax, six_g);
      EncodeBlock(block, best_scale, g, best_codes);
    } else {
      float best_loss = 0.0f;
      best_scale = 0;
      for (size_t k = 0; k < candidates.size(); ++k) {
        const float candidate_amax =
            fixed_candidates ? global_amax * candidates[k] : block_amax * candidates[k];
        const uint8_t scale = ReferenceStaticBlockScale(candidate_amax, norm, global_amax_over_6);
        const float loss = EncodeBlock(block, scale, g, codes);
        if (k == 0 || loss < best_loss) {  // strict: ties keep the first candidate
          best_loss = loss;
          best_scale = scale;
          std::memcpy(best_codes, codes, 16);
          out.chosen_candidate[b] = static_cast<uint8_t>(k);
        }
      }
    }
    out.block_scales[b] = best_scale;
    for (int k = 0; k < 8; ++k) {
      out.codes[b * 8 + k] = static_cast<uint8_t>(best_codes[2 * k] | (best_codes[2 * k + 1] << 4));
    }
  }
  return out;
}

void ReferenceDequantizeNvfp4(const Nvfp4Tensor& tensor, std::span<float> out) {
  QF_CHECK(static_cast<int64_t>(out.size()) == tensor.rows * tensor.cols);
  const int64_t blocks_per_row = tensor.padded_cols / kNvfp4BlockSize;
  for (int64_t r = 0; r < tensor.rows; ++r) {
    for (int64_t c = 0; c < tensor.cols; ++c) {
      const uint8_t byte = tensor.codes[(r * tensor.padded_cols + c) / 2];
      const uint8_t code = (c % 2 == 0) ? (byte & 0xF) : (byte >> 4);
      const float s = DecodeE4M3(tensor.block_scales[r * blocks_per_row + c / kNvfp4BlockSize]);
      out[r * tensor.cols + c] = (DecodeE2M1(code) * s) * tensor.global_scale;
    }
  }
}

}  // namespace qf
