// A dense layer y = x W^T + b over all token rows at once, W stored [out_features, in_features]
// in F32 as in the checkpoint. The GEMM goes to BLAS (OpenBLAS cblas_sgemm).
//
// Threading: OpenBLAS runs single-threaded (set once, process-wide, by UseSingleThreadedBlas) and
// quantforge's ThreadPool runs tiles of each GEMM in parallel. Two reasons: OpenBLAS's own
// threads spin and synchronise on every call, which collapses on a shared, oversubscribed
// machine (measured: 10x slower at load 12 on 2 cores); and tiles of a fixed size (by data, never
// by thread count) keep results independent of the thread count.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "quantforge/thread_pool.h"
#include "src/util/aligned_buffer.h"

namespace qf::model {

// Sets OpenBLAS to one thread (once per process).
void UseSingleThreadedBlas();

// C[m, n] = A[m, k] * B[n, k]^T (row-major, leading dimensions given), on the calling thread.
void GemmNT(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
            int64_t ldb, float* c, int64_t ldc);
// C[m, n] = A[m, k] * B[k, n] (row-major), on the calling thread: attention's P times V.
void GemmNN(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
            int64_t ldb, float* c, int64_t ldc);
// GemmNT split into tiles of kGemmTileRows x kGemmTileCols of C run on `pool`. Counted in
// GemmStats (wall time of the whole call).
inline constexpr int64_t kGemmTileRows = 256;
inline constexpr int64_t kGemmTileCols = 512;
void ParallelGemmNT(ThreadPool* pool, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                    const float* b, int64_t ldb, float* c, int64_t ldc);

// The CPU kernel family OpenBLAS chose at load time ("Haswell", "SkylakeX", ...). On virtual
// machines whose CPUID model is generic ("Intel Xeon Processor"), OpenBLAS 0.3.21's DYNAMIC_ARCH
// falls back to "Prescott" (SSE3) kernels, several times slower than the AVX2 / AVX-512 ones
// the CPU has; the environment variable OPENBLAS_CORETYPE=SkylakeX (or Haswell) overrides it.
std::string BlasCoreName();
// Logs a warning once when BlasCoreName() is an SSE-only kernel on a CPU with AVX2.
void WarnIfSlowBlasCore();

// Process-wide accounting of the Linear-layer GEMMs (ParallelGemmNT) for the benchmark: GEMM
// share of time, GFLOP/s. Attention's small per-head GEMMs are not counted. Not used for any
// result.
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
  void Forward(const float* x, int64_t ldx, int64_t rows, float* y, int64_t ldy,
               ThreadPool* pool) const;
};

}  // namespace qf::model
