// QuantizeMx / DequantizeMx (quantize.h): validation, zero padding to whole 32-element blocks,
// threading over fixed runs of blocks (quantize) or rows (dequantize), and dispatch to the row
// kernels of src/kernels/mx_kernels.h. The arithmetic is stated in mx_kernels.h and
// docs/FORMATS.md; mx_reference.cc is its scalar twin.
#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include "quantforge/error.h"
#include "quantforge/quantize.h"
#include "src/kernels/mx_kernels.h"
#include "src/quant/tensor_ops.h"

namespace qf {
namespace {

constexpr uint32_t kInfBits = 0x7F800000u;
// Blocks per quantization task: 2,048 blocks = 65,536 values. Depends on nothing but this constant.
constexpr int64_t kBlocksPerTask = kScanChunkElements / kMxBlockSize;
// Blocks widened and quantized in one go: 64 blocks = 8 KiB of F32, well inside L1.
constexpr int64_t kBlocksPerPiece = 64;

// Rows per task: about kScanChunkElements values, at least one row. Depends on the shape only.
uint64_t RowsPerTask(int64_t cols) {
  return static_cast<uint64_t>(
      std::max<int64_t>(1, kScanChunkElements / std::max<int64_t>(cols, 1)));
}

int64_t CodesPerRow(MxElement element, int64_t padded_cols) {
  return element == MxElement::kE2M1 ? padded_cols / 2 : padded_cols;
}

}  // namespace

MxTensor QuantizeMx(const TensorView& tensor, MxElement element, MxScaleRule rule,
                    ThreadPool* pool) {
  CheckQuantizableView(tensor);
  MxTensor t;
  t.element = element;
  t.rows = tensor.Rows();
  t.cols = tensor.Cols();
  t.padded_cols = (t.cols + kMxBlockSize - 1) / kMxBlockSize * kMxBlockSize;
  const int64_t codes_per_row = CodesPerRow(element, t.padded_cols);
  const int64_t blocks_per_row = t.padded_cols / kMxBlockSize;
  t.codes.resize(t.rows * codes_per_row);
  t.scales.resize(t.rows * blocks_per_row);

  const bool e2m1 = element == MxElement::kE2M1;
  const bool ceil_rule = rule == MxScaleRule::kCeil;
  const int64_t codes_per_block = e2m1 ? kMxBlockSize / 2 : kMxBlockSize;
  // Tasks are fixed runs of blocks over the flattened [rows, blocks_per_row] grid, so a tensor
  // with few long rows still spreads over the threads and the scratch stays small.
  const Partition partition{static_cast<uint64_t>(t.rows * blocks_per_row),
                            static_cast<uint64_t>(kBlocksPerTask)};
  const size_t num_workers = pool ? pool->NumWorkers() : 1;
  std::vector<std::vector<float>> scratch(num_workers);
  std::atomic<bool> non_finite{false};
  ParallelFor(pool, partition.NumTasks(), [&](uint64_t task, size_t worker) {
    std::vector<float>& values = scratch[worker];
    values.resize(kBlocksPerPiece * kMxBlockSize);
    for (int64_t block = partition.Begin(task);
         block < static_cast<int64_t>(partition.End(task));) {
      // A run of this task's blocks that lies in one row, at most kBlocksPerPiece long so the
      // widened values are still in L1 when the kernel reads them.
      const int64_t r = block / blocks_per_row, first = block % blocks_per_row;
      const int64_t num_blocks = std::min({static_cast<int64_t>(partition.End(task)) - block,
                                           blocks_per_row - first, kBlocksPerPiece});
      const int64_t col_begin = first * kMxBlockSize;
      const int64_t num_values =
          std::min(t.cols, col_begin + num_blocks * kMxBlockSize) - col_begin;
      const std::span<float> run(values.data(), num_blocks * kMxBlockSize);
      WidenElements(tensor, r * t.cols + col_begin, run.first(num_values));
      std::fill(run.begin() + num_values, run.end(), 0.0f);  // zero padding of the last block
      const uint32_t max_bits = QuantizeMxRow(
          run, e2m1, ceil_rule,
          std::span<uint8_t>(t.codes).subspan(r * codes_per_row + first * codes_per_block,
                                              num_blocks * codes_per_block),
          std::span<uint8_t>(t.scales).subspan(r * blocks_per_row + first, num_blocks));
      if (max_bits >= kInfBits) non_finite.store(true, std::memory_order_relaxed);
      block += num_blocks;
    }
  });
  if (non_finite.load()) {
    TensorAmax(tensor);  // throws, naming the first NaN / Inf element
    QF_CHECK(false);
  }
  return t;
}

void DequantizeMx(const MxTensor& t, std::span<float> out, ThreadPool* pool) {
  const int64_t padded = (t.cols + kMxBlockSize - 1) / kMxBlockSize * kMxBlockSize;
  const int64_t codes_per_row = CodesPerRow(t.element, t.padded_cols);
  const int64_t blocks_per_row = t.padded_cols / kMxBlockSize;
  if (t.rows < 0 || t.cols < 0 || t.padded_cols != padded ||
      t.codes.size() != static_cast<size_t>(t.rows * codes_per_row) ||
      t.scales.size() != static_cast<size_t>(t.rows * blocks_per_row)) {
    throw Error("MX tensor is inconsistent: " + std::to_string(t.rows) + " x " +
                std::to_string(t.cols) + " (padded " + std::to_string(t.padded_cols) + ") with " +
                std::to_string(t.codes.size()) + " code bytes and " +
                std::to_string(t.scales.size()) + " scales");
  }
  if (out.size() != static_cast<size_t>(t.rows * t.cols)) {
    throw Error("dequantize output holds " + std::to_string(out.size()) + " floats; expected " +
                std::to_string(t.rows * t.cols));
  }
  const bool e2m1 = t.element == MxElement::kE2M1;
  const Partition partition{static_cast<uint64_t>(t.rows), RowsPerTask(t.padded_cols)};
  ParallelFor(pool, partition.NumTasks(), [&](uint64_t task, size_t) {
    for (uint64_t r = partition.Begin(task); r < partition.End(task); ++r) {
      DequantizeMxRow(
          std::span<const uint8_t>(t.codes).subspan(r * codes_per_row, codes_per_row),
          std::span<const uint8_t>(t.scales).subspan(r * blocks_per_row, blocks_per_row), e2m1,
          out.subspan(r * t.cols, t.cols));
    }
  });
}

}  // namespace qf
