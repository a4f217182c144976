// Backward of RMSNorm (src/model/rmsnorm.h) with respect to its input; the weight is a constant
// (AutoQuantize needs no weight gradients). With r = 1 / sqrt(mean(x^2) + eps) and
// y_i = w_i x_i r, dr/dx_j = -r^3 x_j / n, so
//   dx_j = r w_j dy_j - (r^3 / n) x_j sum_i (w_i dy_i x_i).
#pragma once

#include <cstdint>

#include "quantforge/thread_pool.h"
#include "src/model/rmsnorm.h"

namespace qf::grad {

// One row: dx[size] from the forward input x and dy. r and the sum run in double.
void RmsNormBackwardRow(const float* x, const float* weight, int64_t size, float eps,
                        const float* dy, float* dx);

// dx[rows, size] (overwritten) for norm's forward input x[rows, size]; rows in fixed tasks.
void RmsNormBackward(const model::RmsNorm& norm, const float* x, int64_t rows, const float* dy,
                     float* dx, ThreadPool* pool);

}  // namespace qf::grad
