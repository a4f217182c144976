// Block quantizers: NVFP4, MXFP4 / MXFP8 and FP8 E4M3, quantize to packed codes plus scales and
// dequantize back. Every input is seen as a 2-D [rows, cols] tensor, blocks running along the last
// dimension (cols). Inputs may be F32, BF16 or F16.
//
// Bad input throws qf::Error naming the tensor: no elements, NaN or Inf (with the first offending
// index). A last dimension that is not a multiple of the block size is zero-padded up to one (the
// simulation behaviour of Model Optimizer); the codes and scales then cover the padded width, and
// exporters must refuse such a tensor (see docs/FORMATS.md).
//
// The results do not depend on the thread count of `pool` (nullptr runs on the caller).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "quantforge/byte_buffer.h"
#include "quantforge/tensor.h"
#include "quantforge/thread_pool.h"

namespace qf {

inline constexpr int64_t kNvfp4BlockSize = 16;
inline constexpr int64_t kMxBlockSize = 32;
// E4M3 normalisation constants of Model Optimizer's static NVFP4 block scales.
inline constexpr float kNvfp4Fp8Norm = 448.0f;
inline constexpr float kNvfp4Fp8NormFourOverSix = 256.0f;

// ----------------------------------------------------------------------------------------------
// NVFP4: E2M1 values, one E4M3 scale per 16 values, one FP32 scale per tensor.

enum class BlockScaleAlgorithm {
  kMax,          // block scale from the block's amax (Model Optimizer's dynamic export path)
  kMse,          // per block, the candidate scale with least squared error (static path)
  kFourOverSix,  // per block, map amax to 6 or to 4, keep the lower squared error (static, C=256)
};
std::string_view AlgorithmName(BlockScaleAlgorithm algorithm);  // "max", "mse", "four_over_six"
std::optional<BlockScaleAlgorithm> ParseAlgorithm(std::string_view name);

// Candidate set of the `mse` algorithm (Model Optimizer's MseCalibConfig): block amax candidates
// amax * m for m in linspace(start, stop, ceil((stop - start) / step) + 1). With fp8_scale_sweep the
// candidates are instead every positive finite E4M3 block scale (126 of them) under the fixed
// global scale.
struct MseSweep {
  float start_multiplier = 0.25f;
  float stop_multiplier = 4.0f;
  float step_size = 0.1f;
  bool fp8_scale_sweep = false;
};
std::vector<float> MseMultipliers(const MseSweep& sweep);

struct Nvfp4Options {
  BlockScaleAlgorithm algorithm = BlockScaleAlgorithm::kMax;
  // Static block-scale arithmetic (calibrated per-block amax, Model Optimizer's
  // `type: static`). kMse and kFourOverSix always use it; kMax uses the dynamic formulas unless set.
  bool static_block_scales = false;
  // E4M3 normalisation 256 instead of 448 (`four_over_six: true` in block_sizes). kFourOverSix
  // always sets it.
  bool four_over_six_normalization = false;
  MseSweep mse;  // used by kMse
  // Shared global amax of a fused group (q/k/v, gate/up); must be >= this tensor's own amax.
  std::optional<float> global_amax;
};

struct Nvfp4Tensor {
  int64_t rows = 0;
  int64_t cols = 0;         // logical last dimension
  int64_t padded_cols = 0;  // cols rounded up to a multiple of 16
  ByteBuffer codes;         // [rows, padded_cols / 2]; element 2k low nibble, 2k+1 high
  ByteBuffer block_scales;  // E4M3 [rows, padded_cols / 16]
  float global_scale = 1.0f;  // weight_scale_2: a multiplier
  float global_amax = 0.0f;   // the amax global_scale was derived from
  // For kMse / kFourOverSix: per block, the index of the chosen candidate (for four_over_six
  // 0 = mapped to 6, 1 = mapped to 4). Empty for kMax.
  ByteBuffer chosen_candidate;
};

Nvfp4Tensor QuantizeNvfp4(const TensorView& tensor, const Nvfp4Options& options,
                          ThreadPool* pool = nullptr);
// The same into *out, reusing the capacity of its buffers: a caller that quantizes tensor after
// tensor keeps one Nvfp4Tensor and pays for fresh output pages once (on a virtual machine the
// first touch of fresh memory can cost as much as the quantization itself). On error, *out is
// left valid but unspecified.
void QuantizeNvfp4Into(const TensorView& tensor, const Nvfp4Options& options, Nvfp4Tensor* out,
                       ThreadPool* pool = nullptr);
// Writes rows * cols floats (the padding is dropped).
void DequantizeNvfp4(const Nvfp4Tensor& tensor, std::span<float> out, ThreadPool* pool = nullptr);

// ----------------------------------------------------------------------------------------------
// MX (OCP Microscaling v1.0): 32-element blocks with an E8M0 shared scale.

enum class MxElement { kE2M1, kE4M3 };  // MXFP4, MXFP8
enum class MxScaleRule {
  kOcpFloor,  // OCP MX v1.0 section 6.3: X = 2^(floor(log2(amax)) - emax_elem)
  kCeil,      // Model Optimizer's export: X = 2^ceil(log2(amax / max_elem)), never clips
};

struct MxTensor {
  MxElement element = MxElement::kE2M1;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t padded_cols = 0;      // cols rounded up to a multiple of 32
  ByteBuffer codes;   // E2M1: [rows, padded_cols / 2] packed as NVFP4; E4M3: [rows, padded_cols]
  ByteBuffer scales;  // E8M0 [rows, padded_cols / 32]
};

MxTensor QuantizeMx(const TensorView& tensor, MxElement element,
                    MxScaleRule rule = MxScaleRule::kOcpFloor, ThreadPool* pool = nullptr);
void DequantizeMx(const MxTensor& tensor, std::span<float> out, ThreadPool* pool = nullptr);

// ----------------------------------------------------------------------------------------------
// FP8 E4M3 with one FP32 scale per tensor (scale = amax / 448) or per row (axis 0).

enum class Fp8Granularity { kPerTensor, kPerChannel };

struct Fp8Tensor {
  int64_t rows = 0;
  int64_t cols = 0;
  ByteBuffer codes;  // E4M3 [rows, cols]
  std::vector<float> scales;   // 1 (per tensor) or rows (per channel); value = code * scale
};

// `amax` overrides the tensor's own (a shared or calibrated amax). An all-zero tensor or row gets
// scale 1.0.
Fp8Tensor QuantizeFp8(const TensorView& tensor, Fp8Granularity granularity,
                      std::optional<float> amax = std::nullopt, ThreadPool* pool = nullptr);
void DequantizeFp8(const Fp8Tensor& tensor, std::span<float> out, ThreadPool* pool = nullptr);

// ----------------------------------------------------------------------------------------------
// Helpers shared by the quantizers.

// Max |x| over the tensor; throws qf::Error naming the tensor and the first index if any element
// is NaN or Inf, or if the tensor has no elements.
float TensorAmax(const TensorView& tensor, ThreadPool* pool = nullptr);
// Widens any supported float dtype to F32.
std::vector<float> ToFloat(const TensorView& tensor, ThreadPool* pool = nullptr);

}  // namespace qf
