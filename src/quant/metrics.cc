// ComputeError / ComputeBlockError (metrics.h): reconstruction-error figures of a quantized
// tensor. Sums run in double over fixed chunks of kChunk elements (or whole rows), combined in
// index order, so the figures do not depend on the thread count.
#include "quantforge/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "quantforge/error.h"

namespace qf {
namespace {

constexpr uint64_t kChunk = uint64_t{1} << 16;

struct PartialSums {
  double squared_error = 0.0;
  double squared_signal = 0.0;
  double max_abs_error = 0.0;
};

void CheckSameSize(std::span<const float> original, std::span<const float> reconstructed) {
  if (original.size() != reconstructed.size()) {
    throw Error("reconstruction has " + std::to_string(reconstructed.size()) +
                " values; expected " + std::to_string(original.size()) + " (the original's)");
  }
}

}  // namespace

ErrorStats ComputeError(std::span<const float> original, std::span<const float> reconstructed,
                        ThreadPool* pool) {
  CheckSameSize(original, reconstructed);
  const Partition partition{original.size(), kChunk};
  std::vector<PartialSums> partial(partition.NumTasks());
  ParallelFor(pool, partition.NumTasks(), [&](uint64_t task, size_t) {
    PartialSums sums;
    for (uint64_t i = partition.Begin(task); i < partition.End(task); ++i) {
      const double x = original[i];
      const double e = x - static_cast<double>(reconstructed[i]);
      sums.squared_error += e * e;
      sums.squared_signal += x * x;
      sums.max_abs_error = std::max(sums.max_abs_error, std::fabs(e));
    }
    partial[task] = sums;
  });
  PartialSums total;
  for (const PartialSums& sums : partial) {  // index order
    total.squared_error += sums.squared_error;
    total.squared_signal += sums.squared_signal;
    total.max_abs_error = std::max(total.max_abs_error, sums.max_abs_error);
  }

  ErrorStats stats;
  stats.count = static_cast<int64_t>(original.size());
  stats.max_abs_error = total.max_abs_error;
  if (stats.count == 0) return stats;
  const double n = static_cast<double>(stats.count);
  const double inf = std::numeric_limits<double>::infinity();
  stats.mse = total.squared_error / n;
  stats.signal_power = total.squared_signal / n;
  if (total.squared_error == 0.0) {
    stats.rel_rms = 0.0;
    stats.sqnr_db = inf;
  } else if (total.squared_signal == 0.0) {
    stats.rel_rms = inf;
    stats.sqnr_db = -inf;
  } else {
    stats.rel_rms = std::sqrt(total.squared_error / total.squared_signal);
    stats.sqnr_db = 10.0 * std::log10(total.squared_signal / total.squared_error);
  }
  return stats;
}

// Median: the mean of the two middle values for an even count. p99: nearest rank, the value at
// 1-based rank ceil(0.99 * n) of the sorted block MSEs.
BlockErrorStats ComputeBlockError(std::span<const float> original,
                                  std::span<const float> reconstructed, int64_t cols,
                                  int64_t block_size, ThreadPool* pool) {
  CheckSameSize(original, reconstructed);
  if (cols <= 0 || block_size <= 0 || original.size() % static_cast<uint64_t>(cols) != 0) {
    throw Error("block error of " + std::to_string(original.size()) + " values with cols " +
                std::to_string(cols) + " and block size " + std::to_string(block_size) +
                "; expected positive cols dividing the size and a positive block size");
  }
  const int64_t rows = static_cast<int64_t>(original.size()) / cols;
  const int64_t blocks_per_row = (cols + block_size - 1) / block_size;
  std::vector<double> block_mse(static_cast<size_t>(rows * blocks_per_row));
  const uint64_t rows_per_task = std::max<uint64_t>(1, kChunk / static_cast<uint64_t>(cols));
  const Partition partition{static_cast<uint64_t>(rows), rows_per_task};
  ParallelFor(pool, partition.NumTasks(), [&](uint64_t task, size_t) {
    for (uint64_t r = partition.Begin(task); r < partition.End(task); ++r) {
      for (int64_t b = 0; b < blocks_per_row; ++b) {
        const int64_t begin = static_cast<int64_t>(r) * cols + b * block_size;
        const int64_t count = std::min(block_size, cols - b * block_size);
        double sum = 0.0;
        for (int64_t i = begin; i < begin + count; ++i) {
          const double e = static_cast<double>(original[i]) - static_cast<double>(reconstructed[i]);
          sum += e * e;
        }
        block_mse[r * blocks_per_row + b] = sum / static_cast<double>(count);
      }
    }
  });

  BlockErrorStats stats;
  stats.num_blocks = static_cast<int64_t>(block_mse.size());
  if (block_mse.empty()) return stats;
  double sum = 0.0;
  for (size_t i = 0; i < block_mse.size(); ++i) {
    sum += block_mse[i];
    if (block_mse[i] == 0.0) ++stats.num_zero_error_blocks;
    if (stats.worst_block_idx < 0 || block_mse[i] > stats.max_block_mse) {
      stats.max_block_mse = block_mse[i];
      stats.worst_block_idx = static_cast<int64_t>(i);
    }
  }
  stats.mean_block_mse = sum / static_cast<double>(block_mse.size());
  std::vector<double> sorted = block_mse;
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  stats.median_block_mse = n % 2 == 1 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
  const size_t rank = static_cast<size_t>(std::ceil(0.99 * static_cast<double>(n)));
  stats.p99_block_mse = sorted[std::max<size_t>(rank, 1) - 1];
  return stats;
}

}  // namespace qf
