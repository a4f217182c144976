// Dynamic dispatch of the MXFP4 / MXFP8 row kernels (mx-inl.h).
#include "src/kernels/mx_kernels.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/mx_kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "src/kernels/mx-inl.h"

#if HWY_ONCE
namespace qf {
HWY_EXPORT(QuantizeMxRow);
HWY_EXPORT(DequantizeMxRow);

uint32_t QuantizeMxRow(std::span<const float> row, bool e2m1, bool ceil_rule,
                       std::span<uint8_t> codes, std::span<uint8_t> scales) {
  return HWY_DYNAMIC_DISPATCH(QuantizeMxRow)(row.data(), row.size(), e2m1, ceil_rule, codes.data(),
                                             scales.data());
}

void DequantizeMxRow(std::span<const uint8_t> codes, std::span<const uint8_t> scales, bool e2m1,
                     std::span<float> out) {
  HWY_DYNAMIC_DISPATCH(DequantizeMxRow)(codes.data(), scales.data(), out.size(), e2m1, out.data());
}

}  // namespace qf
#endif  // HWY_ONCE
