// FP8 E4M3 row kernels with one FP32 scale (per-tensor and per-channel FP8, src/quant/fp8.cc).
// Bodies in fp8-inl.h; run-time dispatch in fp8_kernels.cc. Inputs must be finite (callers
// validate); the kernels never throw.
#pragma once

#include <cstdint>
#include <span>

namespace qf {

// codes[i] = EncodeE4M3(values[i] / scale) (binary32 division, RNE, saturating at +-448).
// codes.size() == values.size(); scale > 0.
void QuantizeFp8Row(std::span<const float> values, float scale, std::span<uint8_t> codes);

// out[i] = DecodeE4M3(codes[i]) * scale. out.size() == codes.size().
void DequantizeFp8Row(std::span<const uint8_t> codes, float scale, std::span<float> out);

}  // namespace qf
