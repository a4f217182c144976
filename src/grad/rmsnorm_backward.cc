// RMSNorm input gradient, row by row (see rmsnorm_backward.h for the formula).
#include "src/grad/rmsnorm_backward.h"

#include <cmath>

namespace qf::grad {

void RmsNormBackwardRow(const float* x, const float* weight, int64_t size, float eps,
                        const float* dy, float* dx) {
  double sum_squares = 0.0;
  double dot = 0.0;  // sum_i w_i dy_i x_i
  for (int64_t i = 0; i < size; ++i) {
    sum_squares += static_cast<double>(x[i]) * x[i];
    dot += static_cast<double>(weight[i]) * dy[i] * x[i];
  }
  // The forward rounds mean(x^2) to F32 before adding eps; the derivative of that rounding is 1.
  const double mean = sum_squares / static_cast<double>(size);
  const double r = 1.0 / std::sqrt(mean + static_cast<double>(eps));
  const double c = r * r * r * dot / static_cast<double>(size);
  for (int64_t i = 0; i < size; ++i) {
    dx[i] = static_cast<float>(r * weight[i] * dy[i] - c * x[i]);
  }
}

void RmsNormBackward(const model::RmsNorm& norm, const float* x, int64_t rows, const float* dy,
                     float* dx, ThreadPool* pool) {
  constexpr int64_t kRowsPerTask = 16;
  const int64_t size = norm.size;
  const Partition part{static_cast<uint64_t>(rows), kRowsPerTask};
  ParallelFor(pool, part.NumTasks(), [&](uint64_t task, size_t) {
    for (uint64_t r = part.Begin(task); r < part.End(task); ++r) {
      RmsNormBackwardRow(x + r * size, norm.weight.data(), size, norm.eps, dy + r * size,
                         dx + r * size);
    }
  });
}

}  // namespace qf::grad
