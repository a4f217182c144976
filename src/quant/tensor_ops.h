// Internal helpers of the quantizers (src/quant only): input validation and widening of a range
// of a tensor's elements to F32, so each quantizer can stream its input in cache-sized pieces.
#pragma once

#include <cstdint>
#include <span>

#include "quantforge/tensor.h"
#include "src/kernels/amax.h"

namespace qf {

// Throws qf::Error naming the tensor if its dtype is not F32 / BF16 / F16, if its byte size does
// not match its shape, or if it has no elements.
void CheckQuantizableView(const TensorView& tensor);

// Writes elements [begin, begin + out.size()) of a checked view to `out` as F32 (exact).
void WidenElements(const TensorView& tensor, int64_t begin, std::span<float> out);

// Max |x| over elements [begin, begin + count) of a checked view (all_finite false if any is NaN
// or Inf). Vectorized, no widening.
AmaxResult ElementsAmax(const TensorView& tensor, int64_t begin, int64_t count);

// Elements per task of the threaded scans: fixed, so results never depend on the thread count.
inline constexpr int64_t kScanChunkElements = int64_t{1} << 16;

}  // namespace qf
