// Loading named weights from a WeightSource into F32 buffers, with the checks that turn a wrong
// checkpoint into a clear qf::Error (missing tensor, wrong shape, unsupported dtype).
#pragma once

#include <span>
#include <string>
#include <vector>

#include "quantforge/model.h"
#include "quantforge/tensor.h"
#include "src/util/aligned_buffer.h"

namespace qf::model {

// Widens F32 / BF16 / F16 elements to F32 into `out` (NumElements(tensor) floats).
void WidenToF32(const TensorView& tensor, float* out);

// The tensor `name` with exactly `shape`, widened to F32.
AlignedBuffer<float> LoadF32(const WeightSource& source, const std::string& name,
                             const Shape& shape);
// Loads `name` into rows [row_offset, row_offset + shape[0]) of `dest` (a matrix with shape[1]
// columns): how fused q|k|v and gate|up weights are assembled.
void LoadRowsInto(const WeightSource& source, const std::string& name, const Shape& shape,
                  float* dest, int64_t row_offset);
// Widens rows `rows` of the 2-D tensor `name` (exactly `shape`) into out[rows.size(), shape[1]],
// touching only those rows' bytes. Row indices must be in [0, shape[0]).
void GatherRowsF32(const WeightSource& source, const std::string& name, const Shape& shape,
                   std::span<const int32_t> rows, float* out);

}  // namespace qf::model
