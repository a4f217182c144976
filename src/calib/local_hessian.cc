// LocalHessianNvfp4 (calib.h): Model Optimizer's local_hessian calibrator (LocalHessianCalibConfig,
// _LocalHessianAccumulator): per 16-block, the `mse` candidate scales scored by the block's
// contribution to the layer output error, dw^T H_b dw with H_b = (1/n) sum x_b x_b^T. Since
// E[(dw . x_b)^2] = dw^T H_b dw, this is the output error of the block taken on its own (the
// cross terms between blocks, which GPTQ's full H keeps, are dropped).
//
// Every block is independent; tasks are fixed runs of rows, so the bytes never depend on the
// thread count.
#include <algorithm>
#include <cmath>
#include <string>

#include "quantforge/calib.h"
#include "quantforge/error.h"
#include "src/calib/nvfp4_block.h"

namespace qf {
namespace {

// About 4096 blocks per task, at least one row; depends on the shape only.
constexpr int64_t kBlocksPerTask = 4096;

}  // namespace

Nvfp4Tensor LocalHessianNvfp4(std::span<const float> w, int64_t rows, int64_t cols,
                              const BlockHessians& h, const Nvfp4Options& nvfp4,
                              ThreadPool* pool) {
  if (rows <= 0 || cols <= 0 || static_cast<int64_t>(w.size()) != rows * cols) {
    throw Error("local_hessian weight holds " + std::to_string(w.size()) +
                " floats for shape [" + std::to_string(rows) + ", " + std::to_string(cols) +
                "]; expected rows * cols > 0");
  }
  const int64_t padded_cols = (cols + kNvfp4BlockSize - 1) / kNvfp4BlockSize * kNvfp4BlockSize;
  const int64_t blocks_per_row = padded_cols / kNvfp4BlockSize;
  if (h.dim != cols || h.num_blocks != blocks_per_row ||
      static_cast<int64_t>(h.blocks.size()) != blocks_per_row * 256) {
    throw Error("local Hessians cover dimension " + std::to_string(h.dim) + " in " +
                std::to_string(h.num_blocks) + " blocks (" + std::to_string(h.blocks.size()) +
                " values); expected dimension " + std::to_string(cols) + " in " +
                std::to_string(blocks_per_row) + " blocks of 16 x 16");
  }
  for (size_t i = 0; i < h.blocks.size(); ++i) {
    if (!std::isfinite(h.blocks[i])) {
      throw Error("local Hessian value " + std::to_string(i) + " is not finite");
    }
  }
  const TensorView view = MakeView(w, {rows, cols});
  const float own_amax = TensorAmax(view, pool);  // throws on NaN / Inf, naming the index
  float global_amax = own_amax;
  if (nvfp4.global_amax) {
    global_amax = *nvfp4.global_amax;
    if (!std::isfinite(global_amax) || global_amax < own_amax) {
      throw Error("global_amax override " + std::to_string(global_amax) +
                  " is below the tensor's own amax " + std::to_string(own_amax) +
                  " (or not finite); expected the max over the fused group");
    }
  }
  const calib::Nvfp4BlockRule rule = calib::MakeNvfp4BlockRule(nvfp4, global_amax, true);

  Nvfp4Tensor out;
  out.rows = rows;
  out.cols = cols;
  out.padded_cols = padded_cols;
  out.global_scale = rule.global_scale;
  out.global_amax = global_amax;
  out.codes.assign(static_cast<size_t>(rows * padded_cols / 2), 0);
  out.block_scales.assign(static_cast<size_t>(rows * blocks_per_row), 0);
  out.chosen_candidate.assign(out.block_scales.size(), 0);

  const Partition partition{static_cast<uint64_t>(rows),
                            static_cast<uint64_t>(std::max<int64_t>(1, kBlocksPerTask /
                                                                           blocks_per_row))};
  ParallelFor(pool, partition.NumTasks(), [&](uint64_t task, size_t) {
    for (uint64_t r = partition.Begin(task); r < partition.End(task); ++r) {
      const int64_t row = static_cast<int64_t>(r);
      for (int64_t b = 0; b < blocks_per_row; ++b) {
        float block[16] = {};  // zero padding past cols, as QuantizeNvfp4
        const int64_t c0 = b * kNvfp4BlockSize;
        const int64_t width = std::min(kNvfp4BlockSize, cols - c0);
        std::copy_n(w.data() + row * cols + c0, width, block);
        uint8_t codes[16];
        const int64_t index = row * blocks_per_row + b;
        out.block_scales[index] = calib::ChooseNvfp4BlockScale(
            block, h.Block(b), rule, codes, &out.chosen_candidate[index]);
        for (int k = 0; k < 8; ++k) {
          out.codes[index * 8 + k] = static_cast<uint8_t>(codes[2 * k] | (codes[2 * k + 1] << 4));
        }
      }
    }
  });
  return out;
}

}  // namespace qf
