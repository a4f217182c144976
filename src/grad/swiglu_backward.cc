// SwiGLU forward (for the cache) and backward, 16 rows per task.
#include "src/grad/swiglu_backward.h"

#include <cmath>

namespace qf::grad {
namespace {
constexpr int64_t kRowsPerTask = 16;
}  // namespace

void SwiGluForward(const float* gate_up, int64_t rows, int64_t inter, float* h, ThreadPool* pool) {
  const Partition part{static_cast<uint64_t>(rows), kRowsPerTask};
  ParallelFor(pool, part.NumTasks(), [&](uint64_t task, size_t) {
    for (uint64_t t = part.Begin(task); t < part.End(task); ++t) {
      const float* row = gate_up + t * 2 * inter;
      for (int64_t i = 0; i < inter; ++i) {
        const float g = row[i];
        const float silu = g * (1.0f / (1.0f + std::exp(-g)));
        h[t * inter + i] = silu * row[inter + i];
      }
    }
  });
}

void SwiGluBackward(const float* gate_up, int64_t rows, int64_t inter, const float* dh,
                    float* dgate_up, ThreadPool* pool) {
  const Partition part{static_cast<uint64_t>(rows), kRowsPerTask};
  ParallelFor(pool, part.NumTasks(), [&](uint64_t task, size_t) {
    for (uint64_t t = part.Begin(task); t < part.End(task); ++t) {
      const float* row = gate_up + t * 2 * inter;
      const float* dh_row = dh + t * inter;
      float* out = dgate_up + t * 2 * inter;
      for (int64_t i = 0; i < inter; ++i) {
        // In double, rounded once: cheap next to the GEMMs around it.
        const double g = row[i];
        const double u = row[inter + i];
        const double s = 1.0 / (1.0 + std::exp(-g));
        out[i] = static_cast<float>(dh_row[i] * u * s * (1.0 + g * (1.0 - s)));
        out[inter + i] = static_cast<float>(dh_row[i] * g * s);
      }
    }
  });
}

}  // namespace qf::grad
