// RMSNorm as in transformers' LlamaRMSNorm: y = weight * (x / sqrt(mean(x^2) + eps)).
#pragma once

#include <cstdint>

#include "quantforge/thread_pool.h"
#include "src/util/aligned_buffer.h"

namespace qf::model {

struct RmsNorm {
  int64_t size = 0;
  float eps = 1e-6f;
  AlignedBuffer<float> weight;  // [size]

  // out[rows, size] = norm(in[rows, size]); rows are independent (ThreadPool tasks of 16 rows).
  void Forward(const float* in, int64_t rows, float* out, ThreadPool* pool) const;
};

// One row; the kernel behind RmsNorm::Forward, exposed for tests.
void RmsNormRow(const float* in, const float* weight, int64_t size, float eps, float* out);

}  // namespace qf::model
