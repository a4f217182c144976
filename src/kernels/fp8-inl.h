// Highway bodies of fp8_kernels.h, plus the E4M3 vector codec that mx-inl.h reuses.
//
// E4M3 encode (round to nearest even, saturating at 448, no NaN input) on binary32 bits, equal to
// qf::EncodeE4M3 for every finite input:
//   - |x| is clamped to 448 as an integer min on the magnitude bits (448 is a float, and rounding
//     anything <= 448 cannot pass it);
//   - |x| >= 2^-6 (E4M3 normal): keep 3 fraction bits with round-half-even by adding
//     0x7FFFF + (lowest kept bit) to the binary32 bits and shifting by 20; the carry into the
//     exponent is the correct next code. The code is then (bits >> 20) - (127 - 7) * 8;
//   - |x| < 2^-6 (E4M3 subnormal, step 2^-9): |x| + 2^14 has a binary32 ulp of exactly 2^-9, so
//     the hardware's round-half-even add yields 2^14 + code * 2^-9, code 0..8 (8 is 2^-6, the
//     smallest normal, which is where a carry belongs);
//   - the sign bit is copied, so -0 and negatives that round to zero give 0x80.
// Decode: normal codes rebuild the binary32 bits, subnormals are fraction * 2^-9 (exact),
// S.1111.111 is NaN (0x7FC00000 with the sign, as DecodeE4M3's copysign(NAN) gives).

#if defined(QF_KERNELS_FP8_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QF_KERNELS_FP8_INL_H_
#undef QF_KERNELS_FP8_INL_H_
#else
#define QF_KERNELS_FP8_INL_H_
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace qf {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// E4M3 codes (0..255) of the float lanes of v, in uint32 lanes.
template <class DF>
HWY_INLINE hn::Vec<hn::RebindToUnsigned<DF>> EncodeE4M3Vec(DF df, hn::Vec<DF> v) {
  const hn::RebindToUnsigned<DF> du;
  const auto bits = hn::BitCast(du, v);
  const auto sign = hn::ShiftRight<24>(hn::And(bits, hn::Set(du, 0x80000000u)));
  const auto abs_bits = hn::Min(hn::And(bits, hn::Set(du, 0x7FFFFFFFu)), hn::Set(du, 0x43E00000u));
  const auto lowest_kept = hn::And(hn::ShiftRight<20>(abs_bits), hn::Set(du, 1u));
  const auto rounded = hn::Add(hn::Add(abs_bits, hn::Set(du, 0x7FFFFu)), lowest_kept);
  const auto normal = hn::Sub(hn::ShiftRight<20>(rounded), hn::Set(du, 960u));
  const auto shifted = hn::Add(hn::BitCast(df, abs_bits), hn::Set(df, 16384.0f));
  const auto subnormal = hn::Sub(hn::BitCast(du, shifted), hn::Set(du, 0x46800000u));
  const auto is_subnormal = hn::Lt(abs_bits, hn::Set(du, 0x3C800000u));  // 2^-6
  return hn::Or(sign, hn::IfThenElse(is_subnormal, subnormal, normal));
}

// Float values of E4M3 codes held in uint32 lanes (0..255).
template <class DU>
HWY_INLINE hn::Vec<hn::RebindToFloat<DU>> DecodeE4M3Vec(DU du, hn::Vec<DU> code) {
  const hn::RebindToFloat<DU> df;
  const hn::RebindToSigned<DU> di;
  const auto sign = hn::ShiftLeft<24>(hn::And(code, hn::Set(du, 0x80u)));
  const auto exponent = hn::And(hn::ShiftRight<3>(code), hn::Set(du, 0xFu));
  const auto fraction = hn::And(code, hn::Set(du, 0x7u));
  const auto normal =
      hn::Or(hn::ShiftLeft<23>(hn::Add(exponent, hn::Set(du, 120u))), hn::ShiftLeft<20>(fraction));
  const auto subnormal = hn::BitCast(
      du, hn::Mul(hn::ConvertTo(df, hn::BitCast(di, fraction)), hn::Set(df, 0.001953125f)));
  auto magnitude = hn::IfThenElse(hn::Eq(exponent, hn::Zero(du)), subnormal, normal);
  const auto is_nan = hn::Eq(hn::And(code, hn::Set(du, 0x7Fu)), hn::Set(du, 0x7Fu));
  magnitude = hn::IfThenElse(is_nan, hn::Set(du, 0x7FC00000u), magnitude);
  return hn::BitCast(df, hn::Or(sign, magnitude));
}

// Bytes of uint32 lanes that hold values 0..255.
template <class DU>
HWY_INLINE void StoreBytes(DU /*du*/, hn::Vec<DU> v, uint8_t* HWY_RESTRICT out) {
  const hn::RebindToSigned<DU> di;
  const hn::Rebind<uint8_t, DU> d8;
  hn::StoreU(hn::DemoteTo(d8, hn::BitCast(di, v)), d8, out);
}

// out[i] = EncodeE4M3(in[i] / scale): a true division, as Model Optimizer's export divides by
// amax / 448 (the reciprocal would round differently). The tail goes through one zero-padded
// vector so it uses the same arithmetic.
inline void QuantizeFp8Row(const float* HWY_RESTRICT in, size_t n, float scale,
                           uint8_t* HWY_RESTRICT out) {
  const hn::ScalableTag<float> df;
  const hn::RebindToUnsigned<decltype(df)> du;
  const size_t lanes = hn::Lanes(df);
  const auto vscale = hn::Set(df, scale);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    StoreBytes(du, EncodeE4M3Vec(df, hn::Div(hn::LoadU(df, in + i), vscale)), out + i);
  }
  if (i < n) {
    HWY_ALIGN float tail_in[hn::MaxLanes(df)] = {};
    uint8_t tail_out[hn::MaxLanes(df)];
    std::memcpy(tail_in, in + i, (n - i) * sizeof(float));
    StoreBytes(du, EncodeE4M3Vec(df, hn::Div(hn::Load(df, tail_in), vscale)), tail_out);
    std::memcpy(out + i, tail_out, n - i);
  }
}

// out[i] = DecodeE4M3(in[i]) * scale.
inline void DequantizeFp8Row(const uint8_t* HWY_RESTRICT in, size_t n, float scale,
                             float* HWY_RESTRICT out) {
  const hn::ScalableTag<uint32_t> du;
  const hn::Rebind<uint8_t, decltype(du)> d8;
  const hn::RebindToFloat<decltype(du)> df;
  const size_t lanes = hn::Lanes(du);
  const auto vscale = hn::Set(df, scale);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto code = hn::PromoteTo(du, hn::LoadU(d8, in + i));
    hn::StoreU(hn::Mul(DecodeE4M3Vec(du, code), vscale), df, out + i);
  }
  if (i < n) {
    uint8_t tail_in[hn::MaxLanes(du)] = {};
    HWY_ALIGN float tail_out[hn::MaxLanes(du)];
    std::memcpy(tail_in, in + i, n - i);
    const auto code = hn::PromoteTo(du, hn::LoadU(d8, tail_in));
    hn::Store(hn::Mul(DecodeE4M3Vec(du, code), vscale), df, tail_out);
    std::memcpy(out + i, tail_out, (n - i) * sizeof(float));
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace qf
HWY_AFTER_NAMESPACE();

#endif  // QF_KERNELS_FP8_INL_H_
