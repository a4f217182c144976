// Backward of a Linear layer y = x W^T + b with respect to its input: dx = dy W. Weight and bias
// gradients are not formed (AutoQuantize needs dL/dY and X only).
#pragma once

#include <cstdint>

#include "quantforge/thread_pool.h"
#include "src/model/linear.h"

namespace qf::grad {

// c[m, n] (row stride ldc, overwritten) = a[m, k] (row stride lda) times b[k, n] (dense), as
// fixed tiles of C (model::kGemmTileRows x kGemmTileCols) of single-threaded BLAS on `pool`, so
// the result does not depend on the thread count.
void ParallelGemmNN(ThreadPool* pool, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                    const float* b, float* c, int64_t ldc);

// dx[rows, in_features] (row stride ldx, overwritten) = dy[rows, out_features] (row stride ldy)
// times linear.weight [out_features, in_features] (ParallelGemmNN).
void LinearBackwardInput(const model::Linear& linear, const float* dy, int64_t ldy, int64_t rows,
                         float* dx, int64_t ldx, ThreadPool* pool);

}  // namespace qf::grad
