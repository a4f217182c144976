// A dense layer y = x W^T + b over all token rows at once, W stored [out_features, in_features]
// in F32 as in the checkpoint. The GEMM goes to BLAS (OpenBLAS cblas_sgemm).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/util/aligned_buffer.h"

namespace qf::model {

// C[m, n] = A[m, k] * B[n, k]^T (all row-major, leading dimensions given): the one GEMM shape of
// the forward pass. Counts its FLOPs and time in GemmStats.
void GemmNT(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
            int64_t ldb, float* c, int64_t ldc);
// C[m, n] = A[m, k] * B[k, n] (row-major): attention's probabilities times V.
void GemmNN(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
            int64_t ldb, float* c, int64_t ldc);

// The CPU kernel family OpenBLAS chose at load time ("Haswell", "SkylakeX", ...). On virtual
// machines whose CPUID model is generic ("Intel Xeon Processor"), OpenBLAS 0.3.21's DYNAMIC_ARCH
// falls back to "Prescott" (SSE3) kernels, several times slower than the AVX2 / AVX-512 ones
// the CPU has; the environment variable OPENBLAS_CORETYPE=SkylakeX (or Haswell) overrides it.
std::string BlasCoreName();
// Logs a warning once when BlasCoreName() is an SSE-only kernel on a CPU with AVX2.
void WarnIfSlowBlasCore();

// Process-wide GEMM accounting for the benchmark (GEMM share of time, GFLOP/s). Not used for any
// result; relaxed atomics.
struct GemmStats {
  double seconds = 0.0;
  double flops = 0.0;
};
GemmStats ReadGemmStats();
void ResetGemmStats();

struct Linear {
  int64_t in_features = 0;
  int64_t out_features = 0;
  AlignedBuffer<float> weight;  // [out_features, in_features]
  std::vector<float> bias;      // empty or out_features

  // y[rows, out_features] (row stride ldy) = x[rows, in_features] (row stride ldx) W^T + b.
  void Forward(const float* x, int64_t ldx, int64_t rows, float* y, int64_t ldy) const;
};

}  // namespace qf::model
