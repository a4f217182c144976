// RMSNorm. transformers computes mean(x^2) in F32 then rsqrt; we accumulate the sum of squares in
// double (a more accurate mean, well inside F32 rounding of the result) and round the inverse
// RMS once to F32, then multiply in F32 in transformers' order: weight * (x * inv_rms).
#include "src/model/rmsnorm.h"

#include <cmath>

namespace qf::model {

void RmsNormRow(const float* in, const float* weight, int64_t size, float eps, float* out) {
  double sum_squares = 0.0;
  for (int64_t i = 0; i < size; ++i) sum_squares += static_cast<double>(in[i]) * in[i];
  const float mean = static_cast<float>(sum_squares / static_cast<double>(size));
  const float inv_rms = static_cast<float>(1.0 / std::sqrt(static_cast<double>(mean + eps)));
  for (int64_t i = 0; i < size; ++i) out[i] = weight[i] * (in[i] * inv_rms);
}

void RmsNorm::Forward(const float* in, int64_t rows, float* out, ThreadPool* pool) const {
  constexpr int64_t kRowsPerTask = 16;
  const Partition part{static_cast<uint64_t>(rows), kRowsPerTask};
  ParallelFor(pool, part.NumTasks(), [&](uint64_t task, size_t) {
    for (uint64_t r = part.Begin(task); r < part.End(task); ++r) {
      RmsNormRow(in + r * size, weight.data(), size, eps, out + r * size);
    }
  });
}

}  // namespace qf::model
