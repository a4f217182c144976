// Scalar FP8 E4M3 per-tensor / per-channel reference: the specification the vectorized
// quantizer (fp8.cc, kernels in src/kernels/fp8-inl.h) must equal byte for byte. Written from
// Model Optimizer's export (weight_scale = amax / 448, q = e4m3(W / weight_scale)).
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "quantforge/quantize.h"

namespace qf {

// amax / 448 in binary32; 1.0 when that is 0 (amax 0, or amax so small the quotient underflows).
float ReferenceFp8Scale(float amax);

// values: rows * cols finite floats. Per channel: one scale per row. `amax` (if given) replaces
// the tensor's amax, or every row's amax per channel. Single-threaded, no validation.
Fp8Tensor ReferenceQuantizeFp8(std::span<const float> values, int64_t rows, int64_t cols,
                               Fp8Granularity granularity, std::optional<float> amax);
void ReferenceDequantizeFp8(const Fp8Tensor& tensor, std::span<float> out);

}  // namespace qf
