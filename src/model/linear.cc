// Linear layers and GEMM tiling over OpenBLAS (see linear.h for the threading choice).
#include "src/model/linear.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>

#include "src/util/log.h"

namespace qf::model {
namespace {

std::atomic<int64_t> g_gemm_nanoseconds{0};
std::atomic<int64_t> g_gemm_flops{0};

void Gemm(CBLAS_TRANSPOSE trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
          const float* b, int64_t ldb, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0f, a, static_cast<int>(lda), b, static_cast<int>(ldb), 0.0f,
              c, static_cast<int>(ldc));
}

}  // namespace

void UseSingleThreadedBlas() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

void GemmNT(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
            int64_t ldb, float* c, int64_t ldc) {
  Gemm(CblasTrans, m, n, k, a, lda, b, ldb, c, ldc);
}

void GemmNN(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
            int64_t ldb, float* c, int64_t ldc) {
  Gemm(CblasNoTrans, m, n, k, a, lda, b, ldb, c, ldc);
}

void ParallelGemmNT(ThreadPool* pool, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                    const float* b, int64_t ldb, float* c, int64_t ldc) {
  const auto start = std::chrono::steady_clock::now();
  const int64_t row_tiles = (m + kGemmTileRows - 1) / kGemmTileRows;
  const int64_t col_tiles = (n + kGemmTileCols - 1) / kGemmTileCols;
  // Column tiles vary fastest: consecutive tasks share the A tile (activations) in cache.
  ParallelFor(pool, static_cast<uint64_t>(row_tiles * col_tiles), [&](uint64_t task, size_t) {
    const int64_t r0 = static_cast<int64_t>(task) / col_tiles * kGemmTileRows;
    const int64_t c0 = static_cast<int64_t>(task) % col_tiles * kGemmTileCols;
    GemmNT(std::min(kGemmTileRows, m - r0), std::min(kGemmTileCols, n - c0), k, a + r0 * lda, lda,
           b + c0 * ldb, ldb, c + r0 * ldc + c0, ldc);
  });
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count();
  g_gemm_nanoseconds.fetch_add(ns, std::memory_order_relaxed);
  g_gemm_flops.fetch_add(2 * m * n * k, std::memory_order_relaxed);
}

std::string BlasCoreName() {
  const char* name = openblas_get_corename();
  return name != nullptr ? name : "";
}

void WarnIfSlowBlasCore() {
  static std::once_flag once;  // one warning per process, not per model load
  std::call_once(once, [] {
    const std::string core = BlasCoreName();
    const bool sse_only = core == "Prescott" || core == "Core2" || core == "Nehalem" ||
                          core == "Penryn" || core == "Dunnington" || core == "Atom";
    if (!sse_only || !__builtin_cpu_supports("avx2")) return;
    log::Warn(
        "OpenBLAS chose its '{}' (SSE) kernels on a CPU with {}: GEMMs run several times "
        "slower than they could; set OPENBLAS_CORETYPE={} before starting quantforge",
        core, __builtin_cpu_supports("avx512f") ? "AVX-512" : "AVX2",
        __builtin_cpu_supports("avx512f") ? "SkylakeX" : "Haswell");
  });
}

GemmStats ReadGemmStats() {
  return {static_cast<double>(g_gemm_nanoseconds.load()) * 1e-9,
          static_cast<double>(g_gemm_flops.load())};
}

void ResetGemmStats() {
  g_gemm_nanoseconds = 0;
  g_gemm_flops = 0;
}

void Linear::Forward(const float* x, int64_t ldx, int64_t rows, float* y, int64_t ldy,
                     ThreadPool* pool) const {
  ParallelGemmNT(pool, rows, out_features, in_features, x, ldx, weight.data(), in_features, y, ldy);
  if (bias.empty()) return;
  for (int64_t r = 0; r < rows; ++r) {
    float* row = y + r * ldy;
    for (int64_t o = 0; o < out_features; ++o) row[o] += bias[static_cast<size_t>(o)];
  }
}

}  // namespace qf::model
