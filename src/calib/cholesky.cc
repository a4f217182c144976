// Tiled Cholesky factor and triangular inverse (cholesky.h). Row-major n x n matrices; a tile
// (i, j) covers rows [i * kTile, ...) and columns [j * kTile, ...). LAPACK is column-major: a
// row-major tile seen column-major is its transpose, so LAPACK's "U" on it computes our lower
// factor; the BLAS calls use CblasRowMajor, so their Lower / Upper mean our row-major triangles.
#include "src/calib/cholesky.h"

#include <algorithm>

#include "src/calib/blas.h"

extern "C" {
// LAPACK (in libopenblas). Column-major, 32-bit ints.
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info);
void dtrtri_(const char* uplo, const char* diag, const int* n, double* a, const int* lda,
             int* info);
}

namespace qf::calib {
namespace {

constexpr int64_t kTile = 128;

struct Tiling {
  int64_t n;
  int64_t count;
  int64_t Begin(int64_t t) const { return t * kTile; }
  int64_t Size(int64_t t) const { return std::min(kTile, n - t * kTile); }
};

// In place: the lower triangle of `l` becomes L with A = L L^T (the strictly upper part is left
// as it was). False if A is not positive definite.
bool CholeskyLower(std::vector<double>& l, int64_t n, ThreadPool* pool) {
  const Tiling t{n, (n + kTile - 1) / kTile};
  const int ld = static_cast<int>(n);
  for (int64_t k = 0; k < t.count; ++k) {
    double* lkk = l.data() + t.Begin(k) * n + t.Begin(k);
    const int nk = static_cast<int>(t.Size(k));
    int info = 0;
    dpotrf_("U", &nk, lkk, &ld, &info);  // row-major lower (see the file comment)
    if (info != 0) return false;
    const int64_t below = t.count - k - 1;
    // Panel: A_ik <- A_ik L_kk^-T.
    ParallelFor(pool, static_cast<uint64_t>(below), [&](uint64_t task, size_t) {
      const int64_t i = k + 1 + static_cast<int64_t>(task);
      cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit,
                  static_cast<int>(t.Size(i)), nk, 1.0, lkk, ld,
                  l.data() + t.Begin(i) * n + t.Begin(k), ld);
    });
    // Trailing lower tiles: A_ij -= L_ik L_jk^T for k < j <= i.
    const uint64_t num_tiles = static_cast<uint64_t>(below * (below + 1) / 2);
    ParallelFor(pool, num_tiles, [&](uint64_t task, size_t) {
      int64_t i = 0, rem = static_cast<int64_t>(task);
      while (rem > i) rem -= ++i;  // task -> (i, j) with j <= i, row by row
      const int64_t ti = k + 1 + i, tj = k + 1 + rem;
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(t.Size(ti)),
                  static_cast<int>(t.Size(tj)), nk, -1.0, l.data() + t.Begin(ti) * n + t.Begin(k),
                  ld, l.data() + t.Begin(tj) * n + t.Begin(k), ld, 1.0,
                  l.data() + t.Begin(ti) * n + t.Begin(tj), ld);
    });
  }
  return true;
}

// x = L^-1 (lower; x's strictly upper part zero). Tile column j of X depends only on L, so the
// tile columns run in parallel: X_jj = L_jj^-1, X_ij = -L_ii^-1 sum_{j<=k<i} L_ik X_kj.
void InvertLower(const std::vector<double>& l, int64_t n, ThreadPool* pool,
                 std::vector<double>& x) {
  const Tiling t{n, (n + kTile - 1) / kTile};
  const int ld = static_cast<int>(n);
  x.assign(static_cast<size_t>(n * n), 0.0);
  ParallelFor(pool, static_cast<uint64_t>(t.count), [&](uint64_t task, size_t) {
    const int64_t j = static_cast<int64_t>(task);
    const int nj = static_cast<int>(t.Size(j));
    double* xjj = x.data() + t.Begin(j) * n + t.Begin(j);
    for (int64_t r = 0; r < nj; ++r) {  // the lower triangle of L_jj, then invert it in place
      for (int64_t c = 0; c <= r; ++c) xjj[r * n + c] = l[(t.Begin(j) + r) * n + t.Begin(j) + c];
    }
    int info = 0;
    dtrtri_("U", "N", &nj, xjj, &ld, &info);  // row-major lower; L_jj is nonsingular here
    for (int64_t i = j + 1; i < t.count; ++i) {
      double* xij = x.data() + t.Begin(i) * n + t.Begin(j);
      const int ni = static_cast<int>(t.Size(i));
      // X_ij = sum_{k=j}^{i-1} L_ik X_kj (X_ij starts at zero), then X_ij = -L_ii^-1 X_ij.
      for (int64_t k = j; k < i; ++k) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ni, nj,
                    static_cast<int>(t.Size(k)), 1.0, l.data() + t.Begin(i) * n + t.Begin(k), ld,
                    x.data() + t.Begin(k) * n + t.Begin(j), ld, 1.0, xij, ld);
      }
      cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, ni, nj, -1.0,
                  l.data() + t.Begin(i) * n + t.Begin(i), ld, xij, ld);
    }
  });
}

}  // namespace

bool InverseCholeskyUpper(const std::vector<double>& a, int64_t n, ThreadPool* pool,
                          std::vector<double>& u) {
  UseSingleThreadedBlas();
  std::vector<double> l(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) l[i * n + j] = a[(n - 1 - i) * n + (n - 1 - j)];  // J A J
  }
  if (!CholeskyLower(l, n, pool)) return false;
  std::vector<double> x;
  InvertLower(l, n, pool, x);
  u.assign(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i; j < n; ++j) u[i * n + j] = x[(n - 1 - i) * n + (n - 1 - j)];  // J X J
  }
  return true;
}

}  // namespace qf::calib
