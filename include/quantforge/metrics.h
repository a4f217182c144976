// Reconstruction-error metrics of a quantized tensor against its original.
//
//   mse     = sum((x - y)^2) / n
//   rel_rms = sqrt(sum((x - y)^2) / sum(x^2))          (0 when both sums are 0)
//   sqnr_db = 10 * log10(sum(x^2) / sum((x - y)^2))    (+inf when the error is 0)
// Sums are accumulated in double over fixed chunks combined in index order, so the figures do
// not depend on the thread count.
#pragma once

#include <cstdint>
#include <span>

#include "quantforge/thread_pool.h"

namespace qf {

struct ErrorStats {
  int64_t count = 0;
  double mse = 0.0;
  double rel_rms = 0.0;
  double sqnr_db = 0.0;
  double max_abs_error = 0.0;
  double signal_power = 0.0;  // sum(x^2) / n
};

ErrorStats ComputeError(std::span<const float> original, std::span<const float> reconstructed,
                        ThreadPool* pool = nullptr);

// Distribution of the per-block mean squared error (blocks of `block_size` along rows of `cols`
// elements; a short last block per row counts its real elements only).
struct BlockErrorStats {
  int64_t num_blocks = 0;
  int64_t num_zero_error_blocks = 0;
  double mean_block_mse = 0.0;
  double median_block_mse = 0.0;
  double p99_block_mse = 0.0;
  double max_block_mse = 0.0;
  int64_t worst_block_idx = -1;  // row * blocks_per_row + block, of max_block_mse
};

BlockErrorStats ComputeBlockError(std::span<const float> original,
                                  std::span<const float> reconstructed, int64_t cols,
                                  int64_t block_size, ThreadPool* pool = nullptr);

}  // namespace qf
