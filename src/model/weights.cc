// Weight loading and widening. BF16 is the upper half of an F32; F16 is decoded exactly
// (every F16 value, subnormals included, is an F32 value).
#include "src/model/weights.h"

#include <cstring>

#include "quantforge/error.h"

namespace qf::model {
namespace {

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1Fu;
  const uint32_t mantissa = h & 0x3FFu;
  uint32_t bits;
  if (exponent == 0x1F) {
    bits = sign | 0x7F800000u | (mantissa << 13);  // Inf / NaN
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);  // 112 = 127 - 15
  } else {
    // Zero or subnormal: mantissa * 2^-24, exact in F32.
    float value = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
    std::memcpy(&bits, &value, 4);
    bits |= sign;
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

std::string ShapeString(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

TensorView FindChecked(const WeightSource& source, const std::string& name, const Shape& shape) {
  const std::optional<TensorView> view = source.Find(name);
  if (!view) throw Error("missing weight tensor", {source.Describe(), name});
  if (view->shape != shape) {
    throw Error("shape " + ShapeString(view->shape) + ", expected " + ShapeString(shape),
                {source.Describe(), name});
  }
  if (view->dtype != DType::kF32 && view->dtype != DType::kBF16 && view->dtype != DType::kF16) {
    throw Error("dtype " + std::string(DTypeName(view->dtype)) +
                    " not supported by the forward pass (expected F32, BF16 or F16)",
                {source.Describe(), name});
  }
  return *view;
}

}  // namespace

void WidenToF32(const TensorView& tensor, float* out) {
  const int64_t n = tensor.NumElements();
  const std::byte* data = tensor.data.data();
  switch (tensor.dtype) {
    case DType::kF32:
      std::memcpy(out, data, static_cast<size_t>(n) * 4);
      break;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, data + 2 * i, 2);
        const uint32_t bits = static_cast<uint32_t>(h) << 16;
        std::memcpy(out + i, &bits, 4);
      }
      break;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, data + 2 * i, 2);
        out[i] = HalfToFloat(h);
      }
      break;
    default:
      QF_CHECK(false);
  }
}

AlignedBuffer<float> LoadF32(const WeightSource& source, const std::string& name,
                             const Shape& shape) {
  const TensorView view = FindChecked(source, name, shape);
  AlignedBuffer<float> out(static_cast<size_t>(view.NumElements()));
  WidenToF32(view, out.data());
  return out;
}

void LoadRowsInto(const WeightSource& source, const std::string& name, const Shape& shape,
                  float* dest, int64_t row_offset) {
  const TensorView view = FindChecked(source, name, shape);
  const int64_t cols = shape.size() > 1 ? shape[1] : 1;
  WidenToF32(view, dest + row_offset * cols);
}

void GatherRowsF32(const WeightSource& source, const std::string& name, const Shape& shape,
                   std::span<const int32_t> rows, float* out) {
  const TensorView view = FindChecked(source, name, shape);
  const int64_t cols = shape[1];
  const size_t row_bytes = static_cast<size_t>(cols) * DTypeSize(view.dtype);
  TensorView row_view{view.dtype, {cols}, {}, view.name};
  for (size_t i = 0; i < rows.size(); ++i) {
    QF_CHECK(rows[i] >= 0 && rows[i] < shape[0]);
    row_view.data = view.data.subspan(static_cast<size_t>(rows[i]) * row_bytes, row_bytes);
    WidenToF32(row_view, out + static_cast<int64_t>(i) * cols);
  }
}

}  // namespace qf::model
