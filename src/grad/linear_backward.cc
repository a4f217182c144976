// Linear input gradient: C = dY W as fixed tiles of single-threaded BLAS (model::GemmNN), the
// same tiling policy as the forward's ParallelGemmNT.
#include "src/grad/linear_backward.h"

#include <algorithm>

namespace qf::grad {

void ParallelGemmNN(ThreadPool* pool, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                    const float* b, float* c, int64_t ldc) {
  const int64_t row_tiles = (m + model::kGemmTileRows - 1) / model::kGemmTileRows;
  const int64_t col_tiles = (n + model::kGemmTileCols - 1) / model::kGemmTileCols;
  ParallelFor(pool, static_cast<uint64_t>(row_tiles * col_tiles), [&](uint64_t task, size_t) {
    const int64_t r0 = static_cast<int64_t>(task) / col_tiles * model::kGemmTileRows;
    const int64_t c0 = static_cast<int64_t>(task) % col_tiles * model::kGemmTileCols;
    model::GemmNN(std::min(model::kGemmTileRows, m - r0), std::min(model::kGemmTileCols, n - c0), k,
                  a + r0 * lda, lda, b + c0, n, c + r0 * ldc + c0, ldc);
  });
}

void LinearBackwardInput(const model::Linear& linear, const float* dy, int64_t ldy, int64_t rows,
                         float* dx, int64_t ldx, ThreadPool* pool) {
  ParallelGemmNN(pool, rows, linear.in_features, linear.out_features, dy, ldy, linear.weight.data(),
                 dx, ldx);
}

}  // namespace qf::grad
