// Shared by the NVFP4 kernels (nvfp4-inl.h, nvfp4_bf16-inl.h): the block-scale formulas of
// nvfp4_kernels.h vectorized across a group of 16 blocks, E4M3 rounding on float32 bits, and the
// last partial group of a run through zero-padded copies.

#if defined(QF_KERNELS_NVFP4_SCALES_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QF_KERNELS_NVFP4_SCALES_INL_H_
#undef QF_KERNELS_NVFP4_SCALES_INL_H_
#else
#define QF_KERNELS_NVFP4_SCALES_INL_H_
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "hwy/highway.h"
#include "src/kernels/nvfp4_kernels.h"
#include "src/kernels/nvfp4_scale_codes.h"

HWY_BEFORE_NAMESPACE();
namespace qf {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr size_t kNvfp4Block = 16;
constexpr size_t kNvfp4Group = 16;  // blocks per group of the vectorized scale math

// E4M3 RNE of s in [2^-9, 448] (already clamped): returns the code in u32 lanes and stores the
// value it decodes to in *value. Normal range (s >= 2^-6): round the float32 mantissa to 3 bits
// (add 0x7FFFF plus the lowest kept bit, clear the 20 dropped bits); the code is then the float32
// exponent rebiased from 127 to 7 above those 3 bits: (bits >> 20) - (120 << 3). Subnormal range:
// s + 2^14 rounds s to a multiple of 2^-9 (the ulp of 2^14), so the code is the ulp count
// bits(s + 2^14) - bits(2^14); a result of 8 is 2^-6, whose normal code is also 8.
template <class DF>
HWY_INLINE hn::Vec<hn::RebindToUnsigned<DF>> RoundE4M3(DF df, hn::Vec<DF> s, hn::Vec<DF>* value) {
  const hn::RebindToUnsigned<DF> du;
  const auto u = hn::BitCast(du, s);
  const auto lsb = hn::And(hn::ShiftRight<20>(u), hn::Set(du, 1u));
  const auto r = hn::And(hn::Add(hn::Add(u, hn::Set(du, 0x7FFFFu)), lsb), hn::Set(du, 0xFFF00000u));
  const auto code_normal = hn::Sub(hn::ShiftRight<20>(r), hn::Set(du, 120u << 3));
  const auto magic = hn::Set(df, 16384.0f);
  const auto t = hn::Add(s, magic);
  const auto code_subnormal = hn::Sub(hn::BitCast(du, t), hn::BitCast(du, magic));
  const auto is_subnormal = hn::Lt(s, hn::Set(df, 0.015625f));
  *value = hn::IfThenElse(is_subnormal, hn::Sub(t, magic), hn::BitCast(df, r));
  return hn::IfThenElse(hn::RebindMask(du, is_subnormal), code_subnormal, code_normal);
}

// Block scales of one candidate for a group of 16 block amaxes: codes, values and divisors.
struct GroupScales {
  HWY_ALIGN uint32_t code[kNvfp4Group];
  HWY_ALIGN float value[kNvfp4Group];
  HWY_ALIGN float divisor[kNvfp4Group];
};

template <class DF>
HWY_INLINE void ComputeGroupScales(DF df, const float* HWY_RESTRICT amax,
                                   const Nvfp4KernelParams& p, float candidate, GroupScales* out) {
  const hn::RebindToUnsigned<DF> du;
  const auto one = hn::Set(df, 1.0f);
  const auto zero = hn::Zero(df);
  for (size_t i = 0; i < kNvfp4Group; i += hn::Lanes(df)) {
    const auto a = hn::Load(df, amax + i);
    hn::Vec<DF> s;
    if (p.dynamic_scales) {
      s = hn::Div(a, hn::Set(df, p.six_global_scale));
      s = hn::IfThenElse(hn::Eq(s, zero), one, s);
    } else {
      const auto candidate_amax =
          p.candidates_are_amax ? hn::Set(df, candidate) : hn::Mul(a, hn::Set(df, candidate));
      auto per_block_scale = hn::Div(candidate_amax, hn::Set(df, 6.0f));
      per_block_scale = hn::IfThenElse(hn::Eq(per_block_scale, zero), one, per_block_scale);
      s = hn::Div(hn::Mul(per_block_scale, hn::Set(df, p.norm)), hn::Set(df, p.global_amax_over_6));
    }
    // Max first with s as the first operand: a NaN s (0 / 0 when 6 * g underflowed) becomes
    // 2^-9 on every target, as std::fmax does in the reference.
    s = hn::Min(hn::Max(s, hn::Set(df, 0.001953125f)), hn::Set(df, 448.0f));
    hn::Vec<DF> value;
    hn::Store(RoundE4M3(df, s, &value), du, out->code + i);
    hn::Store(value, df, out->value + i);
    hn::Store(hn::Mul(value, hn::Set(df, p.global_scale)), df, out->divisor + i);
  }
}

// Nvfp4ScaleCodeTable (nvfp4_scale_codes.h): ComputeGroupScales over the BF16 magnitudes
// themselves as block amaxes, 16 at a time.
inline void BuildNvfp4ScaleCodes(const Nvfp4KernelParams& p, uint16_t max_bits,
                                 Nvfp4ScaleCodeTable* table) {
  const hn::ScalableTag<float> df;
  const hn::RebindToUnsigned<decltype(df)> du;
  const size_t num_candidates = p.dynamic_scales ? 1 : p.candidates.size();
  HWY_ALIGN float amax[kNvfp4Group];
  GroupScales group;
  // max_bits <= 0x7F7F (finite), so every pattern of the last group of 16 is below 0x8000.
  for (uint32_t a0 = 0; a0 <= max_bits; a0 += kNvfp4Group) {
    for (size_t i = 0; i < kNvfp4Group; i += hn::Lanes(df)) {
      const auto bits = hn::Iota(du, static_cast<uint32_t>(a0 + i));
      hn::Store(hn::BitCast(df, hn::ShiftLeft<16>(bits)), df, amax + i);
    }
    for (size_t k = 0; k < num_candidates && k < Nvfp4ScaleCodeTable::kMaxCandidates; ++k) {
      ComputeGroupScales(df, amax, p, p.dynamic_scales ? 1.0f : p.candidates[k], &group);
      for (size_t j = 0; j < kNvfp4Group; ++j) {
        table->code[a0 + j][k] = static_cast<uint8_t>(group.code[j]);
      }
    }
  }
  table->max_bits = max_bits;
}

// The last nb (< 16) blocks at `in` as one group: copied into a zero-padded group, quantized by
// quantize_group(group_in, group_codes, group_scales, group_chosen), and only the nb real blocks'
// outputs stored (the padding blocks are computed, not stored). `chosen` may be nullptr.
template <typename T, class QuantizeGroupFn>
HWY_INLINE void QuantizePartialGroup(const T* HWY_RESTRICT in, size_t nb,
                                     uint8_t* HWY_RESTRICT codes, uint8_t* HWY_RESTRICT scales,
                                     uint8_t* HWY_RESTRICT chosen,
                                     const QuantizeGroupFn& quantize_group) {
  HWY_ALIGN T group_in[kNvfp4Group * kNvfp4Block] = {};
  HWY_ALIGN uint8_t group_codes[kNvfp4Group * 8], group_scales[kNvfp4Group],
      group_chosen[kNvfp4Group];
  std::memcpy(group_in, in, nb * kNvfp4Block * sizeof(T));
  quantize_group(group_in, group_codes, group_scales, group_chosen);
  std::memcpy(codes, group_codes, nb * 8);
  std::memcpy(scales, group_scales, nb);
  if (chosen != nullptr) std::memcpy(chosen, group_chosen, nb);
}

}  // namespace HWY_NAMESPACE
}  // namespace qf
HWY_AFTER_NAMESPACE();

#endif  // QF_KERNELS_NVFP4_SCALES_INL_H_
