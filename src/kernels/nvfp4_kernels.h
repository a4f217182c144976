// NVFP4 block kernels: 16-element blocks to E4M3 block scales and packed E2M1 codes, with the
// max, static and candidate-search (mse / four_over_six) block-scale rules. Bodies in
// nvfp4-inl.h, run-time dispatch in nvfp4_kernels.cc; src/quant/nvfp4.cc does validation, the
// global amax, padding and threading, and src/quant/nvfp4_reference.cc is the scalar spec every
// target must equal byte for byte.
//
// Arithmetic per block (float32, each operation rounded on its own, no FMA), a = max |x|:
//   dynamic: s = a / six_g; s == 0 -> 1; clamp [2^-9, 448]; E4M3 RNE.
//   static, per candidate k: ca = a * candidates[k] (or candidates[k] itself when
//     candidates_are_amax); ps = ca / 6; ps == 0 -> 1; s = E4M3(clamp((ps * norm) /
//     global_amax_over_6, 2^-9, 448)).
//   elements: q = x / (float(s) * g) -> E2M1 (ties to the even code, sign bit x < 0).
//   loss (more than one candidate): sum of (x - (E2M1value * float(s)) * g)^2 over the block in
//     the tree order of ReferenceBlockLoss; the first candidate with the least loss wins.
#pragma once

#include <cstdint>
#include <span>

namespace qf {

struct Nvfp4DecisionTable;   // nvfp4_bounds.h
struct Nvfp4ScaleCodeTable;  // nvfp4_scale_codes.h

struct Nvfp4KernelParams {
  bool dynamic_scales = true;       // Model Optimizer's dynamic formula (one candidate)
  float global_scale = 1.0f;        // g
  float six_global_scale = 6.0f;    // 6 * g in float32 (dynamic)
  float global_amax_over_6 = 0.0f;  // global_amax / 6 in float32 (static)
  float norm = 448.0f;              // E4M3 normalisation constant (static): 448 or 256
  // Static: candidate block-amax multipliers, searched in order (size 1: no search, no loss).
  std::span<const float> candidates;
  bool candidates_are_amax = false;  // fp8 scale sweep: candidates are the block amaxes themselves
  // BF16 inputs: the decision bounds of global_scale (nvfp4_bounds.h), or nullptr. Where set,
  // the x86 AVX2 / AVX-512 targets quantize without division; results are identical.
  const Nvfp4DecisionTable* bf16_table = nullptr;
  // With bf16_table: the block-scale codes by BF16 block amax (nvfp4_scale_codes.h), or nullptr
  // (the scales are then computed per block). Must cover the input's amax and, for static
  // scales, every candidate (at most Nvfp4ScaleCodeTable::kMaxCandidates of them).
  const Nvfp4ScaleCodeTable* bf16_scale_codes = nullptr;
};

// `in` holds num_blocks * 16 values (rows already zero-padded to whole blocks). Outputs:
// codes num_blocks * 8 bytes (element 2k in the low nibble of byte k), scales num_blocks bytes,
// chosen num_blocks bytes (index of the chosen candidate; may be empty with at most one
// candidate). Inputs must be finite (checked by the caller); the kernels never throw.
void QuantizeNvfp4BlocksF32(std::span<const float> in, const Nvfp4KernelParams& params,
                            std::span<uint8_t> codes, std::span<uint8_t> scales,
                            std::span<uint8_t> chosen);
void QuantizeNvfp4BlocksBF16(std::span<const uint16_t> in, const Nvfp4KernelParams& params,
                             std::span<uint8_t> codes, std::span<uint8_t> scales,
                             std::span<uint8_t> chosen);

// Which kernels QuantizeNvfp4BlocksBF16 runs for `params` on this CPU (the run-time dispatch's
// choice; for tests and diagnostics): the division kernels (no bf16_table, or a target below
// AVX2), the decision bounds by binary search (AVX2, or a table without the bucket form), or by
// bucket (AVX-512 with Nvfp4DecisionTable::has_buckets), without the bucket window's clamp where
// the scale-code table proves it idle (Nvfp4ScaleCodeTable::within_bucket_window).
enum class Nvfp4BF16Path { kDivision, kBoundsSearch, kBoundsBuckets, kBoundsBucketsInWindow };
Nvfp4BF16Path Nvfp4BF16PathFor(const Nvfp4KernelParams& params);

// The Highway targets compiled into these kernels (HWY_TARGETS of this library, e.g. to check
// that AVX3_DL, whose vpermb path gives AVX3's bytes, is among them).
int64_t Nvfp4KernelTargets();

// Fills table->code[a][k] for a in [0, max_bits] and every candidate k of `params` (one for
// dynamic scales; at most Nvfp4ScaleCodeTable::kMaxCandidates), and sets table->max_bits.
// max_bits above 0x7F7F (the largest finite BF16 magnitude) counts as 0x7F7F. With
// params.bf16_table set (and its bucket form), also sets table->within_bucket_window.
void BuildNvfp4ScaleCodes(const Nvfp4KernelParams& params, uint16_t max_bits,
                          Nvfp4ScaleCodeTable* table);

}  // namespace qf
