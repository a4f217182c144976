// Dynamic dispatch of the NVFP4 block kernels (nvfp4-inl.h), following Highway's
// hwy/examples/skeleton.cc: each call dispatches once, then runs its whole block range.
#include "src/kernels/nvfp4_kernels.h"

#include <algorithm>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/nvfp4_kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "src/kernels/nvfp4-inl.h"

#if HWY_ONCE
namespace qf {
HWY_EXPORT(QuantizeNvfp4BlocksF32);
HWY_EXPORT(QuantizeNvfp4BlocksBF16);
HWY_EXPORT(BuildNvfp4ScaleCodes);
HWY_EXPORT(BF16PathFor);

void QuantizeNvfp4BlocksF32(std::span<const float> in, const Nvfp4KernelParams& params,
                            std::span<uint8_t> codes, std::span<uint8_t> scales,
                            std::span<uint8_t> chosen) {
  HWY_DYNAMIC_DISPATCH(QuantizeNvfp4BlocksF32)(in.data(), in.size() / 16, params, codes.data(),
                                               scales.data(), chosen.empty() ? nullptr : chosen.data());
}

void QuantizeNvfp4BlocksBF16(std::span<const uint16_t> in, const Nvfp4KernelParams& params,
                             std::span<uint8_t> codes, std::span<uint8_t> scales,
                             std::span<uint8_t> chosen) {
  HWY_DYNAMIC_DISPATCH(QuantizeNvfp4BlocksBF16)(in.data(), in.size() / 16, params, codes.data(),
                                                scales.data(), chosen.empty() ? nullptr : chosen.data());
}

Nvfp4BF16Path Nvfp4BF16PathFor(const Nvfp4KernelParams& params) {
  return HWY_DYNAMIC_DISPATCH(BF16PathFor)(params);
}

void BuildNvfp4ScaleCodes(const Nvfp4KernelParams& params, uint16_t max_bits,
                          Nvfp4ScaleCodeTable* table) {
  HWY_DYNAMIC_DISPATCH(BuildNvfp4ScaleCodes)(params, std::min<uint16_t>(max_bits, 0x7F7F), table);
}

}  // namespace qf
#endif  // HWY_ONCE
