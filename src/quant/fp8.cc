// QuantizeFp8 / DequantizeFp8 (quantize.h): FP8 E4M3 with one binary32 scale per tensor or per
// row (axis 0), as Model Optimizer exports FP8 weights: weight_scale = amax / 448 and
// q = e4m3(W / weight_scale) with a true division. Encoding saturates at +-448 (ModelOpt's export
// does not clamp, and torch's cast would give NaN from 464 up; with the tensor's own amax no
// value exceeds 448 anyway, only a smaller amax override can get there). A scale of 0 (amax 0,
// or amax < 448 * 2^-150 so the quotient underflows) becomes 1.0.
//
// Validation, fixed-size tasks (element chunks per tensor, row groups per channel) and dispatch
// to src/kernels/fp8_kernels.h; fp8_reference.cc is the scalar twin.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <vector>

#include "quantforge/error.h"
#include "quantforge/quantize.h"
#include "src/kernels/fp8_kernels.h"
#include "src/quant/tensor_ops.h"

namespace qf {
namespace {

float Fp8Scale(float amax) {
  const float scale = amax / 448.0f;
  return scale == 0.0f ? 1.0f : scale;
}

uint64_t RowsPerTask(int64_t cols) {
  return static_cast<uint64_t>(
      std::max<int64_t>(1, kScanChunkElements / std::max<int64_t>(cols, 1)));
}

}  // namespace

Fp8Tensor QuantizeFp8(const TensorView& tensor, Fp8Granularity granularity,
                      std::optional<float> amax, ThreadPool* pool) {
  CheckQuantizableView(tensor);
  if (amax && !(std::isfinite(*amax) && *amax >= 0.0f)) {
    throw Error("amax override is " + std::to_string(*amax) + "; expected a finite value >= 0",
                ErrorContext{{}, std::string(tensor.name), {}});
  }
  Fp8Tensor t;
  t.rows = tensor.Rows();
  t.cols = tensor.Cols();
  t.codes.resize(static_cast<size_t>(t.rows * t.cols));
  const size_t num_workers = pool ? pool->NumWorkers() : 1;
  std::vector<std::vector<float>> scratch(num_workers);

  if (granularity == Fp8Granularity::kPerTensor) {
    // TensorAmax also validates (NaN / Inf) when an override makes the amax itself unnecessary.
    const float tensor_amax = TensorAmax(tensor, pool);
    const float scale = Fp8Scale(amax.value_or(tensor_amax));
    t.scales = {scale};
    const Partition partition{t.codes.size(), static_cast<uint64_t>(kScanChunkElements)};
    ParallelFor(pool, partition.NumTasks(), [&](uint64_t task, size_t worker) {
      const uint64_t begin = partition.Begin(task), n = partition.End(task) - begin;
      std::vector<float>& values = scratch[worker];
      values.resize(n);
      WidenElements(tensor, static_cast<int64_t>(begin), values);
      QuantizeFp8Row(values, scale, std::span<uint8_t>(t.codes).subspan(begin, n));
    });
    return t;
  }

  // Per channel: a row's amax is taken straight from the source data, then the row is widened
  // and quantized in pieces of at most kScanChunkElements, so scratch stays small for long rows.
  t.scales.resize(static_cast<size_t>(t.rows));
  std::atomic<bool> non_finite{false};
  const Partition partition{static_cast<uint64_t>(t.rows), RowsPerTask(t.cols)};
  ParallelFor(pool, partition.NumTasks(), [&](uint64_t task, size_t worker) {
    std::vector<float>& values = scratch[worker];
    for (uint64_t r = partition.Begin(task); r < partition.End(task); ++r) {
      const int64_t row_begin = static_cast<int64_t>(r) * t.cols;
      const AmaxResult row_amax = ElementsAmax(tensor, row_begin, t.cols);
      if (!row_amax.all_finite) {
        non_finite.store(true, std::memory_order_relaxed);
        continue;
      }
      t.scales[r] = Fp8Scale(amax.value_or(row_amax.amax));
      for (int64_t c = 0; c < t.cols; c += kScanChunkElements) {
        const int64_t n = std::min(kScanChunkElements, t.cols - c);
        values.resize(n);
        WidenElements(tensor, row_begin + c, values);
        QuantizeFp8Row(values, t.scales[r], std::span<uint8_t>(t.codes).subspan(row_begin + c, n));
      }
    }
  });
  if (non_finite.load()) {
    TensorAmax(tensor);  // throws, naming the first NaN / Inf element
    QF_CHECK(false);
  }
  return t;
}

void DequantizeFp8(const Fp8Tensor& t, std::span<float> out, ThreadPool* pool) {
  const size_t num_elements = static_cast<size_t>(t.rows * t.cols);
  const bool per_tensor = t.scales.size() == 1 && t.rows != 1;
  if (t.rows < 0 || t.cols < 0 || t.codes.size() != num_elements ||
      !(t.scales.size() == 1 || t.scales.size() == static_cast<size_t>(t.rows))) {
    throw Error("FP8 tensor is inconsistent: " + std::to_string(t.rows) + " x " +
                std::to_string(t.cols) + " with " + std::to_string(t.codes.size()) + " codes and " +
                std::to_string(t.scales.size()) + " scales");
  }
  if (out.size() != num_elements) {
    throw Error("dequantize output holds " + std::to_string(out.size()) + " floats; expected " +
                std::to_string(num_elements));
  }
  if (per_tensor || t.rows == 1) {
    const Partition partition{num_elements, static_cast<uint64_t>(kScanChunkElements)};
    ParallelFor(pool, partition.NumTasks(), [&](uint64_t task, size_t) {
      const uint64_t begin = partition.Begin(task), n = partition.End(task) - begin;
      DequantizeFp8Row(std::span<const uint8_t>(t.codes).subspan(begin, n), t.scales[0],
                       out.subspan(begin, n));
    });
    return;
  }
  const Partition partition{static_cast<uint64_t>(t.rows), RowsPerTask(t.cols)};
  ParallelFor(pool, partition.NumTasks(), [&](uint64_t task, size_t) {
    for (uint64_t r = partition.Begin(task); r < partition.End(task); ++r) {
      DequantizeFp8Row(std::span<const uint8_t>(t.codes).subspan(r * t.cols, t.cols), t.scales[r],
                       out.subspan(r * t.cols, t.cols));
    }
  });
}

}  // namespace qf
