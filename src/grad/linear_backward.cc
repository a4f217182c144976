// Linear input gradient: C = dY W as fixed tiles of single-threaded BLAS (model::GemmNN), the
// same tiling policy as the forward's ParallelGemmNT.
#include "src/grad/linear_backward.h"

#include <algorithm>

namespace qf::grad {

void LinearBackwardInput(const model::Linear& linear, const float* dy, int64_t ldy, int64_t rows,
                         float* dx, int64_t ldx, ThreadPool* pool) {
  const int64_t n = linear.in_features;
  const int64_t k = linear.out_features;
  const int64_t row_tiles = (rows + model::kGemmTileRows - 1) / model::kGemmTileRows;
  const int64_t col_tiles = (n + model::kGemmTileCols - 1) / model::kGemmTileCols;
  ParallelFor(pool, static_cast<uint64_t>(row_tiles * col_tiles), [&](uint64_t task, size_t) {
    const int64_t r0 = static_cast<int64_t>(task) / col_tiles * model::kGemmTileRows;
    const int64_t c0 = static_cast<int64_t>(task) % col_tiles * model::kGemmTileCols;
    model::GemmNN(std::min(model::kGemmTileRows, rows - r0), std::min(model::kGemmTileCols, n - c0),
                  k, dy + r0 * ldy, ldy, linear.weight.data() + c0, n, dx + r0 * ldx + c0, ldx);
  });
}

}  // namespace qf::grad
