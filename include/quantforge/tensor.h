// Element types and a non-owning view of a dense row-major tensor.
//
// DType names are safetensors' dtype strings ("F32", "BF16", "F8_E4M3", ...), so the checkpoint
// layer and the numerics share one vocabulary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace qf {

enum class DType : uint8_t {
  kF64,
  kF32,
  kF16,
  kBF16,
  kF8E4M3,
  kF8E5M2,
  kU8,
  kI8,
  kI16,
  kI32,
  kI64,
  kBool,
};

size_t DTypeSize(DType dtype);                         // bytes per element
std::string_view DTypeName(DType dtype);               // safetensors spelling, e.g. "BF16"
std::optional<DType> ParseDType(std::string_view name);  // inverse of DTypeName

using Shape = std::vector<int64_t>;

// Product of the dimensions; 1 for a 0-d (scalar) shape. Throws qf::Error on a negative
// dimension or on overflow of int64.
int64_t NumElements(const Shape& shape);

struct TensorView {
  DType dtype = DType::kF32;
  Shape shape;
  std::span<const std::byte> data;  // NumElements(shape) * DTypeSize(dtype) bytes
  std::string_view name;            // for error messages; may be empty

  int64_t NumElements() const { return qf::NumElements(shape); }
  // Length of the last dimension (1 for a 0-d tensor) and the product of the others: the 2-D view
  // [rows, cols] every block quantizer works on.
  int64_t Cols() const { return shape.empty() ? 1 : shape.back(); }
  int64_t Rows() const;
};

TensorView MakeView(std::span<const float> values, Shape shape, std::string_view name = {});
TensorView MakeView(std::span<const uint16_t> bf16_bits, Shape shape, std::string_view name = {});

}  // namespace qf
