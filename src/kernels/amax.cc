// Dynamic dispatch of the amax / widening kernels (amax-inl.h) and the AmaxResult decoding.
#include "src/kernels/amax.h"

#include <bit>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/amax.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "src/kernels/amax-inl.h"

#if HWY_ONCE
namespace qf {
HWY_EXPORT(MaxAbsBitsF32);
HWY_EXPORT(MaxAbsBits16);
HWY_EXPORT(WidenBF16);
HWY_EXPORT(WidenF16);

AmaxResult AmaxF32(std::span<const float> values) {
  const uint32_t bits = HWY_DYNAMIC_DISPATCH(MaxAbsBitsF32)(values.data(), values.size());
  return {std::bit_cast<float>(bits), bits < 0x7F800000u};
}

AmaxResult AmaxBF16(std::span<const uint16_t> bf16_bits) {
  const uint16_t bits = HWY_DYNAMIC_DISPATCH(MaxAbsBits16)(bf16_bits.data(), bf16_bits.size());
  return {std::bit_cast<float>(static_cast<uint32_t>(bits) << 16), bits < 0x7F80u};
}

AmaxResult AmaxF16(std::span<const uint16_t> f16_bits) {
  const uint16_t bits = HWY_DYNAMIC_DISPATCH(MaxAbsBits16)(f16_bits.data(), f16_bits.size());
  if (bits >= 0x7C00u) return {0.0f, false};
  float amax;
  HWY_DYNAMIC_DISPATCH(WidenF16)(&bits, &amax, 1);
  return {amax, true};
}

void WidenBF16(std::span<const uint16_t> bf16_bits, std::span<float> out) {
  HWY_DYNAMIC_DISPATCH(WidenBF16)(bf16_bits.data(), out.data(), bf16_bits.size());
}

void WidenF16(std::span<const uint16_t> f16_bits, std::span<float> out) {
  HWY_DYNAMIC_DISPATCH(WidenF16)(f16_bits.data(), out.data(), f16_bits.size());
}

}  // namespace qf
#endif  // HWY_ONCE
