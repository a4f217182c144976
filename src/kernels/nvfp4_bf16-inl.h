// BF16 NVFP4 groups without division (x86 AVX2 and AVX-512 targets), included by nvfp4-inl.h.
//
// Same results as the division kernels, byte for byte, through the decision bounds of
// nvfp4_bounds.h: per block, the E2M1 magnitude code is the number of the block scale's 7 BF16
// bounds that |x| exceeds (16-bit integer compares, 16 elements per 256-bit vector), the sign bit
// is "x negative and not -0". The work per group of 16 blocks:
//   1. block amaxes: a transposing max tree over the 16 blocks' |x| bits;
//   2. block scales, one group ahead of the codes: looked up by block amax in the tensor's
//      Nvfp4ScaleCodeTable (nvfp4_scale_codes.h, a 32-bit gather per 8 blocks), or
//      ComputeGroupScales (shared with the division kernels) without one or with more than two
//      candidates; and the byte offsets of their rows in the decision table;
//   3. codes: per block, on AVX-512 targets one lookup in the bucket form of the scale's row
//      (BucketCodes), else a binary search over the row's 7 bound vectors; packing of four
//      blocks at once (pair sums c0 + 16 c1, two saturating packs, one lane permute);
//   4. with several candidates, the loss of each block, sum((|x| - magnitude[code])^2) in the
//      tree order of ReferenceBlockLoss (its first level adds the even and the odd elements' lanes
//      as they are), and per block the better candidate's codes (two slots per block, a bit per
//      block says which holds the best: no data-dependent branches).
// 256-bit vectors on purpose: the compares are written VecFromMask(Gt(..)), which the AVX2 target
// compiles to VEX vpcmpgtw (a vector result, three ports) and for which GCC folds the AVX3
// target's mask compare back into the same instruction; 512-bit compares into masks share one
// port.
// Measured (bench/RESULTS.md), kernel alone on a 512 KiB L2-resident input, one core: max 4.9 ->
// 8.8 GB/s of BF16, four_over_six 2.0 -> 2.8 with the bounds; 9.9 and 3.3 with the scale-code
// table, Select's ternlog and the unrolled candidate loops; 12.2 and 3.8 with the buckets, the
// gathered scale codes, the row offsets and the plan's |x| bits; 14.3 and 4.75 with the loss
// order, vpermb (AVX3_DL) and no clamp where proven; four_over_six +1.5% with one gather for
// both candidates' scale codes.
//
// Highway 1.0.3 has no in-lane two-source shuffle of 32-bit lanes (shufps) nor a two-source
// saturating 16 -> 8 bit pack (packuswb), its TableLookupLanes wants indices below 8 where vpermps
// reads 3 bits, and it leaves the lane order of its widening multiply-add and 32 -> 16 bit pack
// unspecified: those stay intrinsics (EvenOdd32, PackU8, Lookup8, PairSums, PackI16).

#if defined(QF_KERNELS_NVFP4_BF16_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QF_KERNELS_NVFP4_BF16_INL_H_
#undef QF_KERNELS_NVFP4_BF16_INL_H_
#else
#define QF_KERNELS_NVFP4_BF16_INL_H_
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "src/kernels/nvfp4_bounds.h"
#include "src/kernels/nvfp4_kernels.h"
#include "src/kernels/nvfp4_scale_codes.h"
#include "src/kernels/nvfp4_scales-inl.h"

HWY_BEFORE_NAMESPACE();
namespace qf {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2

namespace bf16_bounds {

using D16 = hn::Full256<int16_t>;
using DU32 = hn::Full256<uint32_t>;
using DF = hn::Full256<float>;
using D64 = hn::Full256<uint64_t>;
constexpr size_t kGroup = kNvfp4Group;

// Per 128-bit half: {a0, a2, b0, b2} and {a1, a3, b1, b3} of the 32-bit lanes.
HWY_INLINE void EvenOdd32(hn::Vec256<float> a, hn::Vec256<float> b, hn::Vec256<float>* even,
                          hn::Vec256<float>* odd) {
  *even = hn::Vec256<float>{_mm256_shuffle_ps(a.raw, b.raw, _MM_SHUFFLE(2, 0, 2, 0))};
  *odd = hn::Vec256<float>{_mm256_shuffle_ps(a.raw, b.raw, _MM_SHUFFLE(3, 1, 3, 1))};
}

// The packing of StoreCodes4 needs the lane order of these x86 instructions (Highway's
// ReorderWidenMulAccumulate / ReorderDemote2To leave theirs unspecified), so they are spelled out.
// Per 32-bit lane: a[2i] * b[2i] + a[2i + 1] * b[2i + 1] (vpmaddwd).
HWY_INLINE hn::Vec256<int32_t> PairSums(hn::Vec256<int16_t> a, hn::Vec256<int16_t> b) {
  return hn::Vec256<int32_t>{_mm256_madd_epi16(a.raw, b.raw)};
}
// Per 128-bit half: the 4 int32 of a then of b, saturated to int16 (vpackssdw).
HWY_INLINE hn::Vec256<int16_t> PackI16(hn::Vec256<int32_t> a, hn::Vec256<int32_t> b) {
  return hn::Vec256<int16_t>{_mm256_packs_epi32(a.raw, b.raw)};
}
// Per 128-bit half: the 8 int16 of a then of b, saturated to uint8 (vpackuswb).
HWY_INLINE hn::Vec256<uint8_t> PackU8(hn::Vec256<int16_t> a, hn::Vec256<int16_t> b) {
  return hn::Vec256<uint8_t>{_mm256_packus_epi16(a.raw, b.raw)};
}

// The transposing trees below leave the 8 results of a half group in the lane order
// {0, 2, 4, 6, 1, 3, 5, 7} (blocks 4m, 4m + 2 in the lower 128 bits, 4m + 1, 4m + 3 in the upper);
// kBlockOrder puts them back, as it does the 4-byte code groups of StoreCodes4.
HWY_ALIGN static constexpr int32_t kBlockOrder[8] = {0, 4, 1, 5, 2, 6, 3, 7};

template <class V>
HWY_INLINE V ToBlockOrder8(V v) {
  return hn::TableLookupLanes(v, hn::SetTableIndices(hn::DFromV<V>(), kBlockOrder));
}

// The max |x| bits of the 16 blocks at `in`, in the low 16 bits of 32-bit lanes (the upper 16
// bits unspecified), 8 blocks per vector in the trees' lane order: a transposing max tree over
// their |x| bits (BF16 magnitudes compare as int16), which also go to abs[16][16] for the codes.
HWY_INLINE void GroupAmaxLanes(const uint16_t* HWY_RESTRICT in, int16_t (*HWY_RESTRICT abs)[16],
                               hn::Vec256<uint32_t>* half) {
  const D16 d;
  const D64 d64;
  const DU32 du;
  const DF df;
  const auto abs_mask = hn::Set(d, 0x7FFF);
  const auto abs_bits = [&](size_t j) {
    const auto a =
        hn::And(hn::BitCast(d, hn::LoadU(hn::Full256<uint16_t>(), in + j * 16)), abs_mask);
    hn::Store(a, d, abs[j]);
    return a;
  };
  // w[m]: block 2m's 8 partial maxima in the lower half, block 2m + 1's in the upper (a blend
  // and one lane shuffle, as in Merge1).
  hn::Vec256<int16_t> w[8];
  for (size_t m = 0; m < 8; ++m) {
    const auto a0 = abs_bits(2 * m), a1 = abs_bits(2 * m + 1);
    w[m] = hn::Max(hn::ConcatUpperLower(d, a1, a0), hn::ConcatLowerUpper(d, a1, a0));
  }
  // z[m]: 4 partials each of blocks 4m, 4m + 2 (lower half) and 4m + 1, 4m + 3 (upper half).
  hn::Vec256<int16_t> z[4];
  for (size_t m = 0; m < 4; ++m) {
    const auto a = hn::BitCast(d64, w[2 * m]), b = hn::BitCast(d64, w[2 * m + 1]);
    z[m] = hn::Max(hn::BitCast(d, hn::InterleaveLower(d64, a, b)),
                   hn::BitCast(d, hn::InterleaveUpper(d64, a, b)));
  }
  for (size_t h = 0; h < 2; ++h) {
    // Two partials per 32-bit lane, then the max of the two halves in the low half.
    hn::Vec256<float> even, odd;
    EvenOdd32(hn::BitCast(df, z[2 * h]), hn::BitCast(df, z[2 * h + 1]), &even, &odd);
    const auto pairs = hn::BitCast(du, hn::Max(hn::BitCast(d, even), hn::BitCast(d, odd)));
    const auto maxima = hn::Max(hn::BitCast(d, pairs), hn::BitCast(d, hn::ShiftRight<16>(pairs)));
    half[h] = hn::BitCast(du, maxima);
  }
}

// mask ? yes : no per 16-bit lane (mask lanes all ones or zero). On AVX-512 targets one vpternlog
// that overwrites `no` (a bound just loaded) rather than the mask, which later compares still
// read: Highway's IfVecThenElse overwrites the mask, so the compiler copies it first.
HWY_INLINE hn::Vec256<int16_t> Select(hn::Vec256<int16_t> mask, hn::Vec256<int16_t> yes,
                                      hn::Vec256<int16_t> no) {
#if HWY_TARGET <= HWY_AVX3
  return hn::Vec256<int16_t>{_mm256_ternarylogic_epi32(no.raw, mask.raw, yes.raw, 0xB8)};
#else
  return hn::IfVecThenElse(mask, yes, no);
#endif
}

// E2M1 magnitude codes (0..7) of one block's |x| bits under a bounds row: the code is the number
// of bounds that |x| exceeds, and the bounds are sorted, so a binary search finds its three bits
// with three compares (bit 2: bound 3; bit 1: bound 5 or 1; bit 0: bound 6, 4, 2 or 0).
HWY_INLINE hn::Vec256<int16_t> MagnitudeCodes(hn::Vec256<int16_t> abs_bits,
                                              const Nvfp4DecisionTable::Row& row) {
  const D16 d;
  const auto bound = [&](int k) { return hn::Load(d, row.bound[k]); };
  const auto exceeds = [&](hn::Vec256<int16_t> b) {
    return hn::VecFromMask(d, hn::Gt(abs_bits, b));
  };
  const auto bit2 = exceeds(bound(3));
  const auto bit1 = exceeds(Select(bit2, bound(5), bound(1)));
  const auto low = Select(bit1, bound(2), bound(0));
  const auto high = Select(bit1, bound(6), bound(4));
  const auto bit0 = exceeds(Select(bit2, high, low));
  return hn::Or(hn::Or(hn::And(bit2, hn::Set(d, 4)), hn::And(bit1, hn::Set(d, 2))),
                hn::And(bit0, hn::Set(d, 1)));
}

#if HWY_TARGET <= HWY_AVX3
// The same codes from the row's bucket form (nvfp4_bounds.h): two saturating steps, one shift,
// one table lookup, an add and a shift: 6 operations against MagnitudeCodes' 11. The lookup is
// a two-table word permute (vpermi2w, AVX-512 BW + VL: three uops, two of them on port 5, which
// the shuffles of the loss tree and the packing also need), or on AVX3_DL targets a byte permute
// with zeroed odd bytes (vpermb, AVX-512 VBMI: one uop) of the byte entries, which takes one more
// And (a uop on any vector port). Kernel alone (512 KiB, one core, median of 6): max 11.54 ->
// 12.70 GB/s, four_over_six 4.11 -> 4.28 with vpermb.
// Without kClamp, |x| must lie within 1023 patterns of the row's base (the whole tensor's blocks
// do where Nvfp4ScaleCodeTable::within_bucket_window): one Min less.
template <bool kClamp>
HWY_INLINE hn::Vec256<int16_t> BucketCodes(hn::Vec256<int16_t> abs_bits,
                                           const Nvfp4DecisionTable::BucketRow& row) {
  const hn::Full256<uint16_t> du16;
  const auto above_base = hn::SaturatedSub(hn::BitCast(du16, abs_bits), hn::Load(du16, row.base));
  const auto rel = kClamp ? hn::Min(above_base, hn::Set(du16, 1023)) : above_base;
#if HWY_TARGET <= HWY_AVX3_DL
  const hn::Full256<uint8_t> d8;
  const hn::Vec256<uint16_t> entry{_mm256_maskz_permutexvar_epi8(
      0x55555555u, hn::ShiftRight<5>(rel).raw, hn::Load(d8, row.byte_entry).raw)};
  return hn::BitCast(D16(), hn::ShiftRight<5>(hn::Add(entry, hn::And(rel, hn::Set(du16, 31)))));
#else
  const hn::Vec256<uint16_t> entry{_mm256_permutex2var_epi16(hn::Load(du16, row.entry).raw,
                                                             hn::ShiftRight<5>(rel).raw,
                                                             hn::Load(du16, row.entry + 16).raw)};
  return hn::BitCast(D16(), hn::ShiftRight<11>(hn::Add(entry, rel)));
#endif
}
#endif

// The decision table's rows by byte offset from the table's start (RowOffsets: E4M3 scale code
// times the row size, plus the rows' offset), so that the kernels address a block's row with one
// base + index operand: the bucket form where kBuckets (AVX-512 targets,
// Nvfp4DecisionTable::has_buckets), else the rows of the binary search.
template <bool kBuckets>
using RowType =
    std::conditional_t<kBuckets, Nvfp4DecisionTable::BucketRow, Nvfp4DecisionTable::Row>;

template <bool kBuckets>
HWY_INLINE const RowType<kBuckets>& RowAt(const Nvfp4DecisionTable& table, uint32_t offset) {
  return *reinterpret_cast<const RowType<kBuckets>*>(reinterpret_cast<const char*>(&table) +
                                                     offset);
}

template <bool kBuckets, bool kClamp>
HWY_INLINE hn::Vec256<int16_t> CodesAt(hn::Vec256<int16_t> abs_bits,
                                       const Nvfp4DecisionTable& table, uint32_t offset) {
#if HWY_TARGET <= HWY_AVX3
  if constexpr (kBuckets) return BucketCodes<kClamp>(abs_bits, RowAt<true>(table, offset));
#else
  static_assert(!kBuckets, "the bucket form needs AVX-512 (vpermi2w or vpermb)");
#endif
  return MagnitudeCodes(abs_bits, RowAt<false>(table, offset));
}

// Row offsets of 16 E4M3 scale codes.
template <bool kBuckets>
HWY_INLINE void RowOffsets(const uint32_t* HWY_RESTRICT code, uint32_t* HWY_RESTRICT offset) {
  using Row = RowType<kBuckets>;
  static_assert(sizeof(Row) == 128 || sizeof(Row) == 256);
  constexpr int kShift = sizeof(Row) == 128 ? 7 : 8;
  const uint32_t first = static_cast<uint32_t>(kBuckets ? offsetof(Nvfp4DecisionTable, bucket_row)
                                                        : offsetof(Nvfp4DecisionTable, row));
  const DU32 du;
  for (size_t i = 0; i < kGroup; i += 8) {
    hn::Store(hn::Add(hn::ShiftLeft<kShift>(hn::Load(du, code + i)), hn::Set(du, first)), du,
              offset + i);
  }
}

// 8 where x is negative and not -0 (bits 0x8001..0xFFFF: x - 1 below -1 as int16), else 0.
HWY_INLINE hn::Vec256<int16_t> SignBits(hn::Vec256<int16_t> x) {
  const D16 d;
  const auto minus_one = hn::Set(d, -1);
  return hn::And(hn::VecFromMask(d, hn::Gt(minus_one, hn::Add(x, minus_one))), hn::Set(d, 8));
}

// Codes (0..7) with the sign bit 8 of x's negative elements other than -0. On AVX-512 targets a
// compare into a mask (x > 0x8000 unsigned) and a masked add: two operations against three.
HWY_INLINE hn::Vec256<int16_t> WithSign(hn::Vec256<int16_t> codes, hn::Vec256<int16_t> x) {
#if HWY_TARGET <= HWY_AVX3
  const __mmask16 negative = _mm256_cmpgt_epu16_mask(x.raw, _mm256_set1_epi16(-0x8000));
  return hn::Vec256<int16_t>{
      _mm256_mask_add_epi16(codes.raw, negative, codes.raw, _mm256_set1_epi16(8))};
#else
  return hn::Or(codes, SignBits(x));
#endif
}

HWY_INLINE hn::Vec256<int16_t> LoadBlock(const uint16_t* HWY_RESTRICT p) {
  return hn::BitCast(D16(), hn::LoadU(hn::Full256<uint16_t>(), p));
}

// Packs the codes (0..15 per int16 lane) of 4 blocks into 32 bytes, element 2k in the low nibble.
HWY_INLINE void StoreCodes4(const hn::Vec256<int16_t>* c, uint8_t* HWY_RESTRICT out) {
  const D16 d;
  const DU32 du;
  const hn::Full256<uint8_t> d8;
  const auto weights = hn::BitCast(d, hn::Set(du, 0x00100001u));  // c[2k] + 16 * c[2k + 1]
  // Per half: {b0 0-3, b1 0-3, b2 0-3, b3 0-3} then {b0 4-7, ...}: 4-byte groups to block order.
  const auto packed = PackU8(PackI16(PairSums(c[0], weights), PairSums(c[1], weights)),
                             PackI16(PairSums(c[2], weights), PairSums(c[3], weights)));
  hn::StoreU(hn::BitCast(d8, ToBlockOrder8(hn::BitCast(du, packed))), d8, out);
}

// Low bytes of the 16 u32 scale codes (or candidate indices) to `out`.
HWY_INLINE void StoreBytes16(const uint32_t* HWY_RESTRICT v, uint8_t* HWY_RESTRICT out) {
  const DU32 du;
  const hn::Full64<uint8_t> d8;
  hn::StoreU(hn::U8FromU32(hn::Load(du, v)), d8, out);
  hn::StoreU(hn::U8FromU32(hn::Load(du, v + 8)), d8, out + 8);
}

// One block's even and odd elements as float32, from its |x| bits (BF16 bits widened).
HWY_INLINE void AbsEvenOdd(hn::Vec256<int16_t> abs_bits, float* HWY_RESTRICT even,
                           float* HWY_RESTRICT odd) {
  const DU32 du;
  const DF df;
  const auto bits = hn::BitCast(du, abs_bits);
  hn::Store(hn::BitCast(df, hn::ShiftLeft<16>(bits)), df, even);
  hn::Store(hn::BitCast(df, hn::And(bits, hn::Set(du, 0xFFFF0000u))), df, odd);
}

// table[index & 7] per lane: vpermps reads the low 3 bits of each index, so the odd element's
// code in the upper 16 bits of an even lane needs no masking (TableLookupLanes asks for indices
// below 8, hence the intrinsic).
HWY_INLINE hn::Vec256<float> Lookup8(hn::Vec256<float> table, hn::Vec256<uint32_t> index) {
  return hn::Vec256<float>{_mm256_permutevar8x32_ps(table.raw, index.raw)};
}

// Squared errors (|x| - magnitude[code])^2 of one block, even and odd elements.
HWY_INLINE void SquaredErrors(const float* HWY_RESTRICT abs_even, const float* HWY_RESTRICT abs_odd,
                              hn::Vec256<int16_t> magnitude_codes,
                              const float* HWY_RESTRICT magnitude, hn::Vec256<float>* even,
                              hn::Vec256<float>* odd) {
  const DU32 du;
  const DF df;
  const auto codes = hn::BitCast(du, magnitude_codes);
  const auto table = hn::Load(df, magnitude);
  const auto e_even = hn::Sub(hn::Load(df, abs_even), Lookup8(table, codes));
  const auto e_odd = hn::Sub(hn::Load(df, abs_odd), Lookup8(table, hn::ShiftRight<16>(codes)));
  *even = hn::Mul(e_even, e_even);
  *odd = hn::Mul(e_odd, e_odd);
}

// The rest of the transposing tree over 8 blocks (lane i: element 2i plus element 2i + 1 of a
// block): lane i + 4, then i + 2, then i + 1, as ReferenceBlockLoss pairs them. Merge1 runs as
// soon as a pair of blocks is ready (fewer live vectors); Finish takes the 4 pair sums and
// returns the 8 block sums in the trees' lane order.
// Merge1 adds {a.lower, b.upper} (a blend, any port) and {a.upper, b.lower} (one lane shuffle):
// a.lower + a.upper and b.upper + b.lower, the same sums as with two shuffles since + commutes.
HWY_INLINE hn::Vec256<float> Merge1(hn::Vec256<float> a, hn::Vec256<float> b) {
  const DF df;
  return hn::Add(hn::ConcatUpperLower(df, b, a), hn::ConcatLowerUpper(df, b, a));
}

HWY_INLINE hn::Vec256<float> Finish(const hn::Vec256<float>* w) {
  const DF df;
  const D64 d64;
  hn::Vec256<float> z[2];
  for (int m = 0; m < 2; ++m) {
    const auto a = hn::BitCast(d64, w[2 * m]), b = hn::BitCast(d64, w[2 * m + 1]);
    z[m] = hn::Add(hn::BitCast(df, hn::InterleaveLower(d64, a, b)),
                   hn::BitCast(df, hn::InterleaveUpper(d64, a, b)));
  }
  hn::Vec256<float> even, odd;
  EvenOdd32(z[0], z[1], &even, &odd);
  return hn::Add(even, odd);
}

// What a group needs before its codes: the scale codes of the first candidates (with block
// amaxes as float32 for the others). Computed one group ahead, so that the chain from the loads
// to the scale codes (a table lookup, or two divisions) overlaps with the previous group's codes.
constexpr size_t kPlannedCandidates = 2;
struct GroupPlan {
  HWY_ALIGN int16_t abs_bits[kGroup][16];  // |x| bits of the blocks
  HWY_ALIGN float amax[kGroup];
  GroupScales scales[kPlannedCandidates];
  HWY_ALIGN uint32_t row_offset[kPlannedCandidates][kGroup];  // RowOffsets of the scales
};

HWY_INLINE float Candidate(const Nvfp4KernelParams& p, size_t k) {
  return p.dynamic_scales ? 1.0f : p.candidates[k];
}

template <bool kBuckets>
HWY_INLINE void PlanGroup(const uint16_t* HWY_RESTRICT in, const Nvfp4KernelParams& p,
                          size_t num_candidates, GroupPlan* plan) {
  const DU32 du;
  const DF df;
  hn::Vec256<uint32_t> half[2];
  GroupAmaxLanes(in, plan->abs_bits, half);
  const Nvfp4ScaleCodeTable* table = p.bf16_scale_codes;
  if (table != nullptr && num_candidates <= Nvfp4ScaleCodeTable::kMaxCandidates) {
    // One 32-bit gather at byte offsets 2a (vpgatherdd, scale 2) fetches both candidates' codes
    // (bytes 0 and 1; amaxes are at most max_bits <= 0x7F7F, so the bytes past an entry stay
    // inside the table).
    static_assert(
        Nvfp4ScaleCodeTable::kMaxCandidates == 2 && sizeof(Nvfp4ScaleCodeTable::code[0]) == 2,
        "one gather at stride 2 holds both candidates' codes");
    for (size_t h = 0; h < 2; ++h) {
      const auto bits = hn::And(half[h], hn::Set(du, 0xFFFFu));
      const auto entries = ToBlockOrder8(hn::Vec256<uint32_t>{
          _mm256_i32gather_epi32(reinterpret_cast<const int*>(table->code), bits.raw, 2)});
      hn::Store(hn::And(entries, hn::Set(du, 0xFFu)), du, plan->scales[0].code + 8 * h);
      if (num_candidates == 2) {
        hn::Store(hn::And(hn::ShiftRight<8>(entries), hn::Set(du, 0xFFu)), du,
                  plan->scales[1].code + 8 * h);
      }
    }
    for (size_t k = 0; k < num_candidates; ++k) {
      RowOffsets<kBuckets>(plan->scales[k].code, plan->row_offset[k]);
    }
    return;
  }
  for (size_t h = 0; h < 2; ++h) {
    hn::Store(ToBlockOrder8(hn::BitCast(df, hn::ShiftLeft<16>(half[h]))), df, plan->amax + 8 * h);
  }
  for (size_t k = 0; k < num_candidates && k < kPlannedCandidates; ++k) {
    ComputeGroupScales(df, plan->amax, p, Candidate(p, k), &plan->scales[k]);
    RowOffsets<kBuckets>(plan->scales[k].code, plan->row_offset[k]);
  }
}

// One group of 16 whole blocks: codes 128 bytes, scales 16, chosen 16 (or nullptr).
// kCandidates: the candidate count when fixed at compile time (1: max, 2: four_over_six), or 0.
template <size_t kCandidates, bool kBuckets, bool kClamp>
HWY_INLINE void QuantizeGroup(const uint16_t* HWY_RESTRICT in, const Nvfp4KernelParams& p,
                              size_t num_candidates, const GroupPlan& plan,
                              uint8_t* HWY_RESTRICT codes, uint8_t* HWY_RESTRICT scales,
                              uint8_t* HWY_RESTRICT chosen) {
  const D16 d;
  const DF df;
  const DU32 du;
  const Nvfp4DecisionTable& table = *p.bf16_table;
  if (kCandidates != 0) num_candidates = kCandidates;
  if (num_candidates == 1) {
    const GroupScales& group = plan.scales[0];
    for (size_t j0 = 0; j0 < kGroup; j0 += 4) {
      hn::Vec256<int16_t> c[4];
      for (size_t i = 0; i < 4; ++i) {
        const auto x = LoadBlock(in + (j0 + i) * 16);
        c[i] = WithSign(CodesAt<kBuckets, kClamp>(hn::Load(d, plan.abs_bits[j0 + i]), table,
                                                  plan.row_offset[0][j0 + i]),
                        x);
      }
      StoreCodes4(c, codes + j0 * 8);
    }
    StoreBytes16(group.code, scales);
    if (chosen != nullptr) std::memset(chosen, 0, kGroup);
    return;
  }
  // Candidate search. Each block has two slots for magnitude codes: bit j of `best_slot` says
  // which one holds block j's best candidate so far; the next candidate goes to the other one,
  // and a better candidate flips the bit (no data-dependent branches: which candidate wins is
  // a coin toss for four_over_six). |x| bits come from the plan, |x| as float32 is computed once
  // per group, the sign bits at the end.
  const int16_t(*abs_bits)[16] = plan.abs_bits;
  HWY_ALIGN float abs_even[kGroup][8], abs_odd[kGroup][8];
  for (size_t j = 0; j < kGroup; ++j) AbsEvenOdd(hn::Load(d, abs_bits[j]), abs_even[j], abs_odd[j]);
  HWY_ALIGN int16_t slots[2][kGroup][16];
  uint32_t best_slot = 0xFFFF;  // candidate 0 goes to slot 0 (and with two, candidate 1 to 1)
  HWY_ALIGN uint32_t best_scale[kGroup], best_index[kGroup];
  hn::Vec256<float> best_loss[2] = {hn::Zero(df), hn::Zero(df)};
  GroupScales unplanned;
  HWY_ALIGN uint32_t unplanned_offset[kGroup];
#pragma GCC unroll 2
  for (size_t k = 0; k < num_candidates; ++k) {
    if (k >= kPlannedCandidates) {
      ComputeGroupScales(df, plan.amax, p, Candidate(p, k), &unplanned);
      RowOffsets<kBuckets>(unplanned.code, unplanned_offset);
    }
    const GroupScales& group = k < kPlannedCandidates ? plan.scales[k] : unplanned;
    const uint32_t* row_offset = k < kPlannedCandidates ? plan.row_offset[k] : unplanned_offset;
    uint32_t better_bits = 0;
#pragma GCC unroll 2
    for (size_t h = 0; h < 2; ++h) {
      hn::Vec256<float> w[4];
#pragma GCC unroll 4
      for (size_t i = 0; i < 8; i += 2) {
        hn::Vec256<float> e2_even[2], e2_odd[2];
        for (size_t t = 0; t < 2; ++t) {
          const size_t j = 8 * h + i + t;
          const auto magnitude =
              CodesAt<kBuckets, kClamp>(hn::Load(d, abs_bits[j]), table, row_offset[j]);
          const uint32_t slot =
              kCandidates == 2 ? static_cast<uint32_t>(k) : ((best_slot >> j) & 1u) ^ 1u;
          hn::Store(magnitude, d, slots[slot][j]);
          SquaredErrors(abs_even[j], abs_odd[j], magnitude,
                        RowAt<kBuckets>(table, row_offset[j]).magnitude, &e2_even[t], &e2_odd[t]);
        }
        // The tree's first level, element 2i plus element 2i + 1, needs no shuffle here.
        w[i / 2] = Merge1(hn::Add(e2_even[0], e2_odd[0]), hn::Add(e2_even[1], e2_odd[1]));
      }
      const auto loss = ToBlockOrder8(Finish(w));
      // Strict <: ties keep the earlier candidate; the first one always enters.
      const auto better = k == 0 ? hn::FirstN(df, 8) : hn::Lt(loss, best_loss[h]);
      best_loss[h] = hn::IfThenElse(better, loss, best_loss[h]);
      const auto better_u = hn::RebindMask(du, better);
      const auto scale_v = hn::Load(du, group.code + 8 * h);
      const auto old_scale = k == 0 ? scale_v : hn::Load(du, best_scale + 8 * h);
      hn::Store(hn::IfThenElse(better_u, scale_v, old_scale), du, best_scale + 8 * h);
      const auto index_v = hn::Set(du, static_cast<uint32_t>(k));
      const auto old_index = k == 0 ? index_v : hn::Load(du, best_index + 8 * h);
      hn::Store(hn::IfThenElse(better_u, index_v, old_index), du, best_index + 8 * h);
      uint8_t bits[8] = {};
      hn::StoreMaskBits(df, better, bits);
      better_bits |= static_cast<uint32_t>(bits[0]) << (8 * h);
    }
    best_slot ^= better_bits;
  }
  for (size_t j0 = 0; j0 < kGroup; j0 += 4) {
    hn::Vec256<int16_t> c[4];
    for (size_t i = 0; i < 4; ++i) {
      const size_t j = j0 + i;
      c[i] = WithSign(hn::Load(d, slots[(best_slot >> j) & 1u][j]), LoadBlock(in + j * 16));
    }
    StoreCodes4(c, codes + j0 * 8);
  }
  StoreBytes16(best_scale, scales);
  if (chosen != nullptr) StoreBytes16(best_index, chosen);
}

// All blocks at `in`: whole groups, then the last partial group (QuantizePartialGroup).
template <size_t kCandidates, bool kBuckets, bool kClamp>
void QuantizeBlocks(const uint16_t* HWY_RESTRICT in, size_t num_blocks, const Nvfp4KernelParams& p,
                    size_t num_candidates, uint8_t* HWY_RESTRICT codes,
                    uint8_t* HWY_RESTRICT scales, uint8_t* HWY_RESTRICT chosen) {
  // Software prefetch of the input 6 groups (3 KiB) ahead: the kernel streams from DRAM, and the
  // hardware prefetcher alone left it waiting (1 GiB, 2 threads: 144 -> 124 ms per call; 2, 6
  // and 16 groups ahead measured, 6 the best).
  constexpr size_t kPrefetchGroups = 6;
  if (kCandidates != 0) num_candidates = kCandidates;  // a constant for the inlined plans
  const size_t num_groups = num_blocks / kGroup;
  GroupPlan plans[2];
  if (num_groups > 0) PlanGroup<kBuckets>(in, p, num_candidates, &plans[0]);
  for (size_t g = 0; g < num_groups; ++g) {
    if (g + kPrefetchGroups < num_groups) {
      const uint16_t* ahead = in + (g + kPrefetchGroups) * kGroup * 16;
      for (size_t line = 0; line < 8; ++line) hwy::Prefetch(ahead + line * 32);
    }
    if (g + 1 < num_groups) {
      PlanGroup<kBuckets>(in + (g + 1) * kGroup * 16, p, num_candidates, &plans[(g + 1) & 1]);
    }
    const size_t b0 = g * kGroup;
    QuantizeGroup<kCandidates, kBuckets, kClamp>(in + b0 * 16, p, num_candidates, plans[g & 1],
                                                 codes + b0 * 8, scales + b0,
                                                 chosen != nullptr ? chosen + b0 : nullptr);
  }
  const size_t b0 = num_groups * kGroup;
  if (b0 == num_blocks) return;
  QuantizePartialGroup(in + b0 * 16, num_blocks - b0, codes + b0 * 8, scales + b0,
                       chosen != nullptr ? chosen + b0 : nullptr,
                       [&](const uint16_t* group_in, uint8_t* group_codes, uint8_t* group_scales,
                           uint8_t* group_chosen) {
                         PlanGroup<kBuckets>(group_in, p, num_candidates, &plans[0]);
                         QuantizeGroup<kCandidates, kBuckets, kClamp>(
                             group_in, p, num_candidates, plans[0], group_codes, group_scales,
                             group_chosen);
                       });
}

}  // namespace bf16_bounds

// The division-free kernels on a BF16 table's rows: the bucket form where kBuckets (AVX-512
// targets with Nvfp4DecisionTable::has_buckets), else the binary search; the bucket form without
// its clamp where !kClamp (one or two candidates whose scale-code table proves every block within
// the window). nvfp4-inl.h's BF16PathFor picks one.
template <bool kBuckets, bool kClamp = true>
void QuantizeNvfp4BlocksBF16Rows(const uint16_t* HWY_RESTRICT in, size_t num_blocks,
                                 const Nvfp4KernelParams& p, uint8_t* HWY_RESTRICT codes,
                                 uint8_t* HWY_RESTRICT scales, uint8_t* HWY_RESTRICT chosen) {
  static_assert(kBuckets || kClamp, "the binary search has no clamp");
  const size_t num_candidates = p.dynamic_scales ? 1 : p.candidates.size();
  using bf16_bounds::QuantizeBlocks;
  switch (num_candidates) {
    case 1:
      return QuantizeBlocks<1, kBuckets, kClamp>(in, num_blocks, p, 1, codes, scales, chosen);
    case 2:
      return QuantizeBlocks<2, kBuckets, kClamp>(in, num_blocks, p, 2, codes, scales, chosen);
    default:  // more candidates than a scale-code table holds: never without the clamp
      return QuantizeBlocks<0, kBuckets, true>(in, num_blocks, p, num_candidates, codes, scales,
                                               chosen);
  }
}

#endif  // HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2

}  // namespace HWY_NAMESPACE
}  // namespace qf
HWY_AFTER_NAMESPACE();

#endif  // QF_KERNELS_NVFP4_BF16_INL_H_
