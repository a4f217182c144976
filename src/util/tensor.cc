// DType table and TensorView helpers.
#include "quantforge/tensor.h"

#include <array>
#include <limits>
#include <string>

#include "quantforge/error.h"

namespace qf {
namespace {

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  size_t size;
};

// One row per dtype: the table is the single source of names and sizes.
constexpr std::array<DTypeInfo, 12> kDTypes = {{
    {DType::kF64, "F64", 8},
    {DType::kF32, "F32", 4},
    {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2},
    {DType::kF8E4M3, "F8_E4M3", 1},
    {DType::kF8E5M2, "F8_E5M2", 1},
    {DType::kU8, "U8", 1},
    {DType::kI8, "I8", 1},
    {DType::kI16, "I16", 2},
    {DType::kI32, "I32", 4},
    {DType::kI64, "I64", 8},
    {DType::kBool, "BOOL", 1},
}};

const DTypeInfo& Info(DType dtype) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.dtype == dtype) return info;
  }
  QF_CHECK(false);
  return kDTypes[0];
}

}  // namespace

size_t DTypeSize(DType dtype) { return Info(dtype).size; }
std::string_view DTypeName(DType dtype) { return Info(dtype).name; }

std::optional<DType> ParseDType(std::string_view name) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.name == name) return info.dtype;
  }
  return std::nullopt;
}

int64_t NumElements(const Shape& shape) {
  int64_t count = 1;
  for (int64_t dim : shape) {
    if (dim < 0) throw Error("negative dimension " + std::to_string(dim) + " in shape");
    if (dim != 0 && count > std::numeric_limits<int64_t>::max() / dim) {
      throw Error("shape has more than 2^63 elements");
    }
    count *= dim;
  }
  return count;
}

int64_t TensorView::Rows() const {
  const int64_t cols = Cols();
  return cols == 0 ? 0 : NumElements() / cols;
}

TensorView MakeView(std::span<const float> values, Shape shape, std::string_view name) {
  return TensorView{DType::kF32, std::move(shape), std::as_bytes(values), name};
}

TensorView MakeView(std::span<const uint16_t> bf16_bits, Shape shape, std::string_view name) {
  return TensorView{DType::kBF16, std::move(shape), std::as_bytes(bf16_bits), name};
}

}  // namespace qf
