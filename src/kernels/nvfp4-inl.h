// Highway bodies of nvfp4_kernels.h, included once per target by nvfp4_kernels.cc.
//
// Blocks are processed in groups of 16 (a fixed size, so every target does the same operations
// on the same values):
//   1. the amax of each block (one 16-lane vector on AVX3, two on AVX2, four on SSE4, sixteen on
//      SCALAR; then a lane max);
//   2. per candidate, the block-scale formula vectorized across the group's 16 blocks, E4M3
//      rounding done with integer arithmetic on the float32 bits (RoundE4M3);
//   3. per block, x / (s * g) with an exact Div, E2M1 rounding on the bits (EncodeE2M1), nibble
//      packing with a u64 shift-or and TruncateTo, and, when there are candidates to compare, the
//      squared error summed in the tree order of ReferenceBlockLoss: neighbouring elements first
//      (even plus odd lanes), then vector pairs, then lower plus upper half within a vector.
// All arithmetic is IEEE float32 with each operation rounded on its own (-ffp-contract=off; Mul
// then Add, never MulAdd), so every target equals the scalar reference bit for bit.
// BF16 tensors with whole blocks and a global scale in the exact regime of nvfp4_bounds.h take
// the division-free bodies of nvfp4_bf16-inl.h instead on the AVX2 and AVX-512 targets.

#if defined(QF_KERNELS_NVFP4_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QF_KERNELS_NVFP4_INL_H_
#undef QF_KERNELS_NVFP4_INL_H_
#else
#define QF_KERNELS_NVFP4_INL_H_
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "hwy/highway.h"
#include "src/kernels/nvfp4_bf16-inl.h"
#include "src/kernels/nvfp4_bounds.h"
#include "src/kernels/nvfp4_kernels.h"
#include "src/kernels/nvfp4_scales-inl.h"

HWY_BEFORE_NAMESPACE();
namespace qf {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using Nvfp4DF = hn::CappedTag<float, kNvfp4Block>;

// One vector of a block as float32: F32 loads, BF16 widens exactly (bits << 16).
template <class DF>
HWY_INLINE hn::Vec<DF> LoadF32(DF df, const float* HWY_RESTRICT p) {
  return hn::LoadU(df, p);
}
template <class DF>
HWY_INLINE hn::Vec<DF> LoadF32(DF df, const uint16_t* HWY_RESTRICT p) {
  const hn::RebindToUnsigned<DF> du;
  const hn::Rebind<uint16_t, DF> du16;
  return hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(du, hn::LoadU(du16, p))));
}

// E2M1 of q with qf::EncodeE2M1's rule (ties to the even code, saturation at 6, sign bit q < 0),
// which is IEEE round-to-nearest-even to one mantissa bit: for |q| >= 1 round the float32
// mantissa to 1 bit and clamp the bits at those of 6.0 (unsigned, so Inf and NaN clamp too); the
// code is then (bits >> 22) - 252. For |q| < 1, |q| + 2^22 rounds to a multiple of 0.5 (the ulp of
// 2^22): code = ulp count (0, 1 or 2). Returns the code (0..15) and *magnitude = |E2M1 value|.
template <class DF>
HWY_INLINE hn::Vec<hn::RebindToUnsigned<DF>> EncodeE2M1(DF df, hn::Vec<DF> q,
                                                       hn::Vec<DF>* magnitude) {
  const hn::RebindToUnsigned<DF> du;
  const auto a = hn::Abs(q);
  const auto u = hn::BitCast(du, a);
  const auto lsb = hn::And(hn::ShiftRight<22>(u), hn::Set(du, 1u));
  const auto rounded = hn::Add(hn::Add(u, hn::Set(du, 0x1FFFFFu)), lsb);  // low 22 bits: don't care
  // (bits >> 22) of 6.0f is 259; clamping after the shift saves clearing the low bits.
  const auto code_normal =
      hn::Sub(hn::Min(hn::ShiftRight<22>(rounded), hn::Set(du, 259u)), hn::Set(du, 252u));
  const auto r = hn::Min(hn::And(rounded, hn::Set(du, 0xFFC00000u)), hn::Set(du, 0x40C00000u));
  const auto magic = hn::Set(df, 4194304.0f);  // 2^22
  const auto t = hn::Add(a, magic);
  const auto code_small = hn::Sub(hn::BitCast(du, t), hn::BitCast(du, magic));
  const auto is_small = hn::Lt(a, hn::Set(df, 1.0f));
  *magnitude = hn::IfThenElse(is_small, hn::Sub(t, magic), hn::BitCast(df, r));
  const auto code = hn::IfThenElse(hn::RebindMask(du, is_small), code_small, code_normal);
  const auto negative = hn::RebindMask(du, hn::Lt(q, hn::Zero(df)));
  return hn::IfThenElse(negative, hn::Or(code, hn::Set(du, 8u)), code);
}

// Packs the u32 codes of one vector two per byte (even element in the low nibble): as u64
// lanes each pair is c0 | c1 << 32, and (x | x >> 28) has c0 | c1 << 4 in its low byte.
#if HWY_TARGET != HWY_SCALAR
template <class DU>
HWY_INLINE void StorePackedCodes(DU du, hn::Vec<DU> codes, uint8_t* HWY_RESTRICT out) {
  const hn::Repartition<uint64_t, DU> d64;
  const hn::Rebind<uint8_t, decltype(d64)> d8;
  (void)du;
  const auto x = hn::BitCast(d64, codes);
  hn::StoreU(hn::TruncateTo(d8, hn::Or(x, hn::ShiftRight<28>(x))), d8, out);
}
#endif

// Sum of the lanes in the fixed tree order: lane i plus lane i + N/2, repeated.
template <class D>
HWY_INLINE float SumTree(D d, hn::Vec<D> v) {
#if HWY_TARGET == HWY_SCALAR
  (void)d;
  return hn::GetLane(v);
#else
  if constexpr (hn::MaxLanes(D()) == 1) {
    (void)d;
    return hn::GetLane(v);
  } else {
    const hn::Half<D> dh;
    return SumTree(dh, hn::Add(hn::LowerHalf(dh, v), hn::UpperHalf(dh, v)));
  }
#endif
}

// Quantizes one block under divisor d = s * g. With kLoss, returns the block loss
// (ReferenceBlockLoss order) using dequantized values (q * s) * g.
template <bool kLoss, class DF, typename T>
HWY_INLINE float EncodeBlock(DF df, const T* HWY_RESTRICT in, float divisor, float s, float g,
                             uint8_t* HWY_RESTRICT codes) {
  const hn::RebindToUnsigned<DF> du;
  constexpr size_t kLanes = hn::MaxLanes(DF());
  constexpr size_t kVecs = kNvfp4Block / kLanes;
  const auto vd = hn::Set(df, divisor);
  hn::Vec<DF> err[kVecs];
#if HWY_TARGET == HWY_SCALAR
  uint8_t scalar_codes[kNvfp4Block];
  (void)du;
#endif
  for (size_t k = 0; k < kVecs; ++k) {
    const auto x = LoadF32(df, in + k * kLanes);
    const auto q = hn::Div(x, vd);
    hn::Vec<DF> magnitude;
    const auto code = EncodeE2M1(df, q, &magnitude);
#if HWY_TARGET == HWY_SCALAR
    scalar_codes[k] = static_cast<uint8_t>(hn::GetLane(code));
#else
    StorePackedCodes(du, code, codes + k * kLanes / 2);
#endif
    if constexpr (kLoss) {
      const auto value = hn::IfThenElse(hn::Lt(q, hn::Zero(df)), hn::Neg(magnitude), magnitude);
      const auto deq = hn::Mul(hn::Mul(value, hn::Set(df, s)), hn::Set(df, g));
      const auto e = hn::Sub(x, deq);
      err[k] = hn::Mul(e, e);
    }
  }
#if HWY_TARGET == HWY_SCALAR
  for (size_t k = 0; k < kNvfp4Block / 2; ++k) {
    codes[k] = static_cast<uint8_t>(scalar_codes[2 * k] | (scalar_codes[2 * k + 1] << 4));
  }
#endif
  if constexpr (!kLoss) {
    return 0.0f;
  } else {
    // The tree's first level adds neighbours, e[2i] + e[2i + 1]: neighbouring vectors on SCALAR,
    // else the even and the odd lanes of a vector pair (of the one vector with 16 lanes).
    size_t count = kVecs / 2;
#if HWY_TARGET == HWY_SCALAR
    for (size_t k = 0; k < count; ++k) err[k] = hn::Add(err[2 * k], err[2 * k + 1]);
#else
    if constexpr (kVecs == 1) {
      const hn::Half<DF> dh;
      const auto pairs =
          hn::Add(hn::ConcatEven(df, err[0], err[0]), hn::ConcatOdd(df, err[0], err[0]));
      return SumTree(dh, hn::LowerHalf(dh, pairs));
    } else {
      for (size_t k = 0; k < count; ++k) {
        err[k] = hn::Add(hn::ConcatEven(df, err[2 * k + 1], err[2 * k]),
                         hn::ConcatOdd(df, err[2 * k + 1], err[2 * k]));
      }
    }
#endif
    // Then vector pairs (pair sums i and i + 4 where a vector holds fewer than 8), then halves.
    for (; count > 1; count /= 2) {
      for (size_t k = 0; k < count / 2; ++k) err[k] = hn::Add(err[k], err[k + count / 2]);
    }
    return SumTree(df, err[0]);
  }
}

template <class DF, typename T>
HWY_INLINE float BlockAmax(DF df, const T* HWY_RESTRICT in) {
  constexpr size_t kLanes = hn::MaxLanes(DF());
  auto m = hn::Abs(LoadF32(df, in));
  for (size_t k = 1; k < kNvfp4Block / kLanes; ++k) {
    m = hn::Max(m, hn::Abs(LoadF32(df, in + k * kLanes)));
  }
  return hn::GetLane(hn::MaxOfLanes(df, m));
}

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
// AVX-512 path: one block per 16-lane vector, and the per-block reductions (amax, loss) of a whole
// group done as one transposing tree of 128-bit-chunk and in-chunk shuffles instead of a lane
// reduction per block (about 2 shuffles per block instead of 5). The reduction tree is exactly
// ReferenceBlockLoss's (level 1 adds elements 2i and 2i + 1, level 2 pairs i and i + 4, level 3
// i and i + 2, level 4 the last pair), so sums stay bit-identical; max is exact in any order.
//
// Written in Highway ops, each the one instruction the tree needs, except level 2: it pairs the
// 128-bit chunks 0 with 1 and 2 with 3 of two vectors at once (vshuff32x4 with the even and the
// odd chunks), and Highway 1.0.3 has no two-source chunk shuffle. The Highway emulation (combine
// each vector with its chunk-swapped self, TableLookupLanes, then OddEvenBlocks, with ToBlockOrder
// adjusted) gives the same bytes with two more operations per pair of vectors; measured, kernel
// alone, BF16 512 KiB, 1 thread, best of 100, 5 runs each: max 4.75-5.26 GB/s against 4.87-5.34
// (1-3% slower in every run), four_over_six 1.96-2.04 against 1.98-2.05. So that one shuffle
// stays an intrinsic, in EvenOddChunks.

using DF512 = hn::Full512<float>;

template <bool kMax>
HWY_INLINE hn::Vec512<float> CombinePairs(hn::Vec512<float> a, hn::Vec512<float> b) {
  return kMax ? hn::Max(a, b) : hn::Add(a, b);
}

// The E2M1 value of each code (0..15, bit 3 the sign; 0x8 is -0.0), exactly DecodeE2M1: one
// table lookup instead of rebuilding the value from the rounding.
HWY_INLINE hn::Vec512<float> DecodeE2M1AVX3(hn::Vec512<uint32_t> code) {
  const DF512 df;
  HWY_ALIGN static constexpr float kTable[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,
                                                 4.0f,  6.0f,  -0.0f, -0.5f, -1.0f, -1.5f,
                                                 -2.0f, -3.0f, -4.0f, -6.0f};
  return hn::TableLookupLanes(hn::Load(df, kTable), hn::IndicesFromVec(df, code));
}

// {a.chunk0, a.chunk2, b.chunk0, b.chunk2} and {a.chunk1, a.chunk3, b.chunk1, b.chunk3}.
HWY_INLINE void EvenOddChunks(hn::Vec512<float> a, hn::Vec512<float> b, hn::Vec512<float>* even,
                              hn::Vec512<float>* odd) {
  *even = hn::Vec512<float>{_mm512_shuffle_f32x4(a.raw, b.raw, _MM_SHUFFLE(2, 0, 2, 0))};
  *odd = hn::Vec512<float>{_mm512_shuffle_f32x4(a.raw, b.raw, _MM_SHUFFLE(3, 1, 3, 1))};
}

// w[m] holds blocks 2m (lanes 0-7) and 2m + 1 (lanes 8-15), each as 8 partial results whose
// pairing continues the tree: lane i with lane i + 4, then i with i + 2, then the last pair.
// Returns the 16 block results in the tree's lane order (lane 4c + k = block c + 4k); the
// caller restores block order with ToBlockOrder (after combining two such results if needed).
template <bool kMax>
HWY_INLINE hn::Vec512<float> ReducePairs8(const hn::Vec512<float>* w) {
  const DF512 df;
  const hn::Repartition<uint32_t, DF512> du;
  const hn::Repartition<uint64_t, DF512> d64;
  hn::Vec512<float> z[4], t[2];
  // Lane i + lane i + 4: z[m] holds blocks 4m .. 4m + 3, a chunk each.
  for (int m = 0; m < 4; ++m) {
    hn::Vec512<float> even, odd;
    EvenOddChunks(w[2 * m], w[2 * m + 1], &even, &odd);
    z[m] = CombinePairs<kMax>(even, odd);
  }
  // Lane i + lane i + 2 within each chunk: per chunk {a0, b0, a1, b1} + {a2, b2, a3, b3}.
  for (int m = 0; m < 2; ++m) {
    const auto a = hn::BitCast(du, z[2 * m]), b = hn::BitCast(du, z[2 * m + 1]);
    t[m] = CombinePairs<kMax>(hn::BitCast(df, hn::InterleaveLower(du, a, b)),
                              hn::BitCast(df, hn::InterleaveUpper(du, a, b)));
  }
  // The last pair: per chunk t0 = {A0, B0, A1, B1}, t1 = {C0, D0, C1, D1} as u64 halves
  // {A0 B0 | C0 D0} + {A1 B1 | C1 D1}: the same block order as a two-source even/odd shuffle.
  const auto a = hn::BitCast(d64, t[0]), b = hn::BitCast(d64, t[1]);
  return CombinePairs<kMax>(hn::BitCast(df, hn::InterleaveLower(d64, a, b)),
                            hn::BitCast(df, hn::InterleaveUpper(d64, a, b)));
}

HWY_INLINE hn::Vec512<float> ToBlockOrder(hn::Vec512<float> r) {
  const DF512 df;
  HWY_ALIGN static constexpr int32_t kBlockOrder[16] = {0, 4, 8,  12, 1, 5, 9,  13,
                                                        2, 6, 10, 14, 3, 7, 11, 15};
  return hn::TableLookupLanes(r, hn::SetTableIndices(df, kBlockOrder));
}

// v[j] holds the 16 values of block j; returns lane j = max (kMax) or tree sum of block j.
template <bool kMax>
HWY_INLINE hn::Vec512<float> ReduceBlocks16(const hn::Vec512<float>* v) {
  const DF512 df;
  hn::Vec512<float> w[8];
  for (int m = 0; m < 8; ++m) {  // even with odd lanes, two blocks at once: e[2i] + e[2i + 1]
    w[m] = CombinePairs<kMax>(hn::ConcatEven(df, v[2 * m + 1], v[2 * m]),
                              hn::ConcatOdd(df, v[2 * m + 1], v[2 * m]));
  }
  return ToBlockOrder(ReducePairs8<kMax>(w));
}

// One block (one vector): E2M1 codes packed into 8 bytes at `codes`; with kLoss also the
// squared errors of the block in *squared_error.
template <bool kLoss>
HWY_INLINE void EncodeBlockAVX3(hn::Vec512<float> x, float divisor, float s, float g,
                                uint8_t* HWY_RESTRICT codes, hn::Vec512<float>* squared_error) {
  const DF512 df;
  const hn::Full512<uint64_t> d64;
  const hn::Rebind<uint8_t, decltype(d64)> d8;
  const auto q = hn::Div(x, hn::Set(df, divisor));
  hn::Vec512<float> magnitude;  // unused: the value comes from the code
  const auto code32 = EncodeE2M1(df, q, &magnitude);
  const auto code = hn::BitCast(d64, code32);
  hn::StoreU(hn::TruncateTo(d8, hn::Or(code, hn::ShiftRight<28>(code))), d8, codes);
  if constexpr (kLoss) {
    const auto value = DecodeE2M1AVX3(code32);
    const auto e = hn::Sub(x, hn::Mul(hn::Mul(value, hn::Set(df, s)), hn::Set(df, g)));
    *squared_error = hn::Mul(e, e);
  }
}

// The low byte of each of 16 u32 lanes, by vpmovdb (AVX-512F): Highway 1.0.3's TruncateTo for
// this shape is wrong on AVX3_DL (a 32-bit lane permute where it means a byte permute). Its
// 256-bit TruncateTo overloads to u8 / u16 on AVX3_DL look wrong too (index and table swapped in
// x86_256-inl.h); none is used here, and any new use needs a test on the AVX3_DL target.
HWY_INLINE hn::Vec128<uint8_t> LowBytes(hn::Vec512<uint32_t> v) {
  return hn::Vec128<uint8_t>{_mm512_cvtepi32_epi8(v.raw)};
}

// Stores the low byte of each of 16 u32 lanes (block scale codes, candidate indices).
HWY_INLINE void StoreLowBytes(hn::Vec512<uint32_t> v, uint8_t* HWY_RESTRICT out) {
  hn::StoreU(LowBytes(v), hn::Full128<uint8_t>(), out);
}

// The running best of a group's 16 blocks over the candidates: loss, E4M3 scale code, candidate
// index and the 8 code bytes of each block (one u64 lane per block, blocks 0-7 in lo, 8-15 in
// hi). Strict <: ties keep the earlier candidate (four_over_six: M=6); the first one always
// enters. Shared by the F32 and BF16 groups, whose candidate loops differ only in how they
// encode a candidate.
class GroupBestAVX3 {
 public:
  // Spelled out (not default member initializers) so that it is compiled for this target.
  HWY_INLINE GroupBestAVX3()
      : loss_(hn::Zero(hn::Full512<float>())),
        scale_(hn::Zero(hn::Full512<uint32_t>())),
        index_(hn::Zero(hn::Full512<uint32_t>())),
        lo_(hn::Zero(hn::Full512<uint64_t>())),
        hi_(hn::Zero(hn::Full512<uint64_t>())) {}

  // `loss`: lane j = loss of block j; `scale_codes` and `codes` (128 bytes): the candidate's.
  HWY_INLINE void Update(size_t k, hn::Vec512<float> loss,
                         const uint32_t* HWY_RESTRICT scale_codes,
                         const uint8_t* HWY_RESTRICT codes) {
    const hn::Full512<float> df;
    const hn::Full512<uint32_t> du;
    const hn::Full512<uint64_t> d64;
    const hn::Full512<uint8_t> d8;
    const auto better = k == 0 ? hn::FirstN(df, kNvfp4Group) : hn::Lt(loss, loss_);
    uint8_t bits[8] = {};
    hn::StoreMaskBits(df, better, bits);  // bit j = block j
    const auto better_u = hn::RebindMask(du, better);
    loss_ = hn::IfThenElse(better, loss, loss_);
    scale_ = hn::IfThenElse(better_u, hn::LoadU(du, scale_codes), scale_);
    index_ = hn::IfThenElse(better_u, hn::Set(du, static_cast<uint32_t>(k)), index_);
    lo_ = hn::IfThenElse(hn::LoadMaskBits(d64, bits), hn::BitCast(d64, hn::LoadU(d8, codes)), lo_);
    hi_ = hn::IfThenElse(hn::LoadMaskBits(d64, bits + 1),
                         hn::BitCast(d64, hn::LoadU(d8, codes + 64)), hi_);
  }

  HWY_INLINE void Store(uint8_t* HWY_RESTRICT codes, uint8_t* HWY_RESTRICT scales,
                        uint8_t* HWY_RESTRICT chosen) const {
    const hn::Full512<uint8_t> d8;
    hn::StoreU(hn::BitCast(d8, lo_), d8, codes);
    hn::StoreU(hn::BitCast(d8, hi_), d8, codes + 64);
    StoreLowBytes(scale_, scales);
    if (chosen != nullptr) StoreLowBytes(index_, chosen);
  }

 private:
  hn::Vec512<float> loss_;
  hn::Vec512<uint32_t> scale_, index_;
  hn::Vec512<uint64_t> lo_, hi_;
};

// 16 whole blocks at `in`: codes 128 bytes, scales 16, chosen 16 (or nullptr).
template <typename T>
HWY_INLINE void QuantizeGroupAVX3(const T* HWY_RESTRICT in, const Nvfp4KernelParams& p,
                                  size_t num_candidates, uint8_t* HWY_RESTRICT codes,
                                  uint8_t* HWY_RESTRICT scales, uint8_t* HWY_RESTRICT chosen) {
  const DF512 df;
  const hn::Full512<uint32_t> du;
  hn::Vec512<float> x[kNvfp4Group], v[kNvfp4Group];
  for (size_t j = 0; j < kNvfp4Group; ++j) {
    x[j] = LoadF32(df, in + j * kNvfp4Block);
    v[j] = hn::Abs(x[j]);
  }
  HWY_ALIGN float amax[kNvfp4Group];
  hn::Store(ReduceBlocks16<true>(v), df, amax);
  GroupScales group;
  if (num_candidates == 1) {
    ComputeGroupScales(df, amax, p, p.dynamic_scales ? 1.0f : p.candidates[0], &group);
    for (size_t j = 0; j < kNvfp4Group; ++j) {
      EncodeBlockAVX3<false>(x[j], group.divisor[j], group.value[j], p.global_scale,
                             codes + j * 8, nullptr);
    }
    StoreLowBytes(hn::Load(du, group.code), scales);
    if (chosen != nullptr) std::memset(chosen, 0, kNvfp4Group);
    return;
  }
  GroupBestAVX3 best;
  HWY_ALIGN uint8_t candidate_codes[kNvfp4Group * 8];
  for (size_t k = 0; k < num_candidates; ++k) {
    ComputeGroupScales(df, amax, p, p.candidates[k], &group);
    for (size_t j = 0; j < kNvfp4Group; ++j) {  // v[j] becomes block j's squared errors
      EncodeBlockAVX3<true>(x[j], group.divisor[j], group.value[j], p.global_scale,
                            candidate_codes + j * 8, &v[j]);
    }
    best.Update(k, ReduceBlocks16<false>(v), group.code, candidate_codes);
  }
  best.Store(codes, scales, chosen);
}

// BF16 groups: one 512-bit load holds two blocks; (bits << 16) gives their even-indexed elements
// and (bits & 0xFFFF0000) their odd ones, already as float32, without a lane shuffle. The code of
// element 2k and 2k + 1 then sit in the same u32 lane, so packing is code_even | code_odd << 4 and
// one truncating store of 16 bytes (block 2m, then 2m + 1). Losses: the tree's first level adds
// the even and the odd vector as they are (element 2i plus element 2i + 1), then ReducePairs8.
HWY_INLINE void QuantizeGroupAVX3(const uint16_t* HWY_RESTRICT in, const Nvfp4KernelParams& p,
                                  size_t num_candidates, uint8_t* HWY_RESTRICT codes,
                                  uint8_t* HWY_RESTRICT scales, uint8_t* HWY_RESTRICT chosen) {
  const DF512 df;
  const hn::Full512<uint32_t> du;
  const hn::Rebind<uint8_t, decltype(du)> d8;
  constexpr size_t kPairs = kNvfp4Group / 2;
  hn::Vec512<float> even[kPairs], odd[kPairs], w[kPairs];
  const auto high_half = hn::Set(du, 0xFFFF0000u);
  for (size_t m = 0; m < kPairs; ++m) {
    const auto bits = hn::LoadU(du, reinterpret_cast<const uint32_t*>(in) + m * kNvfp4Block);
    even[m] = hn::BitCast(df, hn::ShiftLeft<16>(bits));
    odd[m] = hn::BitCast(df, hn::And(bits, high_half));
    w[m] = hn::Max(hn::Abs(even[m]), hn::Abs(odd[m]));
  }
  HWY_ALIGN float amax[kNvfp4Group];
  hn::Store(ToBlockOrder(ReducePairs8<true>(w)), df, amax);
  GroupScales group;
  const auto pair_lanes = hn::ShiftRight<3>(hn::Iota(du, 0));  // 0 (lanes 0-7), 1 (lanes 8-15)
  const auto g = hn::Set(df, p.global_scale);
  // Codes of pair m under the current candidate (16 bytes at `out`); with `loss` also the
  // squared errors.
  const auto encode_pair = [&](size_t m, bool loss, uint8_t* HWY_RESTRICT out,
                               hn::Vec512<float>* e2_even, hn::Vec512<float>* e2_odd) {
    const auto lanes =
        hn::IndicesFromVec(df, hn::Add(pair_lanes, hn::Set(du, static_cast<uint32_t>(2 * m))));
    const auto divisor = hn::TableLookupLanes(hn::Load(df, group.divisor), lanes);
    const auto q_even = hn::Div(even[m], divisor);
    const auto q_odd = hn::Div(odd[m], divisor);
    hn::Vec512<float> mag_even, mag_odd;
    const auto code_even = EncodeE2M1(df, q_even, &mag_even);
    const auto code_odd = EncodeE2M1(df, q_odd, &mag_odd);
    if (loss) {
      const auto s = hn::TableLookupLanes(hn::Load(df, group.value), lanes);
      const auto v_even = DecodeE2M1AVX3(code_even);
      const auto v_odd = DecodeE2M1AVX3(code_odd);
      const auto err_even = hn::Sub(even[m], hn::Mul(hn::Mul(v_even, s), g));
      const auto err_odd = hn::Sub(odd[m], hn::Mul(hn::Mul(v_odd, s), g));
      *e2_even = hn::Mul(err_even, err_even);
      *e2_odd = hn::Mul(err_odd, err_odd);
    }
    hn::StoreU(LowBytes(hn::Or(code_even, hn::ShiftLeft<4>(code_odd))), d8, out);
  };
  if (num_candidates == 1) {
    ComputeGroupScales(df, amax, p, p.dynamic_scales ? 1.0f : p.candidates[0], &group);
    for (size_t m = 0; m < kPairs; ++m) encode_pair(m, false, codes + m * 16, nullptr, nullptr);
    StoreLowBytes(hn::Load(du, group.code), scales);
    if (chosen != nullptr) std::memset(chosen, 0, kNvfp4Group);
    return;
  }
  GroupBestAVX3 best;
  HWY_ALIGN uint8_t candidate_codes[kNvfp4Group * 8];
  for (size_t k = 0; k < num_candidates; ++k) {
    ComputeGroupScales(df, amax, p, p.candidates[k], &group);
    hn::Vec512<float> pair_sums[kPairs];
    for (size_t m = 0; m < kPairs; ++m) {
      hn::Vec512<float> e2_even, e2_odd;
      encode_pair(m, true, candidate_codes + m * 16, &e2_even, &e2_odd);
      pair_sums[m] = hn::Add(e2_even, e2_odd);  // the tree's first level: e[2i] + e[2i + 1]
    }
    best.Update(k, ToBlockOrder(ReducePairs8<false>(pair_sums)), group.code, candidate_codes);
  }
  best.Store(codes, scales, chosen);
}

template <typename T>
void QuantizeNvfp4Blocks(const T* HWY_RESTRICT in, size_t num_blocks,
                         const Nvfp4KernelParams& p, uint8_t* HWY_RESTRICT codes,
                         uint8_t* HWY_RESTRICT scales, uint8_t* HWY_RESTRICT chosen) {
  const size_t num_candidates = p.dynamic_scales ? 1 : p.candidates.size();
  size_t b0 = 0;
  for (; b0 + kNvfp4Group <= num_blocks; b0 += kNvfp4Group) {
    QuantizeGroupAVX3(in + b0 * kNvfp4Block, p, num_candidates, codes + b0 * 8, scales + b0,
                      chosen != nullptr ? chosen + b0 : nullptr);
  }
  if (b0 == num_blocks) return;
  QuantizePartialGroup(in + b0 * kNvfp4Block, num_blocks - b0, codes + b0 * 8, scales + b0,
                       chosen != nullptr ? chosen + b0 : nullptr,
                       [&](const T* group_in, uint8_t* group_codes, uint8_t* group_scales,
                           uint8_t* group_chosen) {
                         QuantizeGroupAVX3(group_in, p, num_candidates, group_codes,
                                           group_scales, group_chosen);
                       });
}

#else  // !(HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3)

template <typename T>
void QuantizeNvfp4Blocks(const T* HWY_RESTRICT in, size_t num_blocks,
                         const Nvfp4KernelParams& p, uint8_t* HWY_RESTRICT codes,
                         uint8_t* HWY_RESTRICT scales, uint8_t* HWY_RESTRICT chosen) {
  const Nvfp4DF df;
  const size_t num_candidates = p.dynamic_scales ? 1 : p.candidates.size();
  HWY_ALIGN float amax[kNvfp4Group];
  HWY_ALIGN float best_loss[kNvfp4Group];
  GroupScales group;
  for (size_t b0 = 0; b0 < num_blocks; b0 += kNvfp4Group) {
    const size_t nb = num_blocks - b0 < kNvfp4Group ? num_blocks - b0 : kNvfp4Group;
    const T* group_in = in + b0 * kNvfp4Block;
    for (size_t j = 0; j < nb; ++j) amax[j] = BlockAmax(df, group_in + j * kNvfp4Block);
    for (size_t j = nb; j < kNvfp4Group; ++j) amax[j] = 0.0f;  // padding lanes, never stored

    if (num_candidates == 1) {
      ComputeGroupScales(df, amax, p, p.dynamic_scales ? 1.0f : p.candidates[0], &group);
      for (size_t j = 0; j < nb; ++j) {
        EncodeBlock<false>(df, group_in + j * kNvfp4Block, group.divisor[j], group.value[j],
                           p.global_scale, codes + (b0 + j) * 8);
        scales[b0 + j] = static_cast<uint8_t>(group.code[j]);
      }
      if (chosen != nullptr) std::memset(chosen + b0, 0, nb);
      continue;
    }
    for (size_t k = 0; k < num_candidates; ++k) {
      ComputeGroupScales(df, amax, p, p.candidates[k], &group);
      for (size_t j = 0; j < nb; ++j) {
        HWY_ALIGN uint8_t candidate_codes[kNvfp4Block / 2];
        const float loss =
            EncodeBlock<true>(df, group_in + j * kNvfp4Block, group.divisor[j], group.value[j],
                              p.global_scale, candidate_codes);
        if (k == 0 || loss < best_loss[j]) {  // strict: ties keep the earlier candidate
          best_loss[j] = loss;
          std::memcpy(codes + (b0 + j) * 8, candidate_codes, 8);
          scales[b0 + j] = static_cast<uint8_t>(group.code[j]);
          chosen[b0 + j] = static_cast<uint8_t>(k);
        }
      }
    }
  }
}

#endif  // HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3

inline void QuantizeNvfp4BlocksF32(const float* in, size_t num_blocks, const Nvfp4KernelParams& p,
                                   uint8_t* codes, uint8_t* scales, uint8_t* chosen) {
  QuantizeNvfp4Blocks(in, num_blocks, p, codes, scales, chosen);
}

// The kernels QuantizeNvfp4BlocksBF16 runs for `p` on this target (Nvfp4BF16PathFor,
// nvfp4_kernels.h).
inline Nvfp4BF16Path BF16PathFor(const Nvfp4KernelParams& p) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  if (p.bf16_table == nullptr) return Nvfp4BF16Path::kDivision;
#if HWY_TARGET <= HWY_AVX3
  if (p.bf16_table->has_buckets) {
    const size_t num_candidates = p.dynamic_scales ? 1 : p.candidates.size();
    const bool in_window = p.bf16_scale_codes != nullptr &&
                           p.bf16_scale_codes->within_bucket_window &&
                           num_candidates <= Nvfp4ScaleCodeTable::kMaxCandidates;
    return in_window ? Nvfp4BF16Path::kBoundsBucketsInWindow : Nvfp4BF16Path::kBoundsBuckets;
  }
#endif
  return Nvfp4BF16Path::kBoundsSearch;
#else
  (void)p;
  return Nvfp4BF16Path::kDivision;
#endif
}

inline void QuantizeNvfp4BlocksBF16(const uint16_t* in, size_t num_blocks,
                                    const Nvfp4KernelParams& p, uint8_t* codes, uint8_t* scales,
                                    uint8_t* chosen) {
  switch (BF16PathFor(p)) {  // the division-free kernels are in nvfp4_bf16-inl.h
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
#if HWY_TARGET <= HWY_AVX3
    case Nvfp4BF16Path::kBoundsBuckets:
      return QuantizeNvfp4BlocksBF16Rows<true>(in, num_blocks, p, codes, scales, chosen);
    case Nvfp4BF16Path::kBoundsBucketsInWindow:
      return QuantizeNvfp4BlocksBF16Rows<true, false>(in, num_blocks, p, codes, scales, chosen);
#endif
    case Nvfp4BF16Path::kBoundsSearch:
      return QuantizeNvfp4BlocksBF16Rows<false>(in, num_blocks, p, codes, scales, chosen);
#endif
    default:
      return QuantizeNvfp4Blocks(in, num_blocks, p, codes, scales, chosen);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace qf
HWY_AFTER_NAMESPACE();

#endif  // QF_KERNELS_NVFP4_INL_H_
