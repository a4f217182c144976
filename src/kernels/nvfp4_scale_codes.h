// Block-scale codes of the BF16 NVFP4 kernels as a table over block amaxes.
//
// Given a tensor's scale parameters, a block's E4M3 scale code is a function of its max |x|
// alone (nvfp4_kernels.h: s = a / six_g, or the static formula per candidate, then the zero
// rule, the clamp and E4M3 rounding), and the max |x| of a BF16 block is one of at most 32,768
// BF16 magnitudes. So per tensor one byte per BF16 magnitude pattern and candidate, up to the
// tensor's own amax, replaces the float32 divisions and the rounding of every block
// (BuildNvfp4ScaleCodes, nvfp4_kernels.h). Exact by construction: the entries come from the same
// vectorized formulas (ComputeGroupScales) that the division kernels run per block.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qf {

struct Nvfp4ScaleCodeTable {
  static constexpr size_t kMaxCandidates = 2;  // max, or four_over_six's two
  static constexpr size_t kEntries = 0x8000;   // BF16 magnitude bit patterns
  // code[a][k]: the E4M3 scale code candidate k gives a block whose max |x| has the BF16 bits a,
  // for a <= max_bits (the tensor's amax: no block exceeds it). Both candidates' codes of an
  // amax side by side, so that one 32-bit gather at byte offset 2a fetches them together (and
  // the next entry's two bytes, discarded: max_bits <= 0x7F7F keeps those inside).
  alignas(64) uint8_t code[kEntries][kMaxCandidates] = {};
  uint16_t max_bits = 0;
  // Every a <= max_bits lies within 1023 BF16 patterns of the bucket base of each candidate's row
  // code[a][k] in the decision table it was built with (nvfp4_bounds.h BucketRow), so that no
  // |x| of a block, at most its amax, needs the bucket form's clamp. False without that table.
  // Holds unless a candidate maps block amaxes far above E2M1's 6 (a multiplier below ~0.15).
  bool within_bucket_window = false;
};

}  // namespace qf
