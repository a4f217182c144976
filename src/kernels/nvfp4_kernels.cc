// Dynamic dispatch of the NVFP4 block kernels (nvfp4-inl.h), following Highway's
// hwy/examples/skeleton.cc: each call dispatches once, then runs its whole block range.
#include "src/kernels/nvfp4_kernels.h"

#include <algorithm>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/nvfp4_kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "src/kernels/nvfp4-inl.h"
#include "src/kernels/nvfp4_bounds.h"
#include "src/kernels/nvfp4_scale_codes.h"

#if HWY_ONCE
namespace qf {
HWY_EXPORT(QuantizeNvfp4BlocksF32);
HWY_EXPORT(QuantizeNvfp4BlocksBF16);
HWY_EXPORT(BuildNvfp4ScaleCodes);
HWY_EXPORT(BF16PathFor);

void QuantizeNvfp4BlocksF32(std::span<const float> in, const Nvfp4KernelParams& params,
                            std::span<uint8_t> codes, std::span<uint8_t> scales,
                            std::span<uint8_t> chosen) {
  uint8_t* chosen_out = chosen.empty() ? nullptr : chosen.data();
  HWY_DYNAMIC_DISPATCH(QuantizeNvfp4BlocksF32)(in.data(), in.size() / 16, params, codes.data(),
                                               scales.data(), chosen_out);
}

void QuantizeNvfp4BlocksBF16(std::span<const uint16_t> in, const Nvfp4KernelParams& params,
                             std::span<uint8_t> codes, std::span<uint8_t> scales,
                             std::span<uint8_t> chosen) {
  uint8_t* chosen_out = chosen.empty() ? nullptr : chosen.data();
  HWY_DYNAMIC_DISPATCH(QuantizeNvfp4BlocksBF16)(in.data(), in.size() / 16, params, codes.data(),
                                                scales.data(), chosen_out);
}

int64_t Nvfp4KernelTargets() { return HWY_TARGETS; }

Nvfp4BF16Path Nvfp4BF16PathFor(const Nvfp4KernelParams& params) {
  return HWY_DYNAMIC_DISPATCH(BF16PathFor)(params);
}

void BuildNvfp4ScaleCodes(const Nvfp4KernelParams& params, uint16_t max_bits,
                          Nvfp4ScaleCodeTable* table) {
  HWY_DYNAMIC_DISPATCH(BuildNvfp4ScaleCodes)(params, std::min<uint16_t>(max_bits, 0x7F7F), table);
  const Nvfp4DecisionTable* rows = params.bf16_table;
  const size_t num_candidates = params.dynamic_scales ? 1 : params.candidates.size();
  bool within = rows != nullptr && rows->has_buckets &&
                num_candidates <= Nvfp4ScaleCodeTable::kMaxCandidates;
  for (size_t k = 0; within && k < num_candidates; ++k) {
    for (uint32_t a = 0; a <= table->max_bits; ++a) {
      if (a > rows->bucket_row[table->code[a][k]].base[0] + 1023u) {
        within = false;
        break;
      }
    }
  }
  table->within_bucket_window = within;
}

}  // namespace qf
#endif  // HWY_ONCE
