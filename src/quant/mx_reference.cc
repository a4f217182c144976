// Scalar MXFP4 / MXFP8 reference (see mx_reference.h and docs/FORMATS.md, "MXFP4 and MXFP8").
#include "src/quant/mx_reference.h"

#include <algorithm>
#include <cmath>

#include "quantforge/formats.h"

namespace qf {
namespace {

float ElementMax(MxElement element) { return element == MxElement::kE2M1 ? kE2M1Max : kE4M3Max; }
// emax_elem of OCP MX v1.0 Table 1: the exponent of the largest normal element (6 = 1.5 * 2^2,
// 448 = 1.75 * 2^8).
int ElementEmax(MxElement element) { return element == MxElement::kE2M1 ? 2 : 8; }

}  // namespace

int ReferenceMxSharedExponent(float amax, MxElement element, MxScaleRule rule) {
  int e;
  if (rule == MxScaleRule::kOcpFloor) {
    if (amax == 0.0f) return -127;  // log2(0) = -inf: below E8M0's range, the smallest scale
    int p;
    std::frexp(amax, &p);  // amax = m * 2^p, 0.5 <= m < 1, exact
    e = (p - 1) - ElementEmax(element);
  } else {
    const float descale = amax / ElementMax(element);  // binary32, as Model Optimizer computes it
    if (descale == 0.0f) return -127;
    int p;
    const float m = std::frexp(descale, &p);
    e = (m == 0.5f) ? p - 1 : p;  // ceil(log2(descale)), exact
  }
  return std::clamp(e, -127, 127);
}

uint8_t ReferenceModelOptMxfp4Element(float x) {
  static constexpr float kBounds[7] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
  uint8_t code = 0;
  for (float bound : kBounds) code += std::fabs(x) > bound ? 1 : 0;
  return static_cast<uint8_t>((x > 0.0f ? 0 : 0x8) | code);
}

MxTensor ReferenceQuantizeMx(std::span<const float> values, int64_t rows, int64_t cols,
                             MxElement element, MxScaleRule rule) {
  MxTensor t;
  t.element = element;
  t.rows = rows;
  t.cols = cols;
  t.padded_cols = (cols + kMxBlockSize - 1) / kMxBlockSize * kMxBlockSize;
  const int64_t num_blocks = t.padded_cols / kMxBlockSize;
  const bool e2m1 = element == MxElement::kE2M1;
  t.codes.assign(rows * (e2m1 ? t.padded_cols / 2 : t.padded_cols), 0);
  t.scales.assign(rows * num_blocks, 0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < num_blocks; ++b) {
      float block[kMxBlockSize];
      float amax = 0.0f;
      for (int64_t j = 0; j < kMxBlockSize; ++j) {
        const int64_t c = b * kMxBlockSize + j;
        block[j] = c < cols ? values[r * cols + c] : 0.0f;  // zero padding
        amax = std::max(amax, std::fabs(block[j]));
      }
      const int e = ReferenceMxSharedExponent(amax, element, rule);
      t.scales[r * num_blocks + b] = E8M0FromExponent(e);
      const float scale = std::ldexp(1.0f, e);
      for (int64_t j = 0; j < kMxBlockSize; ++j) {
        const float q = block[j] / scale;
        const int64_t c = b * kMxBlockSize + j;
        if (!e2m1) {
          t.codes[r * t.padded_cols + c] = EncodeE4M3(q);
          continue;
        }
        const uint8_t nibble =
            rule == MxScaleRule::kCeil ? ReferenceModelOptMxfp4Element(q) : EncodeE2M1(q);
        t.codes[r * t.padded_cols / 2 + c / 2] |= static_cast<uint8_t>(nibble << (4 * (c % 2)));
      }
    }
  }
  return t;
}

void ReferenceDequantizeMx(const MxTensor& t, std::span<float> out) {
  const int64_t num_blocks = t.padded_cols / kMxBlockSize;
  const bool e2m1 = t.element == MxElement::kE2M1;
  for (int64_t r = 0; r < t.rows; ++r) {
    for (int64_t c = 0; c < t.cols; ++c) {
      const float scale = DecodeE8M0(t.scales[r * num_blocks + c / kMxBlockSize]);
      const float element = e2m1 ? DecodeE2M1(static_cast<uint8_t>(
                                       t.codes[r * t.padded_cols / 2 + c / 2] >> (4 * (c % 2))))
                                 : DecodeE4M3(t.codes[r * t.padded_cols + c]);
      out[r * t.cols + c] = element * scale;
    }
  }
}

}  // namespace qf
