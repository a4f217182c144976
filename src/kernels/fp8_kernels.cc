// Dynamic dispatch of the FP8 E4M3 row kernels (fp8-inl.h).
#include "src/kernels/fp8_kernels.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/fp8_kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "src/kernels/fp8-inl.h"

#if HWY_ONCE
namespace qf {
HWY_EXPORT(QuantizeFp8Row);
HWY_EXPORT(DequantizeFp8Row);

void QuantizeFp8Row(std::span<const float> values, float scale, std::span<uint8_t> codes) {
  HWY_DYNAMIC_DISPATCH(QuantizeFp8Row)(values.data(), values.size(), scale, codes.data());
}

void DequantizeFp8Row(std::span<const uint8_t> codes, float scale, std::span<float> out) {
  HWY_DYNAMIC_DISPATCH(DequantizeFp8Row)(codes.data(), codes.size(), scale, out.data());
}

}  // namespace qf
#endif  // HWY_ONCE
