// QuantizeNvfp4 / DequantizeNvfp4 (quantize.h): validation, the global scale, the candidate set
// of the block-scale search, padding of odd last dimensions, threading, and dispatch to the
// Highway block kernels (src/kernels/nvfp4_kernels.h). The arithmetic is specified by
// nvfp4_reference.cc, which these results equal byte for byte.
//
// Two passes over the input: the amax scan (validation: empty, NaN / Inf with the first index; the
// global amax, which every block scale depends on), then the block kernels. Work is split into
// tasks of kBlocksPerTask blocks (or of whole rows, about kElementsPerRowTask elements, when the
// last dimension needs padding), a size that depends on the shape only, and every block is
// computed on its own, so the bytes do not depend on the thread count.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "quantforge/error.h"
#include "quantforge/formats.h"
#include "quantforge/quantize.h"
#include "src/kernels/nvfp4_bounds.h"
#include "src/kernels/nvfp4_kernels.h"
#include "src/kernels/nvfp4_scale_codes.h"
#include "src/quant/tensor_ops.h"

namespace qf {
namespace {

// Flat runs of whole blocks: 16384 blocks = 256 Ki elements (512 KiB of BF16) per task, few
// enough task starts (each restarts the kernel's prefetch and plan pipeline) and still 2048 tasks
// per GiB to balance. 1 GiB BF16, 2 threads, max, five interleaved A/B runs: 93.3-95.3 ->
// 91.0-91.9 ms against 4096 blocks (65536 blocks or one task per thread gained nothing more).
constexpr int64_t kBlocksPerTask = 16384;
// Row-wise work (padded rows, dequantization): about 64 Ki elements per task, as measured
// before; the row paths were not re-measured with larger tasks.
constexpr int64_t kElementsPerRowTask = 65536;
constexpr int64_t kMaxCandidates = 255;  // chosen_candidate is a byte

ErrorContext Where(const TensorView& tensor) {
  return ErrorContext{{}, std::string(tensor.name), {}};
}

// Sizes the output buffer `v` to n bytes, without writing them (ByteBuffer; the kernels write
// every byte), reusing its capacity. Large fresh blocks come from ByteBuffer's cache of freed
// ones, or else as huge-page-advised memory (byte_buffer.h).
void ResizeOutput(ByteBuffer& v, size_t n) {
  v.clear();  // keeps the capacity; growing it then copies nothing
  v.reserve(n);
  v.resize(n);
}

// Sizes the outputs, then the global amax scan in fixed chunks of kScanChunkElements
// (TensorAmax's). Returns the amax; a NaN / Inf makes TensorAmax rescan and throw its error
// (with the first bad index).
float ScanAndAllocate(const TensorView& tensor, int64_t num_blocks, bool searched,
                      Nvfp4Tensor* out, ThreadPool* pool) {
  ResizeOutput(out->codes, static_cast<size_t>(num_blocks * 8));
  ResizeOutput(out->block_scales, static_cast<size_t>(num_blocks));
  if (searched) ResizeOutput(out->chosen_candidate, static_cast<size_t>(num_blocks));
  const Partition scan{static_cast<uint64_t>(tensor.NumElements()),
                       static_cast<uint64_t>(kScanChunkElements)};
  std::vector<AmaxResult> partial(scan.NumTasks());
  ParallelFor(pool, scan.NumTasks(), [&](uint64_t task, size_t) {
    const uint64_t begin = scan.Begin(task);
    partial[task] = ElementsAmax(tensor, static_cast<int64_t>(begin),
                                 static_cast<int64_t>(scan.End(task) - begin));
  });
  float amax = 0.0f;
  for (const AmaxResult& chunk : partial) {
    if (!chunk.all_finite) return TensorAmax(tensor, nullptr);  // throws, naming the first index
    amax = chunk.amax > amax ? chunk.amax : amax;
  }
  return amax;
}

}  // namespace

std::string_view AlgorithmName(BlockScaleAlgorithm algorithm) {
  switch (algorithm) {
    case BlockScaleAlgorithm::kMax:
      return "max";
    case BlockScaleAlgorithm::kMse:
      return "mse";
    case BlockScaleAlgorithm::kFourOverSix:
      return "four_over_six";
  }
  return "unknown";
}

std::optional<BlockScaleAlgorithm> ParseAlgorithm(std::string_view name) {
  for (const auto algorithm : {BlockScaleAlgorithm::kMax, BlockScaleAlgorithm::kMse,
                               BlockScaleAlgorithm::kFourOverSix}) {
    if (name == AlgorithmName(algorithm)) return algorithm;
  }
  return std::nullopt;
}

// Model Optimizer's candidate sets (calib/mse.py):
//   MseCalibrator: num_steps = ceil((stop - start) / step) + 1 (Python, in double; here in double
//     from the float fields), then torch.linspace(start, stop, num_steps) in float32, whose CPU
//     kernel (aten RangeFactoriesKernel.cpp) computes step = (stop - start) / (num_steps - 1) and
//     start + step * i for i < num_steps / 2, stop - step * (num_steps - 1 - i) above. Defaults
//     0.25 .. 4.0 step 0.1: 39 multipliers. Four-over-six's 1.0 .. 1.5 step 0.5: {1.0, 1.5}.
//   NVFP4MSECalibrator (fp8_scale_sweep, _fp8_scale_candidates.py): the 126 positive finite E4M3
//     values divided by 448 in float32; they multiply the global amax, not the block amax.
std::vector<float> MseMultipliers(const MseSweep& sweep) {
  if (sweep.fp8_scale_sweep) {
    std::vector<float> multipliers;
    for (int code = 1; code <= 0x7E; ++code) {
      multipliers.push_back(DecodeE4M3(static_cast<uint8_t>(code)) / 448.0f);
    }
    return multipliers;
  }
  const float start = sweep.start_multiplier;
  const float stop = sweep.stop_multiplier;
  if (!std::isfinite(start) || !std::isfinite(stop) || !(sweep.step_size > 0.0f) ||
      !(start >= 0.0f) || !(stop >= start)) {
    throw Error("mse sweep start " + std::to_string(start) + ", stop " + std::to_string(stop) +
                ", step " + std::to_string(sweep.step_size) +
                " is invalid; expected 0 <= start <= stop and step > 0");
  }
  const double steps = std::ceil((static_cast<double>(stop) - static_cast<double>(start)) /
                                 static_cast<double>(sweep.step_size)) + 1.0;
  if (steps > static_cast<double>(kMaxCandidates)) {
    throw Error("mse sweep has " + std::to_string(steps) + " candidates; expected at most " +
                std::to_string(kMaxCandidates));
  }
  const int64_t n = static_cast<int64_t>(steps);
  std::vector<float> multipliers(static_cast<size_t>(n));
  if (n == 1) {
    multipliers[0] = start;
    return multipliers;
  }
  const float step = (stop - start) / static_cast<float>(n - 1);
  for (int64_t i = 0; i < n; ++i) {
    multipliers[i] = i < n / 2 ? start + step * static_cast<float>(i)
                               : stop - step * static_cast<float>(n - 1 - i);
  }
  return multipliers;
}

Nvfp4Tensor QuantizeNvfp4(const TensorView& tensor, const Nvfp4Options& options,
                          ThreadPool* pool) {
  Nvfp4Tensor out;
  QuantizeNvfp4Into(tensor, options, &out, pool);
  return out;
}

void QuantizeNvfp4Into(const TensorView& tensor, const Nvfp4Options& options,
                       Nvfp4Tensor* result, ThreadPool* pool) {
  CheckQuantizableView(tensor);  // dtype, size, empty: before sizing anything from the shape
  const int64_t rows = tensor.Rows();
  const int64_t cols = tensor.Cols();
  const int64_t padded_cols = (cols + kNvfp4BlockSize - 1) / kNvfp4BlockSize * kNvfp4BlockSize;
  const int64_t blocks_per_row = padded_cols / kNvfp4BlockSize;
  const int64_t num_blocks = rows * blocks_per_row;
  const BlockScaleAlgorithm algorithm = options.algorithm;
  const bool searched = algorithm != BlockScaleAlgorithm::kMax;
  Nvfp4Tensor& out = *result;
  // The shape first, so that the buffers sized below always match it (also after an error).
  out.rows = rows;
  out.cols = cols;
  out.padded_cols = padded_cols;
  if (!searched) out.chosen_candidate.clear();
  const float own_amax = ScanAndAllocate(tensor, num_blocks, searched, &out, pool);
  float global_amax = own_amax;
  if (options.global_amax) {
    global_amax = *options.global_amax;
    if (!std::isfinite(global_amax) || global_amax < own_amax) {
      throw Error("global_amax override " + std::to_string(global_amax) +
                      " is below the tensor's own amax " + std::to_string(own_amax) +
                      " (or not finite); expected the max over the fused group",
                  Where(tensor));
    }
  }

  // Scale constants, as in nvfp4_reference.cc (the spec; see its sources).
  const bool is_static = algorithm != BlockScaleAlgorithm::kMax || options.static_block_scales;
  const bool four_over_six =
      algorithm == BlockScaleAlgorithm::kFourOverSix || options.four_over_six_normalization;
  const float norm = four_over_six ? kNvfp4Fp8NormFourOverSix : kNvfp4Fp8Norm;
  const float g = global_amax == 0.0f ? 1.0f : global_amax / (6.0f * norm);

  std::vector<float> candidates{1.0f};
  Nvfp4KernelParams params;
  params.dynamic_scales = !is_static;
  params.global_scale = g;
  params.six_global_scale = 6.0f * g;
  params.global_amax_over_6 = global_amax / 6.0f;
  params.norm = norm;
  if (algorithm == BlockScaleAlgorithm::kMse) {
    candidates = MseMultipliers(options.mse);
    if (options.mse.fp8_scale_sweep) {
      for (float& c : candidates) c = global_amax * c;
      params.candidates_are_amax = true;
    }
  } else if (algorithm == BlockScaleAlgorithm::kFourOverSix) {
    candidates = MseMultipliers(MseSweep{1.0f, 1.5f, 0.5f, false});
  }
  params.candidates = candidates;
  // BF16 whole blocks: the division-free kernels' decision bounds, when g allows them.
  // With them and at most two candidates (max, four_over_six, short mse sweeps), the
  // block-scale codes by block amax up to the tensor's own amax (exact in BF16: it is one of
  // the elements).
  // Both tables live on the heap (64 KiB each): callers may be pool threads.
  std::unique_ptr<Nvfp4DecisionTable> bf16_table;
  std::unique_ptr<Nvfp4ScaleCodeTable> bf16_scale_codes;
  if (tensor.dtype == DType::kBF16 && cols % kNvfp4BlockSize == 0) {
    bf16_table = std::make_unique<Nvfp4DecisionTable>();
    if (!bf16_table->Build(g)) bf16_table.reset();
  }
  if (bf16_table != nullptr) {
    params.bf16_table = bf16_table.get();
    if (candidates.size() <= Nvfp4ScaleCodeTable::kMaxCandidates) {
      bf16_scale_codes = std::make_unique<Nvfp4ScaleCodeTable>();
      BuildNvfp4ScaleCodes(params, static_cast<uint16_t>(std::bit_cast<uint32_t>(own_amax) >> 16),
                           bf16_scale_codes.get());
      params.bf16_scale_codes = bf16_scale_codes.get();
    }
  }

  out.global_scale = g;
  out.global_amax = global_amax;

  const std::span<uint8_t> codes(out.codes);
  const std::span<uint8_t> scales(out.block_scales);
  const std::span<uint8_t> chosen(out.chosen_candidate);
  auto run_f32 = [&](std::span<const float> in, int64_t first_block, int64_t n) {
    QuantizeNvfp4BlocksF32(in, params, codes.subspan(first_block * 8, n * 8),
                           scales.subspan(first_block, n),
                           searched ? chosen.subspan(first_block, n) : std::span<uint8_t>());
  };
  std::vector<std::vector<float>> scratch(pool != nullptr ? pool->NumWorkers() : 1);

  if (cols % kNvfp4BlockSize == 0) {
    // Whole blocks: the tensor is one flat run of blocks.
    const Partition partition{static_cast<uint64_t>(num_blocks), kBlocksPerTask};
    ParallelFor(pool, partition.NumTasks(), [&](uint64_t task, size_t worker) {
      const int64_t begin = static_cast<int64_t>(partition.Begin(task));
      const int64_t n = static_cast<int64_t>(partition.End(task)) - begin;
      const auto* bytes = tensor.data.data();
      if (tensor.dtype == DType::kF32) {
        run_f32({reinterpret_cast<const float*>(bytes) + begin * 16, static_cast<size_t>(n * 16)},
                begin, n);
      } else if (tensor.dtype == DType::kBF16) {
        QuantizeNvfp4BlocksBF16(
            {reinterpret_cast<const uint16_t*>(bytes) + begin * 16, static_cast<size_t>(n * 16)},
            params, codes.subspan(begin * 8, n * 8), scales.subspan(begin, n),
            searched ? chosen.subspan(begin, n) : std::span<uint8_t>());
      } else {  // F16: widen exactly, then the F32 kernel
        std::vector<float>& buffer = scratch[worker];
        buffer.resize(static_cast<size_t>(n * 16));
        WidenElements(tensor, begin * 16, buffer);
        run_f32(buffer, begin, n);
      }
    });
    return;
  }

  // A last dimension that is not a multiple of 16: each row is widened into a zero-padded
  // buffer (Model Optimizer's reduce_block_padding), whole rows per task.
  const uint64_t rows_per_task =
      std::max<uint64_t>(1, static_cast<uint64_t>(kElementsPerRowTask / padded_cols));
  const Partition partition{static_cast<uint64_t>(rows), rows_per_task};
  ParallelFor(pool, partition.NumTasks(), [&](uint64_t task, size_t worker) {
    std::vector<float>& buffer = scratch[worker];
    buffer.assign(static_cast<size_t>(padded_cols), 0.0f);
    for (uint64_t r = partition.Begin(task); r < partition.End(task); ++r) {
      const int64_t row = static_cast<int64_t>(r);
      WidenElements(tensor, row * cols, std::span<float>(buffer).first(cols));
      run_f32(buffer, row * blocks_per_row, blocks_per_row);
    }
  });
}

void DequantizeNvfp4(const Nvfp4Tensor& tensor, std::span<float> out, ThreadPool* pool) {
  QF_CHECK(static_cast<int64_t>(out.size()) == tensor.rows * tensor.cols);
  const int64_t blocks_per_row = tensor.padded_cols / kNvfp4BlockSize;
  QF_CHECK(static_cast<int64_t>(tensor.codes.size()) == tensor.rows * tensor.padded_cols / 2);
  QF_CHECK(static_cast<int64_t>(tensor.block_scales.size()) == tensor.rows * blocks_per_row);
  float e2m1[16];
  for (int c = 0; c < 16; ++c) e2m1[c] = DecodeE2M1(static_cast<uint8_t>(c));
  const float g = tensor.global_scale;
  const uint64_t rows_per_task = std::max<uint64_t>(
      1, static_cast<uint64_t>(kElementsPerRowTask / std::max<int64_t>(1, tensor.padded_cols)));
  const Partition partition{static_cast<uint64_t>(tensor.rows), rows_per_task};
  ParallelFor(pool, partition.NumTasks(), [&](uint64_t task, size_t) {
    for (uint64_t r = partition.Begin(task); r < partition.End(task); ++r) {
      const uint8_t* row_codes = tensor.codes.data() + r * tensor.padded_cols / 2;
      const uint8_t* row_scales = tensor.block_scales.data() + r * blocks_per_row;
      float* row_out = out.data() + r * tensor.cols;
      for (int64_t c = 0; c < tensor.cols; ++c) {
        const uint8_t byte = row_codes[c / 2];
        const float q = e2m1[(c % 2 == 0) ? (byte & 0xF) : (byte >> 4)];
        row_out[c] = (q * DecodeE4M3(row_scales[c / kNvfp4BlockSize])) * g;
      }
    }
  });
}

}  // namespace qf
