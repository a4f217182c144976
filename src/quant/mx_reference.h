// Scalar MXFP4 / MXFP8 reference: the specification the vectorized quantizer (mx.cc, kernels in
// src/kernels/mx-inl.h) must equal byte for byte. Plain loops, written from OCP MX v1.0 section
// 6.3 and from Model Optimizer's qtensor/mxfp4_tensor.py and mxfp8_tensor.py; it shares no code
// with the kernels (exponents via std::frexp, elements via the qf::Encode* codecs and a division).
#pragma once

#include <cstdint>
#include <span>

#include "quantforge/quantize.h"

namespace qf {

// The shared exponent e of a block (scale 2^e, stored as e + 127), see docs/FORMATS.md.
int ReferenceMxSharedExponent(float amax, MxElement element, MxScaleRule rule);

// Model Optimizer's MXFP4 element cast: the magnitude code counts the bounds
// {0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5} strictly below |x| (ties round down); sign bit = !(x > 0).
uint8_t ReferenceModelOptMxfp4Element(float x);

// values: rows * cols finite floats, row-major. Single-threaded, no validation.
MxTensor ReferenceQuantizeMx(std::span<const float> values, int64_t rows, int64_t cols,
                             MxElement element, MxScaleRule rule);
void ReferenceDequantizeMx(const MxTensor& tensor, std::span<float> out);

}  // namespace qf
