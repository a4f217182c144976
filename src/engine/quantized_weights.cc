// OpenQuantizedCheckpoint: a WeightSource over a quantized export that hands the model F32
// weights, dequantized with the quant layer's decoders (quantize.h), so the simulated weights are
// bit for bit what the checkpoint stores. Per format (docs/EXPORT.md has the layouts):
//   NVFP4  e2m1(code) * e4m3(weight_scale) * global, global = weight_scale_2 (modelopt) or
//          1 / weight_global_scale in F32 (compressed-tensors; vLLM inverts it so at load)
//   FP8    e4m3(code) * weight_scale (one F32, or one per output row)
//   MX     element * 2^(e8m0 - 127) per 32 (MXFP8: E4M3 elements, MXFP4: packed E2M1)
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <span>

#include "quantforge/error.h"
#include "quantforge/eval.h"
#include "quantforge/formats.h"
#include "quantforge/quantize.h"
#include "src/engine/quantized_internal.h"

namespace qf {
namespace {

std::string ShapeString(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Block scales as the serving kernels read them: E4M3 with the sign bit clear (NVFP4), E8M0
// other than its NaN code 0xFF (MX). Anything else would silently give NaN or sign-flipped
// weights, so it is refused naming the tensor and the index.
void CheckBlockScales(std::span<const uint8_t> scales, bool e8m0, const ErrorContext& where) {
  for (size_t i = 0; i < scales.size(); ++i) {
    const uint8_t c = scales[i];
    // -0 (0x80) is let through: like +0 it only scales an all-zero block.
    if (e8m0 ? c != 0xFF : ((c & 0x80) == 0 || c == 0x80) && c != 0x7F) continue;
    char code[8];
    std::snprintf(code, sizeof code, "0x%02X", c);
    throw Error("block scale " + std::to_string(i) + " is " + (e8m0 ? "E8M0 " : "E4M3 ") + code +
                    (e8m0 ? " (NaN)" : " (negative or NaN; expected a positive E4M3 or zero)"),
                where);
  }
}

class QuantizedWeights final : public WeightSource {
 public:
  QuantizedWeights(Checkpoint ckpt, QuantizationScheme scheme, ThreadPool* pool)
      : ckpt_(std::move(ckpt)), scheme_(std::move(scheme)), pool_(pool) {}

  std::optional<TensorView> Find(std::string_view name) const override {
    if (name.ends_with(".weight")) {
      const std::string module(name.substr(0, name.size() - 7));
      const auto it = scheme_.linears.find(module);
      if (it != scheme_.linears.end()) return Dequantized(module, it->second);
    }
    const TensorInfo* info = ckpt_.Find(name);
    if (info == nullptr) return std::nullopt;
    return ckpt_.View(*info);
  }
  std::string Describe() const override { return ckpt_.Directory().string(); }

 private:
  struct Owned {
    Shape shape;
    std::vector<float> values;
  };

  // The tensor `name` with `dtype` and `shape`, as raw bytes (copied: the quantizer structs own
  // their codes).
  ByteBuffer Bytes(const std::string& name, DType dtype, const Shape& shape) const {
    const TensorInfo* info = ckpt_.Find(name);
    if (info == nullptr) throw Error("missing tensor", {Describe(), name});
    if (info->dtype != dtype || info->shape != shape) {
      throw Error("expected " + std::string(DTypeName(dtype)) + " " + ShapeString(shape) +
                      ", found " + std::string(DTypeName(info->dtype)) + " " +
                      ShapeString(info->shape),
                  {Describe(), name});
    }
    const TensorView view = ckpt_.View(*info);
    const auto* begin = reinterpret_cast<const uint8_t*>(view.data.data());
    return ByteBuffer(begin, begin + view.data.size());
  }

  const TensorInfo& Info(const std::string& name) const {
    const TensorInfo* info = ckpt_.Find(name);
    if (info == nullptr) throw Error("missing tensor", {Describe(), name});
    if (info->shape.size() != 2) {
      throw Error("expected a 2-D tensor, found " + ShapeString(info->shape), {Describe(), name});
    }
    return *info;
  }

  std::vector<float> Decode(const std::string& module, const LinearQuantization& q,
                            Shape& shape) const {
    const bool ct = scheme_.layout == "compressed-tensors";
    const std::string scale_name = module + ".weight_scale";
    std::vector<float> out;
    switch (q.weight) {
      case StoredWeightFormat::kNvfp4: {
        const std::string codes_name = module + (ct ? ".weight_packed" : ".weight");
        const TensorInfo& codes = Info(codes_name);
        const int64_t rows = codes.shape[0], cols = codes.shape[1] * 2;
        if (cols % kNvfp4BlockSize != 0) {
          throw Error("NVFP4 in_features " + std::to_string(cols) + " not a multiple of 16",
                      {Describe(), codes_name});
        }
        Nvfp4Tensor t;
        t.rows = rows;
        t.cols = t.padded_cols = cols;
        t.codes = Bytes(codes_name, DType::kU8, codes.shape);
        t.block_scales = Bytes(scale_name, DType::kF8E4M3, {rows, cols / kNvfp4BlockSize});
        CheckBlockScales(t.block_scales, false, {Describe(), scale_name});
        t.global_scale =
            ct ? 1.0f / engine::ReadPositiveScalar(ckpt_, module + ".weight_global_scale")
               : engine::ReadPositiveScalar(ckpt_, module + ".weight_scale_2");
        shape = {rows, cols};
        out.resize(static_cast<size_t>(rows * cols));
        DequantizeNvfp4(t, out, pool_);
        break;
      }
      case StoredWeightFormat::kFp8PerTensor:
      case StoredWeightFormat::kFp8PerChannel: {
        const std::string codes_name = module + ".weight";
        const TensorInfo& codes = Info(codes_name);
        Fp8Tensor t;
        t.rows = codes.shape[0];
        t.cols = codes.shape[1];
        t.codes = Bytes(codes_name, DType::kF8E4M3, codes.shape);
        const TensorInfo* scale = ckpt_.Find(scale_name);
        const int64_t num_scales = NumElements(scale->shape);
        const bool per_tensor = q.weight == StoredWeightFormat::kFp8PerTensor;
        // F32, or BF16 / F16: compressed-tensors keeps FP8 scales in the model's dtype, and
        // vLLM widens them to F32 exactly.
        const bool f32 = scale->dtype == DType::kF32;
        if ((!f32 && scale->dtype != DType::kBF16 && scale->dtype != DType::kF16) ||
            num_scales != (per_tensor ? 1 : t.rows)) {
          throw Error("expected F32 (or BF16 / F16) with " +
                          std::to_string(per_tensor ? 1 : t.rows) + " elements, found " +
                          std::string(DTypeName(scale->dtype)) + " " + ShapeString(scale->shape),
                      {Describe(), scale_name});
        }
        t.scales.resize(static_cast<size_t>(num_scales));
        const std::byte* raw = ckpt_.View(*scale).data.data();
        for (int64_t i = 0; i < num_scales; ++i) {
          if (f32) {
            std::memcpy(&t.scales[i], raw + 4 * i, 4);
            continue;
          }
          uint16_t bits;
          std::memcpy(&bits, raw + 2 * i, 2);
          t.scales[i] = scale->dtype == DType::kBF16 ? DecodeBF16(bits) : DecodeFP16(bits);
        }
        for (int64_t i = 0; i < num_scales; ++i) {
          if (!(t.scales[i] > 0.0f) || !std::isfinite(t.scales[i])) {
            throw Error("scale " + std::to_string(i) + " is " + std::to_string(t.scales[i]) +
                            " (expected positive and finite)",
                        {Describe(), scale_name});
          }
        }
        shape = codes.shape;
        out.resize(static_cast<size_t>(t.rows * t.cols));
        DequantizeFp8(t, out, pool_);
        break;
      }
      case StoredWeightFormat::kMxfp8:
      case StoredWeightFormat::kMxfp4: {
        const std::string codes_name = module + ".weight";
        const TensorInfo& codes = Info(codes_name);
        const bool fp4 = q.weight == StoredWeightFormat::kMxfp4;
        MxTensor t;
        t.element = fp4 ? MxElement::kE2M1 : MxElement::kE4M3;
        t.rows = codes.shape[0];
        t.cols = t.padded_cols = codes.shape[1] * (fp4 ? 2 : 1);
        if (t.cols % kMxBlockSize != 0) {
          throw Error("MX in_features " + std::to_string(t.cols) + " not a multiple of 32",
                      {Describe(), codes_name});
        }
        t.codes = Bytes(codes_name, fp4 ? DType::kU8 : DType::kF8E4M3, codes.shape);
        t.scales = Bytes(scale_name, DType::kU8, {t.rows, t.cols / kMxBlockSize});
        CheckBlockScales(t.scales, true, {Describe(), scale_name});
        shape = {t.rows, t.cols};
        out.resize(static_cast<size_t>(t.rows * t.cols));
        DequantizeMx(t, out, pool_);
        break;
      }
    }
    return out;
  }

  TensorView Dequantized(const std::string& module, const LinearQuantization& q) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = cache_.find(module);
    if (it == cache_.end()) {
      Owned owned;
      owned.values = Decode(module, q, owned.shape);
      it = cache_.emplace(module, std::move(owned)).first;
    }
    const Owned& o = it->second;
    return TensorView{DType::kF32, o.shape, std::as_bytes(std::span<const float>(o.values)),
                      std::string_view(it->first)};
  }

  Checkpoint ckpt_;
  QuantizationScheme scheme_;
  ThreadPool* pool_;
  mutable std::mutex mutex_;
  mutable std::map<std::string, Owned> cache_;  // map: references stay valid on insertion
};

}  // namespace

QuantizedCheckpoint OpenQuantizedCheckpoint(const std::filesystem::path& dir, ThreadPool* pool) {
  Checkpoint ckpt = Checkpoint::Open(dir);
  QuantizationScheme scheme = engine::ReadScheme(dir, ckpt);
  QuantizedCheckpoint out;
  out.scheme = scheme;
  out.weights = std::make_unique<QuantizedWeights>(std::move(ckpt), std::move(scheme), pool);
  return out;
}

}  // namespace qf
