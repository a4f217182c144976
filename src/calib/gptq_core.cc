// GPTQ's format-independent parts (calib.h, gptq_core.h): Model Optimizer's Hessian preparation
// (utils/calib_utils.py compute_hessian_inverse), the upper Cholesky factor of the inverse
// (cholesky.h), the blocked column sweep with lazy updates (gptq_blockwise_update), and the
// layer output error.
//
// Arithmetic: the factor and the sweep run in binary64 (Model Optimizer: binary32 on the GPU);
// each weight is rounded to binary32 just before its quantizer sees it, since the formats'
// arithmetic is specified in binary32. The factor and the lazy-update GEMMs go to OpenBLAS with
// one BLAS thread, whose results depend only on the operands: parallelism comes from our own
// fixed tiles (the sweep treats each weight row on its own once the factor is known), so the
// bytes never depend on the thread count.
#include "src/calib/gptq_core.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "quantforge/error.h"
#include "src/calib/blas.h"
#include "src/calib/cholesky.h"

namespace qf::calib {
namespace {

// Weight rows per task: a tile of 32 rows keeps the lazy-update GEMM efficient (M = 32) while
// leaving enough tasks to balance; fixed, so it never depends on the thread count.
constexpr int64_t kRowsPerTile = 32;

std::vector<double> Identity(int64_t n) {
  std::vector<double> a(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) a[i * n + i] = 1.0;
  return a;
}

void CheckShapes(std::span<const float> w, int64_t rows, int64_t cols, const Hessian& h,
                 bool check_hessian = true) {
  if (rows <= 0 || cols <= 0 || static_cast<int64_t>(w.size()) != rows * cols) {
    throw Error("GPTQ weight holds " + std::to_string(w.size()) + " floats for shape [" +
                std::to_string(rows) + ", " + std::to_string(cols) + "]; expected rows * cols > 0");
  }
  if (!check_hessian) return;
  if (h.dim != cols || static_cast<int64_t>(h.matrix.size()) != cols * cols) {
    throw Error("Hessian is " + std::to_string(h.dim) + " x " + std::to_string(h.dim) + " (" +
                std::to_string(h.matrix.size()) + " values); expected " + std::to_string(cols) +
                " x " + std::to_string(cols) + ", the weight's input dimension");
  }
  for (size_t i = 0; i < h.matrix.size(); ++i) {
    if (!std::isfinite(h.matrix[i])) {
      throw Error("Hessian element " + std::to_string(i) + " is not finite");
    }
  }
}

std::vector<int64_t> DeadColumns(std::span<const float> w, int64_t rows, int64_t cols) {
  std::vector<int64_t> dead_columns;
  for (int64_t c = 0; c < cols; ++c) {
    bool dead = true;
    for (int64_t r = 0; r < rows && dead; ++r) dead = w[r * cols + c] == 0.0f;
    if (dead) dead_columns.push_back(c);
  }
  return dead_columns;
}

// Model Optimizer's preparation, then (act order) the permutation, then the factor.
GptqFactor PrepareFactor(std::span<const float> w, int64_t rows, int64_t cols, const Hessian& h,
                         double perc_damp, bool act_order, ThreadPool* pool) {
  if (!(perc_damp >= 0.0) || !std::isfinite(perc_damp)) {
    throw Error("GPTQ perc_damp " + std::to_string(perc_damp) + "; expected a finite value >= 0");
  }
  std::vector<double> a = h.matrix;
  GptqFactor factor;
  factor.dim = cols;
  factor.act_order = act_order;
  // Dead columns: every weight of the column is 0, so it contributes nothing whatever it is
  // quantized to; decoupling it keeps a never-active input from making H singular.
  factor.dead_columns = DeadColumns(w, rows, cols);
  factor.stats.dead_columns = static_cast<int64_t>(factor.dead_columns.size());
  for (const int64_t c : factor.dead_columns) {
    for (int64_t k = 0; k < cols; ++k) {
      a[c * cols + k] = 0.0;
      a[k * cols + c] = 0.0;
    }
    a[c * cols + c] = 1.0;
  }
  double diag_sum = 0.0;
  for (int64_t i = 0; i < cols; ++i) diag_sum += a[i * cols + i];
  const double damp = perc_damp * (diag_sum / static_cast<double>(cols));
  for (int64_t i = 0; i < cols; ++i) a[i * cols + i] += damp;

  if (act_order) {
    std::vector<int64_t>& perm = factor.order;
    perm.resize(static_cast<size_t>(cols));
    std::iota(perm.begin(), perm.end(), int64_t{0});
    // Largest diagonal first; stable, so equal diagonals keep their index order.
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t x, int64_t y) {
      return a[x * cols + x] > a[y * cols + y];
    });
    std::vector<double> p(a.size());
    for (int64_t i = 0; i < cols; ++i) {
      for (int64_t j = 0; j < cols; ++j) p[i * cols + j] = a[perm[i] * cols + perm[j]];
    }
    a.swap(p);
  }

  if (!InverseCholeskyUpper(a, cols, pool, factor.u)) {
    // Not positive definite (Model Optimizer's fallback): U = I, i.e. no error propagation.
    factor.stats.positive_definite = false;
    factor.u = Identity(cols);
  }
  return factor;
}

}  // namespace

void RunGptqSweep(std::span<const float> w, int64_t rows, int64_t cols,
                  std::span<const double> u, std::span<const int64_t> perm, int64_t block_size,
                  GptqElementQuantizer& quantizer, ThreadPool* pool) {
  UseSingleThreadedBlas();
  const int64_t group = quantizer.GroupSize();
  const Partition partition{static_cast<uint64_t>(rows), kRowsPerTile};
  ParallelFor(pool, partition.NumTasks(), [&](uint64_t task, size_t) {
    const int64_t r0 = static_cast<int64_t>(partition.Begin(task));
    const int64_t tile = static_cast<int64_t>(partition.End(task)) - r0;
    // The tile's weights in sweep order, updated in place.
    std::vector<double> wt(static_cast<size_t>(tile * cols));
    for (int64_t r = 0; r < tile; ++r) {
      for (int64_t i = 0; i < cols; ++i) {
        wt[r * cols + i] = w[(r0 + r) * cols + (perm.empty() ? i : perm[i])];
      }
    }
    std::vector<double> err(static_cast<size_t>(tile * block_size));
    std::vector<float> group_values(static_cast<size_t>(std::max<int64_t>(group, 1)));
    for (int64_t b0 = 0; b0 < cols; b0 += block_size) {
      const int64_t b1 = std::min(cols, b0 + block_size);
      const int64_t nb = b1 - b0;
      for (int64_t i = b0; i < b1; ++i) {
        const double d = u[i * cols + i];
        const double* u_row = u.data() + i * cols;
        const int64_t col = perm.empty() ? i : perm[i];
        for (int64_t r = 0; r < tile; ++r) {
          double* wr = wt.data() + r * cols;
          if (group > 0 && i % group == 0) {
            const int64_t n = std::min(group, cols - i);
            for (int64_t k = 0; k < n; ++k) group_values[k] = static_cast<float>(wr[i + k]);
            quantizer.StartGroup(r0 + r, i, std::span<const float>(group_values).first(n));
          }
          const double q = quantizer.Quantize(r0 + r, col, static_cast<float>(wr[i]));
          const double e = (wr[i] - q) / d;
          err[r * block_size + (i - b0)] = e;
          for (int64_t j = i + 1; j < b1; ++j) wr[j] -= e * u_row[j];
        }
      }
      if (b1 < cols) {
        // Lazy update of the columns right of the block: W[:, b1:] -= Err U[b0:b1, b1:].
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(tile),
                    static_cast<int>(cols - b1), static_cast<int>(nb), -1.0, err.data(),
                    static_cast<int>(block_size), u.data() + b0 * cols + b1,
                    static_cast<int>(cols), 1.0, wt.data() + b1, static_cast<int>(cols));
      }
    }
  });
}

void RunGptq(std::span<const float> w, int64_t rows, int64_t cols, const Hessian& h,
             const GptqOptions& options, GptqElementQuantizer& quantizer, ThreadPool* pool,
             GptqStats* stats) {
  if (options.shared_factor == nullptr) {
    CheckShapes(w, rows, cols, h);
  } else {
    CheckShapes(w, rows, cols, Hessian{cols, 1, std::vector<double>(0)}, false);
  }
  if (options.block_size <= 0) {
    throw Error("GPTQ block_size " + std::to_string(options.block_size) + "; expected > 0");
  }
  const int64_t group = quantizer.GroupSize();
  if (group > 0 && options.block_size % group != 0) {
    throw Error("GPTQ block_size " + std::to_string(options.block_size) +
                " is not a multiple of the quantization group size " + std::to_string(group));
  }
  if (group > 0 && options.act_order) {
    throw Error("GPTQ act_order with scales chosen at group start is not supported; use scales "
                "fixed before the updates");
  }
  GptqFactor own;
  const GptqFactor* factor = options.shared_factor;
  if (factor == nullptr) {
    own = PrepareFactor(w, rows, cols, h, options.perc_damp, options.act_order, pool);
    factor = &own;
  } else {
    // Reuse is exact only for the same preparation: same size, order and dead columns.
    if (factor->dim != cols || static_cast<int64_t>(factor->u.size()) != cols * cols ||
        factor->act_order != options.act_order) {
      throw Error("shared GPTQ factor is for dimension " + std::to_string(factor->dim) +
                  (factor->act_order ? " with" : " without") + " act_order; expected dimension " +
                  std::to_string(cols) + (options.act_order ? " with" : " without") +
                  " act_order");
    }
    if (DeadColumns(w, rows, cols) != factor->dead_columns) {
      throw Error("shared GPTQ factor was prepared for " +
                  std::to_string(factor->dead_columns.size()) +
                  " all-zero weight columns that this weight does not have exactly; prepare "
                  "its own factor");
    }
  }
  if (stats != nullptr) *stats = factor->stats;
  RunGptqSweep(w, rows, cols, factor->u, factor->order, options.block_size, quantizer, pool);
}

}  // namespace qf::calib

namespace qf {

GptqFactor PrepareGptq(std::span<const float> w, int64_t rows, int64_t cols, const Hessian& h,
                       const GptqOptions& options, ThreadPool* pool) {
  calib::CheckShapes(w, rows, cols, h);
  return calib::PrepareFactor(w, rows, cols, h, options.perc_damp, options.act_order, pool);
}

double LayerOutputError(std::span<const float> w, std::span<const float> q, int64_t rows,
                        int64_t cols, const Hessian& h, ThreadPool* pool) {
  calib::CheckShapes(w, rows, cols, h);
  if (q.size() != w.size()) {
    throw Error("quantized weight holds " + std::to_string(q.size()) + " floats; expected " +
                std::to_string(w.size()));
  }
  calib::UseSingleThreadedBlas();
  const Partition partition{static_cast<uint64_t>(rows), calib::kRowsPerTile};
  std::vector<double> partial(partition.NumTasks(), 0.0);
  ParallelFor(pool, partition.NumTasks(), [&](uint64_t task, size_t) {
    const int64_t r0 = static_cast<int64_t>(partition.Begin(task));
    const int64_t tile = static_cast<int64_t>(partition.End(task)) - r0;
    std::vector<double> dw(static_cast<size_t>(tile * cols)), hdw(dw.size());
    for (int64_t k = 0; k < tile * cols; ++k) {
      dw[k] = static_cast<double>(w[r0 * cols + k]) - static_cast<double>(q[r0 * cols + k]);
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(tile),
                static_cast<int>(cols), static_cast<int>(cols), 1.0, dw.data(),
                static_cast<int>(cols), h.matrix.data(), static_cast<int>(cols), 0.0, hdw.data(),
                static_cast<int>(cols));
    double sum = 0.0;
    for (int64_t k = 0; k < tile * cols; ++k) sum += dw[k] * hdw[k];
    partial[task] = sum;
  });
  double total = 0.0;
  for (const double p : partial) total += p;  // task order: independent of the thread count
  return total / static_cast<double>(rows);
}

}  // namespace qf
