// Internal to src/calib: the upper Cholesky factor of an inverse, U with A^-1 = U^T U, by tiled
// algorithms on qf::ThreadPool (fixed 128 x 128 tiles, single-threaded BLAS / LAPACK per tile),
// so the bits depend on A alone, never on the thread count.
//
// Method: with J the reversal permutation, factor J A J = L L^T (lower, blocked right-looking
// Cholesky), invert L (blocked, tile columns in parallel) and take U = J L^-1 J, which is upper
// triangular with a positive diagonal and satisfies U^T U = J L^-T L^-1 J = J (J A J)^-1 J = A^-1.
// The factor with a positive diagonal is unique, so this is the U of Model Optimizer's
// cholesky(cholesky_inverse(cholesky(A)), upper=True), at 2/3 n^3 flops instead of 4/3 n^3.
#pragma once

#include <cstdint>
#include <vector>

#include "quantforge/thread_pool.h"

namespace qf::calib {

// a: [n, n] row-major symmetric. Returns false (u untouched) if A is not positive definite.
bool InverseCholeskyUpper(const std::vector<double>& a, int64_t n, ThreadPool* pool,
                          std::vector<double>& u);

}  // namespace qf::calib
