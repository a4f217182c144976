// MXFP4 / MXFP8 row kernels (OCP Microscaling v1.0: 32-element blocks, one E8M0 scale each).
// Bodies in mx-inl.h, run-time dispatch in mx_kernels.cc; src/quant/mx.cc does validation,
// padding and threading. Inputs must be finite; the kernels never throw.
//
// Shared exponent e of a block with amax = max |x| (computed exactly from binary32 bits):
//   ceil_rule = false (OCP MX v1.0 section 6.3): e = floor(log2(amax)) - emax_element, emax 2 for
//     E2M1 and 8 for E4M3; amax 0 gives e = -127;
//   ceil_rule = true (Model Optimizer's export): descale = amax / max_element rounded to binary32
//     (6 or 448), e = ceil(log2(descale)); descale 0 gives e = -127.
// Both clamp e to [-127, 127]; the scale byte is e + 127. Elements are x / 2^e encoded RNE with
// saturation to the element maximum (E4M3: qf::EncodeE4M3; E2M1 with the OCP rule:
// qf::EncodeE2M1). E2M1 under ceil_rule replicates Model Optimizer's MXFP4 export: ties round
// down and the sign bit is !(x > 0), so zeros are stored as 0x8.
#pragma once

#include <cstdint>
#include <span>

namespace qf {

inline constexpr int64_t kMxKernelBlock = 32;

// row.size() is a multiple of 32 (zero-padded by the caller). codes: row.size() bytes for E4M3,
// row.size() / 2 for E2M1 (element 2k in the low nibble of byte k); scales: row.size() / 32.
// Returns the largest |x| bit pattern in the row: >= 0x7F800000 means a NaN or Inf was present
// (the codes are then meaningless).
uint32_t QuantizeMxRow(std::span<const float> row, bool e2m1, bool ceil_rule,
                       std::span<uint8_t> codes, std::span<uint8_t> scales);

// out.size() = cols <= padded width; out[i] = element(code i) * 2^(scale - 127).
void DequantizeMxRow(std::span<const uint8_t> codes, std::span<const uint8_t> scales, bool e2m1,
                     std::span<float> out);

}  // namespace qf
