// Scalar reference of the NVFP4 quantizer: the specification the Highway kernels are tested
// against, and the scalar baseline of bench/nvfp4_bench.cc.
//
// Single-threaded, one 16-element block at a time, with the qf::EncodeE4M3 / EncodeE2M1 scalar
// codecs and Model Optimizer's float32 export arithmetic operation by operation (the formulas and
// their sources are in nvfp4_reference.cc and docs/FORMATS.md "NVFP4"). Deliberately plain: no
// SIMD, no threads, no shortcuts.
#pragma once

#include <cstdint>
#include <span>

#include "quantforge/quantize.h"

namespace qf {

// Same contract as QuantizeNvfp4 (quantize.h): throws qf::Error on empty tensors, NaN / Inf
// (naming the first bad index), unsupported dtypes and a global_amax override below the
// tensor's own amax.
Nvfp4Tensor ReferenceQuantizeNvfp4(const TensorView& tensor, const Nvfp4Options& options);

// out.size() must be rows * cols; value = (DecodeE2M1(code) * DecodeE4M3(scale)) * global_scale.
void ReferenceDequantizeNvfp4(const Nvfp4Tensor& tensor, std::span<float> out);

// E4M3 block-scale codes: dynamic, s = block_amax / six_g; static, for a candidate block amax
// (block amax times the candidate multiplier, or the candidate itself with fp8_scale_sweep),
// s = ((candidate_amax / 6) * norm) / global_amax_over_6; then a zero s becomes 1, the clamp to
// [2^-9, 448] and EncodeE4M3.
uint8_t ReferenceDynamicBlockScale(float block_amax, float six_g);
uint8_t ReferenceStaticBlockScale(float candidate_amax, float norm, float global_amax_over_6);

// The per-block loss of the scale search: sum over the 16 elements of (w - deq)^2 in float32,
// added in the fixed tree order p[i] = e[2i] + e[2i+1] (neighbours first), r[i] = p[i] + p[i+4],
// t[i] = r[i] + r[i+2], loss = t[0] + t[1], which every SIMD width reproduces bit for bit.
float ReferenceBlockLoss(std::span<const float, 16> squared_errors);

}  // namespace qf
