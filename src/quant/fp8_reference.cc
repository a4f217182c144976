// Scalar FP8 E4M3 reference (see fp8_reference.h and docs/FORMATS.md, "FP8 per-tensor and
// per-channel").
#include "src/quant/fp8_reference.h"

#include <algorithm>
#include <cmath>

#include "quantforge/formats.h"

namespace qf {

float ReferenceFp8Scale(float amax) {
  const float scale = amax / kE4M3Max;
  return scale == 0.0f ? 1.0f : scale;
}

Fp8Tensor ReferenceQuantizeFp8(std::span<const float> values, int64_t rows, int64_t cols,
                               Fp8Granularity granularity, std::optional<float> amax) {
  Fp8Tensor t;
  t.rows = rows;
  t.cols = cols;
  t.codes.resize(values.size());
  const bool per_channel = granularity == Fp8Granularity::kPerChannel;
  const int64_t num_groups = per_channel ? rows : 1;
  const int64_t group_size = per_channel ? cols : rows * cols;
  for (int64_t g = 0; g < num_groups; ++g) {
    float group_amax = 0.0f;
    for (int64_t i = 0; i < group_size; ++i) {
      group_amax = std::max(group_amax, std::fabs(values[g * group_size + i]));
    }
    const float scale = ReferenceFp8Scale(amax.value_or(group_amax));
    t.scales.push_back(scale);
    for (int64_t i = 0; i < group_size; ++i) {
      t.codes[g * group_size + i] = EncodeE4M3(values[g * group_size + i] / scale);
    }
  }
  return t;
}

void ReferenceDequantizeFp8(const Fp8Tensor& t, std::span<float> out) {
  for (int64_t i = 0; i < t.rows * t.cols; ++i) {
    const float scale = t.scales.size() == 1 ? t.scales[0] : t.scales[i / t.cols];
    out[i] = DecodeE4M3(t.codes[i]) * scale;
  }
}

}  // namespace qf
