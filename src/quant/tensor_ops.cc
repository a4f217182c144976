// TensorAmax and ToFloat (quantize.h): validation, fixed-chunk threading, and dispatch to the
// Highway scans of src/kernels/amax.h.
//
// Both scan the tensor in chunks of kScanChunkElements (a size that depends only on the data);
// the per-chunk maxima are combined in chunk order, so the result is the same for any thread
// count (max is exact anyway). A NaN or Inf is reported by its first flat index: the kernels only
// flag a chunk, and the first flagged chunk is rescanned element by element.
#include "src/quant/tensor_ops.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "quantforge/error.h"
#include "quantforge/formats.h"
#include "quantforge/quantize.h"
#include "src/kernels/amax.h"

namespace qf {
namespace {

ErrorContext Where(const TensorView& tensor) {
  return ErrorContext{{}, std::string(tensor.name), {}};
}

const uint16_t* Bits16(const TensorView& tensor) {
  return reinterpret_cast<const uint16_t*>(tensor.data.data());
}
const float* Floats(const TensorView& tensor) {
  return reinterpret_cast<const float*>(tensor.data.data());
}

// Element i as F32, exact (scalar; used for error reports only).
float ElementAt(const TensorView& tensor, int64_t i) {
  switch (tensor.dtype) {
    case DType::kF32: {
      float v;
      std::memcpy(&v, tensor.data.data() + i * 4, 4);
      return v;
    }
    case DType::kBF16: {
      uint16_t b;
      std::memcpy(&b, tensor.data.data() + i * 2, 2);
      return DecodeBF16(b);
    }
    default: {
      uint16_t b;
      std::memcpy(&b, tensor.data.data() + i * 2, 2);
      return DecodeFP16(b);
    }
  }
}

}  // namespace

AmaxResult ElementsAmax(const TensorView& tensor, int64_t begin, int64_t count) {
  const size_t n = static_cast<size_t>(count);
  switch (tensor.dtype) {
    case DType::kF32:
      return AmaxF32({Floats(tensor) + begin, n});
    case DType::kBF16:
      return AmaxBF16({Bits16(tensor) + begin, n});
    default:
      return AmaxF16({Bits16(tensor) + begin, n});
  }
}

namespace {

[[noreturn]] void ThrowNonFinite(const TensorView& tensor, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float v = ElementAt(tensor, i);
    if (!std::isfinite(v)) {
      throw Error("element " + std::to_string(i) + " is " +
                      (std::isnan(v) ? std::string("NaN") : (v > 0 ? "+Inf" : "-Inf")) +
                      "; expected finite values (" + std::string(DTypeName(tensor.dtype)) + ")",
                  Where(tensor));
    }
  }
  QF_CHECK(false);  // the kernel flagged this chunk, so some element is not finite
}

}  // namespace

void CheckQuantizableView(const TensorView& tensor) {
  if (tensor.dtype != DType::kF32 && tensor.dtype != DType::kBF16 && tensor.dtype != DType::kF16) {
    throw Error("dtype " + std::string(DTypeName(tensor.dtype)) +
                    " cannot be quantized; expected F32, BF16 or F16",
                Where(tensor));
  }
  const int64_t num_elements = tensor.NumElements();
  const uint64_t expected_bytes = static_cast<uint64_t>(num_elements) * DTypeSize(tensor.dtype);
  if (tensor.data.size() != expected_bytes) {
    throw Error("data holds " + std::to_string(tensor.data.size()) + " bytes; expected " +
                    std::to_string(expected_bytes) + " for its shape",
                Where(tensor));
  }
  if (num_elements == 0) throw Error("has no elements", Where(tensor));
}

void WidenElements(const TensorView& tensor, int64_t begin, std::span<float> out) {
  switch (tensor.dtype) {
    case DType::kF32:
      std::memcpy(out.data(), Floats(tensor) + begin, out.size() * sizeof(float));
      return;
    case DType::kBF16:
      WidenBF16({Bits16(tensor) + begin, out.size()}, out);
      return;
    default:
      WidenF16({Bits16(tensor) + begin, out.size()}, out);
      return;
  }
}

float TensorAmax(const TensorView& tensor, ThreadPool* pool) {
  CheckQuantizableView(tensor);
  const Partition partition{static_cast<uint64_t>(tensor.NumElements()),
                            static_cast<uint64_t>(kScanChunkElements)};
  std::vector<AmaxResult> partial(partition.NumTasks());
  ParallelFor(pool, partition.NumTasks(), [&](uint64_t task, size_t) {
    partial[task] = ElementsAmax(tensor, static_cast<int64_t>(partition.Begin(task)),
                                 static_cast<int64_t>(partition.End(task) - partition.Begin(task)));
  });
  float amax = 0.0f;
  for (uint64_t task = 0; task < partition.NumTasks(); ++task) {
    if (!partial[task].all_finite) {
      ThrowNonFinite(tensor, static_cast<int64_t>(partition.Begin(task)),
                     static_cast<int64_t>(partition.End(task)));
    }
    if (partial[task].amax > amax) amax = partial[task].amax;
  }
  return amax;
}

std::vector<float> ToFloat(const TensorView& tensor, ThreadPool* pool) {
  // Validates like TensorAmax (callers get the same error for NaN / Inf / empty inputs).
  TensorAmax(tensor, pool);
  std::vector<float> out(static_cast<size_t>(tensor.NumElements()));
  const Partition partition{out.size(), static_cast<uint64_t>(kScanChunkElements)};
  ParallelFor(pool, partition.NumTasks(), [&](uint64_t task, size_t) {
    const uint64_t begin = partition.Begin(task);
    WidenElements(tensor, static_cast<int64_t>(begin),
                  std::span<float>(out).subspan(begin, partition.End(task) - begin));
  });
  return out;
}

}  // namespace qf
