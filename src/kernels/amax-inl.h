// Highway bodies of amax.h: per-target code, included once per target by amax.cc through
// foreach_target.h. Loops run over whole vectors, then finish the tail with a scalar loop using
// the same integer arithmetic (so every target gives identical bits).

// Per-target include guard (Highway's pattern: toggled by foreach_target.h).
#if defined(QF_KERNELS_AMAX_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QF_KERNELS_AMAX_INL_H_
#undef QF_KERNELS_AMAX_INL_H_
#else
#define QF_KERNELS_AMAX_INL_H_
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace qf {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Max of (bits & abs_mask) over `n` values loaded as lanes of D (float for F32, uint16_t for BF16
// and F16) and compared as unsigned integers of the same width. Four accumulators hide the
// latency of Max.
template <class D, typename T = hn::TFromD<D>, typename U = hwy::MakeUnsigned<T>>
U MaxAbsBits(D d, const T* HWY_RESTRICT values, size_t n, U abs_mask) {
  const hn::RebindToUnsigned<D> du;
  const size_t lanes = hn::Lanes(d);
  const auto mask = hn::Set(du, abs_mask);
  const auto abs_bits = [&](size_t i) {
    return hn::And(hn::BitCast(du, hn::LoadU(d, values + i)), mask);
  };
  auto m0 = hn::Zero(du), m1 = hn::Zero(du), m2 = hn::Zero(du), m3 = hn::Zero(du);
  size_t i = 0;
  for (; i + 4 * lanes <= n; i += 4 * lanes) {
    m0 = hn::Max(m0, abs_bits(i));
    m1 = hn::Max(m1, abs_bits(i + lanes));
    m2 = hn::Max(m2, abs_bits(i + 2 * lanes));
    m3 = hn::Max(m3, abs_bits(i + 3 * lanes));
  }
  for (; i + lanes <= n; i += lanes) m0 = hn::Max(m0, abs_bits(i));
  m0 = hn::Max(hn::Max(m0, m1), hn::Max(m2, m3));
  U result = hn::GetLane(hn::MaxOfLanes(du, m0));
  for (; i < n; ++i) {
    U bits;
    std::memcpy(&bits, values + i, sizeof(bits));
    bits = static_cast<U>(bits & abs_mask);
    result = bits > result ? bits : result;
  }
  return result;
}

inline uint32_t MaxAbsBitsF32(const float* HWY_RESTRICT values, size_t n) {
  return MaxAbsBits(hn::ScalableTag<float>(), values, n, uint32_t{0x7FFFFFFFu});
}

inline uint16_t MaxAbsBits16(const uint16_t* HWY_RESTRICT bits, size_t n) {
  return MaxAbsBits(hn::ScalableTag<uint16_t>(), bits, n, uint16_t{0x7FFF});
}

// BF16 -> F32: the 16 bits become the upper half of the binary32 pattern.
inline void WidenBF16(const uint16_t* HWY_RESTRICT in, float* HWY_RESTRICT out, size_t n) {
  const hn::ScalableTag<uint32_t> du32;
  const hn::Rebind<uint16_t, decltype(du32)> du16;
  const hn::RebindToFloat<decltype(du32)> df;
  const size_t lanes = hn::Lanes(du32);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto w = hn::ShiftLeft<16>(hn::PromoteTo(du32, hn::LoadU(du16, in + i)));
    hn::StoreU(hn::BitCast(df, w), df, out + i);
  }
  for (; i < n; ++i) {
    const uint32_t w = static_cast<uint32_t>(in[i]) << 16;
    std::memcpy(out + i, &w, sizeof(w));
  }
}

// F16 -> F32 with integer arithmetic on every target (Highway 1.0.3's emulated PromoteTo for
// targets without F16C maps Inf/NaN to finite values, so it is not used). Normal: rebias the
// exponent by 127 - 15 = 112 and shift the fraction up by 13. Subnormal: fraction * 2^-24, exact
// in binary32. Exponent 31: Inf stays Inf; NaN becomes the quiet NaN 0x7FC00000 with its sign,
// which is what DecodeFP16 returns.
template <class DU32>
HWY_INLINE hn::Vec<DU32> F16BitsToF32Bits(DU32 du32, hn::Vec<DU32> h) {
  const hn::RebindToFloat<DU32> df;
  const hn::RebindToSigned<DU32> di32;
  const auto sign = hn::ShiftLeft<16>(hn::And(h, hn::Set(du32, 0x8000u)));
  const auto exponent = hn::And(hn::ShiftRight<10>(h), hn::Set(du32, 0x1Fu));
  const auto fraction = hn::And(h, hn::Set(du32, 0x3FFu));
  const auto normal = hn::Or(hn::ShiftLeft<23>(hn::Add(exponent, hn::Set(du32, 112u))),
                             hn::ShiftLeft<13>(fraction));
  const auto subnormal = hn::BitCast(
      du32, hn::Mul(hn::ConvertTo(df, hn::BitCast(di32, fraction)), hn::Set(df, 5.9604645e-08f)));
  const auto special = hn::IfThenElse(hn::Eq(fraction, hn::Zero(du32)), hn::Set(du32, 0x7F800000u),
                                      hn::Set(du32, 0x7FC00000u));
  auto magnitude = hn::IfThenElse(hn::Eq(exponent, hn::Zero(du32)), subnormal, normal);
  magnitude = hn::IfThenElse(hn::Eq(exponent, hn::Set(du32, 0x1Fu)), special, magnitude);
  return hn::Or(sign, magnitude);
}

inline void WidenF16(const uint16_t* HWY_RESTRICT in, float* HWY_RESTRICT out, size_t n) {
  const hn::ScalableTag<uint32_t> du32;
  const hn::Rebind<uint16_t, decltype(du32)> du16;
  const hn::RebindToFloat<decltype(du32)> df;
  const size_t lanes = hn::Lanes(du32);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto w = F16BitsToF32Bits(du32, hn::PromoteTo(du32, hn::LoadU(du16, in + i)));
    hn::StoreU(hn::BitCast(df, w), df, out + i);
  }
  if (i < n) {  // tail through one padded vector, so it uses the same arithmetic
    HWY_ALIGN uint16_t tail_in[hn::MaxLanes(du32)] = {};
    HWY_ALIGN uint32_t tail_out[hn::MaxLanes(du32)];
    std::memcpy(tail_in, in + i, (n - i) * sizeof(uint16_t));
    hn::Store(F16BitsToF32Bits(du32, hn::PromoteTo(du32, hn::Load(du16, tail_in))), du32, tail_out);
    std::memcpy(out + i, tail_out, (n - i) * sizeof(float));
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace qf
HWY_AFTER_NAMESPACE();

#endif  // QF_KERNELS_AMAX_INL_H_
