// Highway bodies of mx_kernels.h: MXFP4 / MXFP8 rows, one 32-element block at a time.
//
// Per block: amax is an integer max over the magnitude bits (exact, as in amax-inl.h); the shared
// exponent e comes from amax's binary32 bits (MxBlockExponent, no log2 call); elements are
// x * 2^-e, which equals the specification's x / 2^e bit for bit because 2^-e is a binary32 value
// for every e in [-127, 127] and both are one correctly rounded operation on the same real
// number. Elements are then encoded with the vector E4M3 codec of fp8-inl.h or the E2M1 threshold
// chain below, and E2M1 nibbles are packed two per byte, the even element in the low nibble.

#if defined(QF_KERNELS_MX_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QF_KERNELS_MX_INL_H_
#undef QF_KERNELS_MX_INL_H_
#else
#define QF_KERNELS_MX_INL_H_
#endif

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "hwy/highway.h"
#include "src/kernels/fp8-inl.h"

HWY_BEFORE_NAMESPACE();
namespace qf {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr size_t kMxBlock = 32;

// floor(log2(x)) of a positive finite binary32 given by its bits, exactly: the unbiased exponent
// for normals; for subnormals (x = bits * 2^-149) the position of the top set bit minus 149.
inline int FloorLog2Bits(uint32_t bits) {
  const int biased = static_cast<int>(bits >> 23);
  if (biased != 0) return biased - 127;
  return (31 - std::countl_zero(bits)) - 149;
}
inline bool IsPowerOfTwoBits(uint32_t bits) {
  return (bits >> 23) != 0 ? (bits & 0x7FFFFFu) == 0 : (bits & (bits - 1)) == 0;
}

// The block's shared exponent (mx_kernels.h states the two rules). Non-finite amax bits (which
// the caller rejects) still give some exponent in range, never undefined behaviour.
inline int MxBlockExponent(uint32_t amax_bits, bool e2m1, bool ceil_rule) {
  if (amax_bits >= 0x7F800000u) return 0;
  if (ceil_rule) {
    // Model Optimizer: descale = amax / max_element in binary32, e = ceil(log2(descale)).
    const float descale = std::bit_cast<float>(amax_bits) / (e2m1 ? 6.0f : 448.0f);
    const uint32_t d = std::bit_cast<uint32_t>(descale);
    if (d == 0) return -127;
    const int e = FloorLog2Bits(d) + (IsPowerOfTwoBits(d) ? 0 : 1);
    return std::clamp(e, -127, 127);
  }
  // OCP MX v1.0 section 6.3: floor(log2(amax)) - emax_element; amax 0 takes the smallest code.
  if (amax_bits == 0) return -127;
  return std::clamp(FloorLog2Bits(amax_bits) - (e2m1 ? 2 : 8), -127, 127);
}

// 2^k for k in [-127, 127] as a binary32 (2^-127 is the subnormal 0x00400000).
inline float Pow2(int k) {
  return std::bit_cast<float>(k >= -126 ? static_cast<uint32_t>(k + 127) << 23 : 0x00400000u);
}
// The value of an E8M0 code: 2^(code - 127); 0xFF is NaN.
inline float E8M0Value(uint8_t code) {
  return code == 0xFF ? std::bit_cast<float>(0x7FC00000u) : Pow2(static_cast<int>(code) - 127);
}

// E2M1 codes (0..15) of the float lanes of q, in uint32 lanes, on binary32 bits like the E4M3
// codec in fp8-inl.h. |q| is first clamped to 6 (bits 0x40C00000).
//   |q| >= 1 (E2M1 normal, 1 fraction bit): add 0x1FFFFF (just under half of the kept step) plus,
//     for ties to even, the lowest kept bit, and shift by 22; the code is (bits >> 22) - 252
//     (1.0 = 0x3F800000 gives 254 - 252 = 2). Without the lowest-bit term a tie rounds down.
//   |q| < 1 (subnormal step 0.5): the code counts the midpoints passed, 0.25 (a tie goes to 0 under
//     both rules) and 0.75 (a tie goes up to the even code 2 under RNE, down to 1 under ties-down).
//   kModelOptMx = false (qf::EncodeE2M1): ties to even; sign bit = (q < 0) = the binary32 sign of
//     any q other than -0, and -0 gets 0 (EncodeE2M1 tests x < 0).
//   kModelOptMx = true (Model Optimizer's MXFP4 export): ties down; sign bit = !(q > 0), so +0 and
//     -0 are both 0x8 (as int32, q > 0 exactly when its bits are > 0).
template <bool kModelOptMx, class DF>
HWY_INLINE hn::Vec<hn::RebindToUnsigned<DF>> EncodeE2M1Vec(DF df, hn::Vec<DF> q) {
  const hn::RebindToSigned<DF> di;
  const hn::RebindToUnsigned<DF> du;
  const auto bits = hn::BitCast(du, q);
  const auto a = hn::Min(hn::And(bits, hn::Set(du, 0x7FFFFFFFu)), hn::Set(du, 0x40C00000u));
  auto bias = hn::Set(du, 0x1FFFFFu);
  if (!kModelOptMx) bias = hn::Add(bias, hn::And(hn::ShiftRight<22>(a), hn::Set(du, 1u)));
  const auto normal = hn::Sub(hn::ShiftRight<22>(hn::Add(a, bias)), hn::Set(du, 252u));
  const auto past_quarter = hn::VecFromMask(du, hn::Gt(a, hn::Set(du, 0x3E800000u)));  // 0.25
  // a > 0.75, or a >= 0.75 written as a > the float below 0.75 (Highway 1.0.3 has no unsigned >=).
  const auto past_three_quarters =
      hn::VecFromMask(du, hn::Gt(a, hn::Set(du, kModelOptMx ? 0x3F400000u : 0x3F3FFFFFu)));
  // Masks are all ones (-1 as an integer): subtracting them counts.
  const auto subnormal = hn::Sub(hn::Sub(hn::Zero(du), past_quarter), past_three_quarters);
  const auto magnitude = hn::IfThenElse(hn::Lt(a, hn::Set(du, 0x3F800000u)), subnormal, normal);
  hn::Vec<decltype(du)> sign;
  if (kModelOptMx) {
    const auto positive = hn::RebindMask(du, hn::Gt(hn::BitCast(di, bits), hn::Zero(di)));
    sign = hn::AndNot(hn::VecFromMask(du, positive), hn::Set(du, 8u));
  } else {
    // -0 has the sign bit but is not < 0: only a nonzero magnitude keeps it.
    const auto is_negative = hn::RebindMask(du, hn::Lt(q, hn::Zero(df)));
    sign = hn::IfThenElseZero(is_negative, hn::Set(du, 8u));
  }
  return hn::Or(sign, magnitude);
}

// Float values of E2M1 codes held in uint32 lanes (only the low nibble is read). Magnitude codes
// m >= 2 are 2^((m >> 1) - 1) * (1 + (m & 1) / 2); m = 1 is 0.5; m = 0 is 0; 0x8 gives -0.
template <class DU>
HWY_INLINE hn::Vec<hn::RebindToFloat<DU>> DecodeE2M1Vec(DU du, hn::Vec<DU> code) {
  const hn::RebindToFloat<DU> df;
  const auto m = hn::And(code, hn::Set(du, 7u));
  const auto normal = hn::Or(hn::ShiftLeft<23>(hn::Add(hn::ShiftRight<1>(m), hn::Set(du, 126u))),
                             hn::ShiftLeft<22>(hn::And(m, hn::Set(du, 1u))));
  auto magnitude = hn::IfThenElse(hn::Eq(m, hn::Set(du, 1u)), hn::Set(du, 0x3F000000u), normal);
  magnitude = hn::IfThenZeroElse(hn::Eq(m, hn::Zero(du)), magnitude);
  const auto sign = hn::ShiftLeft<28>(hn::And(code, hn::Set(du, 8u)));
  return hn::BitCast(df, hn::Or(sign, magnitude));
}

// Two codes per byte: out[k] = nibbles[2k] | nibbles[2k + 1] << 4 for one block (16 bytes).
inline void PackBlockNibbles(const uint8_t* HWY_RESTRICT nibbles, uint8_t* HWY_RESTRICT out) {
  const hn::CappedTag<uint16_t, kMxBlock / 2> d16;
  const hn::RebindToSigned<decltype(d16)> di16;
  const hn::Rebind<uint8_t, decltype(d16)> d8;
  HWY_ALIGN uint16_t pairs[kMxBlock / 2];  // little-endian: even element in the low byte
  std::memcpy(pairs, nibbles, kMxBlock);
  for (size_t k = 0; k < kMxBlock / 2; k += hn::Lanes(d16)) {
    const auto w = hn::Load(d16, pairs + k);
    const auto packed = hn::Or(hn::And(w, hn::Set(d16, uint16_t{0x000F})),
                               hn::And(hn::ShiftRight<4>(w), hn::Set(d16, uint16_t{0x00F0})));
    hn::StoreU(hn::DemoteTo(d8, hn::BitCast(di16, packed)), d8, out + k);
  }
}

// The inverse: 16 packed bytes to 32 nibbles, one per byte.
inline void UnpackBlockNibbles(const uint8_t* HWY_RESTRICT packed, uint8_t* HWY_RESTRICT nibbles) {
  const hn::CappedTag<uint16_t, kMxBlock / 2> d16;
  const hn::Rebind<uint8_t, decltype(d16)> d8;
  HWY_ALIGN uint16_t pairs[kMxBlock / 2];
  for (size_t k = 0; k < kMxBlock / 2; k += hn::Lanes(d16)) {
    const auto w = hn::PromoteTo(d16, hn::LoadU(d8, packed + k));
    const auto split = hn::Or(hn::And(w, hn::Set(d16, uint16_t{0x000F})),
                              hn::ShiftLeft<4>(hn::And(w, hn::Set(d16, uint16_t{0x00F0}))));
    hn::Store(split, d16, pairs + k);
  }
  std::memcpy(nibbles, pairs, kMxBlock);
}

// Codes of one 32-element block x, given 2^-e: E4M3 bytes, or E2M1 nibbles packed two per byte.
template <bool kE2M1, bool kCeil>
HWY_INLINE void EncodeMxBlock(const float* HWY_RESTRICT x, float inv_scale_value,
                              uint8_t* HWY_RESTRICT block_codes) {
  const hn::CappedTag<float, kMxBlock> df;
  const hn::RebindToUnsigned<decltype(df)> du;
  const size_t lanes = hn::Lanes(df);
  const auto inv_scale = hn::Set(df, inv_scale_value);
  if constexpr (!kE2M1) {
    for (size_t j = 0; j < kMxBlock; j += lanes) {
      StoreBytes(du, EncodeE4M3Vec(df, hn::Mul(hn::LoadU(df, x + j), inv_scale)), block_codes + j);
    }
  } else {
#if HWY_TARGET == HWY_SCALAR
    HWY_ALIGN uint8_t nibbles[kMxBlock];
    for (size_t j = 0; j < kMxBlock; j += lanes) {
      StoreBytes(du, EncodeE2M1Vec<kCeil>(df, hn::Mul(hn::LoadU(df, x + j), inv_scale)),
                 nibbles + j);
    }
    PackBlockNibbles(nibbles, block_codes);
#else
    // Pack in registers: seen as 64-bit lanes, a pair of codes is even | odd << 32, so
    // w | w >> 28 holds even | odd << 4 in its low 32 bits; ConcatEven keeps those halves of two
    // vectors in element order, and one demotion stores 2 * lanes elements as lanes bytes.
    const hn::Repartition<uint64_t, decltype(du)> du64;
    const auto pack_pairs = [&](hn::Vec<decltype(du)> c) {
      const auto w = hn::BitCast(du64, c);
      return hn::BitCast(du, hn::Or(w, hn::ShiftRight<28>(w)));
    };
    for (size_t j = 0; j < kMxBlock; j += 2 * lanes) {
      const auto lo = EncodeE2M1Vec<kCeil>(df, hn::Mul(hn::LoadU(df, x + j), inv_scale));
      const auto hi = EncodeE2M1Vec<kCeil>(df, hn::Mul(hn::LoadU(df, x + j + lanes), inv_scale));
      StoreBytes(du, hn::ConcatEven(du, pack_pairs(hi), pack_pairs(lo)), block_codes + j / 2);
    }
#endif
  }
}

// Max of the magnitude bits of one block, still spread over the lanes of a vector.
template <class DU>
HWY_INLINE hn::Vec<DU> BlockMaxBits(DU du, const float* HWY_RESTRICT x) {
  const hn::RebindToFloat<DU> df;
  const auto abs_mask = hn::Set(du, 0x7FFFFFFFu);
  auto max_bits = hn::Zero(du);
  for (size_t j = 0; j < kMxBlock; j += hn::Lanes(du)) {
    max_bits = hn::Max(max_bits, hn::And(hn::BitCast(du, hn::LoadU(df, x + j)), abs_mask));
  }
  return max_bits;
}

// One row of padded_cols (a multiple of 32) finite floats to codes and E8M0 scales. Returns the
// maximum magnitude bits seen, so the caller can detect NaN / Inf (>= 0x7F800000) afterwards.
//
// Vector targets handle `lanes` blocks at a time: the per-block max vectors are folded into one
// vector of block maxima (ConcatEven / ConcatOdd pairs keep the blocks in order), and the
// exponents come from those bits without a division: with amax = M * 2^k (1 <= M < 2),
//   floor rule: e = k - emax_elem (a binary32 subnormal amax gives e <= -129, clamped to -127);
//   ceil rule:  e = k - emax_elem + (M > 1.5 for E2M1, M > 1.75 for E4M3), the exact
//               ceil(log2(amax / max_elem)). It equals the binary32-descale rule of
//               MxBlockExponent whenever the descale is normal (the quotients next to a power of
//               two are more than half an ulp away from it), so only blocks with
//               amax < max_elem * 2^-125 take MxBlockExponent itself.
// Leftover blocks (fewer than `lanes`) and the SCALAR target use MxBlockExponent per block.
template <bool kE2M1, bool kCeil>
uint32_t QuantizeMxRowT(const float* HWY_RESTRICT row, size_t padded_cols,
                        uint8_t* HWY_RESTRICT codes, uint8_t* HWY_RESTRICT scales) {
  const hn::CappedTag<float, kMxBlock> df;
  const hn::RebindToUnsigned<decltype(df)> du;
  const size_t num_blocks = padded_cols / kMxBlock;
  const size_t codes_per_block = kE2M1 ? kMxBlock / 2 : kMxBlock;
  uint32_t row_max_bits = 0;
  size_t b = 0;
#if HWY_TARGET != HWY_SCALAR
  const hn::RebindToSigned<decltype(df)> di;
  const size_t group = hn::Lanes(du);  // blocks per group, a power of two
  constexpr size_t kMaxGroup = hn::MaxLanes(du);
  constexpr int kEmax = kE2M1 ? 2 : 8;
  const uint32_t fraction_threshold = kE2M1 ? 0x400000u : 0x600000u;  // M = 1.5 or 1.75
  const uint32_t small_amax = std::bit_cast<uint32_t>((kE2M1 ? 6.0f : 448.0f) * Pow2(-125));
  auto row_max = hn::Zero(du);
  for (; b + group <= num_blocks; b += group) {
    hn::Vec<decltype(du)> m[kMaxGroup];
    for (size_t g = 0; g < group; ++g) m[g] = BlockMaxBits(du, row + (b + g) * kMxBlock);
    for (size_t count = group; count > 1; count /= 2) {
      for (size_t i = 0; i < count / 2; ++i) {
        m[i] = hn::Max(hn::ConcatEven(du, m[2 * i + 1], m[2 * i]),
                       hn::ConcatOdd(du, m[2 * i + 1], m[2 * i]));
      }
    }
    const auto amax = m[0];  // lane g: the amax bits of block b + g
    row_max = hn::Max(row_max, amax);
    auto e = hn::Sub(hn::BitCast(di, hn::ShiftRight<23>(amax)), hn::Set(di, 127 + kEmax));
    if (kCeil) {
      const auto fraction = hn::And(amax, hn::Set(du, 0x7FFFFFu));
      const auto above = hn::RebindMask(di, hn::Gt(fraction, hn::Set(du, fraction_threshold)));
      e = hn::Sub(e, hn::VecFromMask(di, above));  // the mask is -1
    }
    e = hn::Min(hn::Max(e, hn::Set(di, -127)), hn::Set(di, 127));
    HWY_ALIGN int32_t exponents[kMaxGroup];
    HWY_ALIGN uint32_t amax_bits[kMaxGroup];
    hn::Store(e, di, exponents);
    hn::Store(amax, du, amax_bits);
    for (size_t g = 0; g < group; ++g) {
      int exponent = exponents[g];
      if (kCeil && amax_bits[g] < small_amax) {
        exponent = MxBlockExponent(amax_bits[g], kE2M1, kCeil);
      }
      scales[b + g] = static_cast<uint8_t>(exponent + 127);
      EncodeMxBlock<kE2M1, kCeil>(row + (b + g) * kMxBlock, Pow2(-exponent),
                                  codes + (b + g) * codes_per_block);
    }
  }
  row_max_bits = hn::GetLane(hn::MaxOfLanes(du, row_max));
#endif
  for (; b < num_blocks; ++b) {
    const uint32_t amax_bits =
        hn::GetLane(hn::MaxOfLanes(du, BlockMaxBits(du, row + b * kMxBlock)));
    row_max_bits = std::max(row_max_bits, amax_bits);
    const int exponent = MxBlockExponent(amax_bits, kE2M1, kCeil);
    scales[b] = static_cast<uint8_t>(exponent + 127);
    EncodeMxBlock<kE2M1, kCeil>(row + b * kMxBlock, Pow2(-exponent), codes + b * codes_per_block);
  }
  return row_max_bits;
}

inline uint32_t QuantizeMxRow(const float* HWY_RESTRICT row, size_t padded_cols, bool e2m1,
                              bool ceil_rule, uint8_t* HWY_RESTRICT codes,
                              uint8_t* HWY_RESTRICT scales) {
  if (e2m1) {
    return ceil_rule ? QuantizeMxRowT<true, true>(row, padded_cols, codes, scales)
                     : QuantizeMxRowT<true, false>(row, padded_cols, codes, scales);
  }
  return ceil_rule ? QuantizeMxRowT<false, true>(row, padded_cols, codes, scales)
                   : QuantizeMxRowT<false, false>(row, padded_cols, codes, scales);
}

// Writes the first `cols` values of a row whose codes and scales cover the padded width:
// out[i] = element(code[i]) * 2^(scale - 127), one binary32 multiply (exact, as every product of
// an E2M1 / E4M3 value and a power of two in [2^-127, 2^127] is a binary32 value or NaN).
inline void DequantizeMxRow(const uint8_t* HWY_RESTRICT codes, const uint8_t* HWY_RESTRICT scales,
                            size_t cols, bool e2m1, float* HWY_RESTRICT out) {
  const hn::CappedTag<uint32_t, kMxBlock> du;
  const hn::Rebind<uint8_t, decltype(du)> d8;
  const hn::RebindToFloat<decltype(du)> df;
  const size_t lanes = hn::Lanes(du);
  const size_t num_blocks = (cols + kMxBlock - 1) / kMxBlock;
  for (size_t b = 0; b < num_blocks; ++b) {
    const auto scale = hn::Set(df, E8M0Value(scales[b]));
    HWY_ALIGN uint8_t nibbles[kMxBlock];
    const uint8_t* HWY_RESTRICT block_codes = codes + b * kMxBlock;
    if (e2m1) {
      UnpackBlockNibbles(codes + b * kMxBlock / 2, nibbles);
      block_codes = nibbles;
    }
    const size_t begin = b * kMxBlock;
    const bool partial = begin + kMxBlock > cols;
    HWY_ALIGN float tail[kMxBlock];
    float* HWY_RESTRICT dst = partial ? tail : out + begin;
    for (size_t j = 0; j < kMxBlock; j += lanes) {
      const auto code = hn::PromoteTo(du, hn::LoadU(d8, block_codes + j));
      const auto value = e2m1 ? DecodeE2M1Vec(du, code) : DecodeE4M3Vec(du, code);
      hn::StoreU(hn::Mul(value, scale), df, dst + j);
    }
    if (partial) std::memcpy(out + begin, tail, (cols - begin) * sizeof(float));
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace qf
HWY_AFTER_NAMESPACE();

#endif  // QF_KERNELS_MX_INL_H_
