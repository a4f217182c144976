// Per-module tensor layouts of the two export formats: names, dtypes and shapes (LinearLayout,
// KvScaleLayout) and the same tensors filled from a quantized weight (ExportLinear,
// ExportKvScales). The facts each row encodes, with their sources, are in docs/EXPORT.md.
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>

#include "fmt/core.h"
#include "quantforge/error.h"
#include "quantforge/export.h"

namespace qf {
namespace {

// NVFP4 input/global scales are multipliers amax / (E2M1 max * E4M3 max) = amax / 2688
// (Model Optimizer NVFP4QTensor.get_activation_scaling_factor); FP8 ones amax / 448.
constexpr float kNvfp4ScaleDivisor = 6.0f * 448.0f;
constexpr float kFp8ScaleDivisor = 448.0f;

struct AlgoRow {
  QuantAlgo algo;
  std::string_view name;
  int group_size;  // block size along `in`; 0 = no blocks
};
// The one table of quant_algo facts (Model Optimizer quant_utils.process_layer_quant_config).
constexpr AlgoRow kAlgoRows[] = {
    {QuantAlgo::kNvfp4, "NVFP4", 16}, {QuantAlgo::kW4A16Nvfp4, "W4A16_NVFP4", 16},
    {QuantAlgo::kFp8, "FP8", 0},      {QuantAlgo::kFp8PerChannel, "FP8_PER_CHANNEL_PER_TOKEN", 0},
    {QuantAlgo::kMxfp8, "MXFP8", 32}, {QuantAlgo::kMxfp4, "MXFP4", 32},
};

const AlgoRow& Row(QuantAlgo algo) {
  for (const AlgoRow& row : kAlgoRows) {
    if (row.algo == algo) return row;
  }
  QF_CHECK(false);
  return kAlgoRows[0];
}

bool IsNvfp4(QuantAlgo algo) { return algo == QuantAlgo::kNvfp4 || algo == QuantAlgo::kW4A16Nvfp4; }
bool IsFp8(QuantAlgo algo) { return algo == QuantAlgo::kFp8 || algo == QuantAlgo::kFp8PerChannel; }

std::string Join(std::string_view prefix, std::string_view leaf) {
  std::string name(prefix);
  name += '.';
  name += leaf;
  return name;
}

ByteBuffer FloatBytes(std::span<const float> values) {
  ByteBuffer bytes(values.size() * sizeof(float));  // uninitialized: the memcpy fills it
  if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

// Scalar scales: Model Optimizer writes 0-d tensors; compressed-tensors registers shape [1].
Shape ScalarShape(ExportFormat format) {
  return format == ExportFormat::kModelOpt ? Shape{} : Shape{1};
}

void CheckShape(std::string_view prefix, QuantAlgo algo, const Shape& shape) {
  const std::string weight = Join(prefix, "weight");
  if (shape.size() != 2) {
    throw Error(fmt::format("expected a 2-D [out, in] weight for {}, found {} dimensions (split "
                            "3-D experts per expert before export)",
                            QuantAlgoName(algo), shape.size()),
                {.tensor = weight});
  }
  if (shape[0] <= 0 || shape[1] <= 0) {
    throw Error(fmt::format("weight shape [{}, {}] has an empty dimension", shape[0], shape[1]),
                {.tensor = weight});
  }
  const int group = Row(algo).group_size;
  if (group > 0 && shape[1] % group != 0) {
    throw Error(fmt::format("last dimension {} is not a multiple of the {} block size {}; such a "
                            "layer must stay unquantized and be listed among the excluded modules",
                            shape[1], QuantAlgoName(algo), group),
                {.tensor = weight});
  }
}

}  // namespace

std::string_view ExportFormatName(ExportFormat format) {
  return format == ExportFormat::kModelOpt ? "modelopt" : "compressed-tensors";
}

std::optional<ExportFormat> ParseExportFormat(std::string_view name) {
  if (name == "modelopt") return ExportFormat::kModelOpt;
  if (name == "compressed-tensors") return ExportFormat::kCompressedTensors;
  return std::nullopt;
}

std::string_view QuantAlgoName(QuantAlgo algo) { return Row(algo).name; }
int QuantAlgoGroupSize(QuantAlgo algo) { return Row(algo).group_size; }

QuantAlgo AlgoOf(const QuantizedLinear& linear) {
  if (std::holds_alternative<Nvfp4Tensor>(linear.weight)) {
    return linear.input_quantized ? QuantAlgo::kNvfp4 : QuantAlgo::kW4A16Nvfp4;
  }
  if (const auto* mx = std::get_if<MxTensor>(&linear.weight)) {
    return mx->element == MxElement::kE2M1 ? QuantAlgo::kMxfp4 : QuantAlgo::kMxfp8;
  }
  const auto& fp8 = std::get<Fp8Tensor>(linear.weight);
  // A one-row per-channel tensor is numerically per-tensor and is exported as such.
  return fp8.scales.size() > 1 ? QuantAlgo::kFp8PerChannel : QuantAlgo::kFp8;
}

QuantAlgo ExportedAlgo(QuantAlgo algo, bool has_input_scale, ExportFormat format) {
  if (algo == QuantAlgo::kFp8 && !has_input_scale && format == ExportFormat::kModelOpt) {
    return QuantAlgo::kFp8PerChannel;
  }
  return algo;
}

std::vector<TensorSpec> LinearLayout(std::string_view prefix, QuantAlgo requested_algo,
                                     const Shape& weight_shape, bool with_input_scale,
                                     ExportFormat format) {
  const QuantAlgo algo = ExportedAlgo(requested_algo, with_input_scale, format);
  CheckShape(prefix, algo, weight_shape);
  const int64_t out = weight_shape[0];
  const int64_t in = weight_shape[1];
  const bool ct = format == ExportFormat::kCompressedTensors;
  std::vector<TensorSpec> plan;
  if (IsNvfp4(algo)) {
    // Packed E2M1 pairs along `in` (element 2k in the low nibble), E4M3 block scales row-major
    // and unswizzled; the engines swizzle at load.
    plan.push_back({Join(prefix, ct ? "weight_packed" : "weight"), DType::kU8, {out, in / 2}});
    plan.push_back({Join(prefix, "weight_scale"), DType::kF8E4M3, {out, in / 16}});
    plan.push_back({Join(prefix, ct ? "weight_global_scale" : "weight_scale_2"), DType::kF32,
                    ScalarShape(format)});
    if (with_input_scale) {
      plan.push_back({Join(prefix, ct ? "input_global_scale" : "input_scale"), DType::kF32,
                      ScalarShape(format)});
    }
    return plan;
  }
  if (IsFp8(algo)) {
    plan.push_back({Join(prefix, "weight"), DType::kF8E4M3, {out, in}});
    Shape scale_shape = ScalarShape(format);
    if (algo == QuantAlgo::kFp8PerChannel) {
      // Model Optimizer: [out]; compressed-tensors' channel strategy: [out, 1].
      scale_shape = ct ? Shape{out, 1} : Shape{out};
    }
    plan.push_back({Join(prefix, "weight_scale"), DType::kF32, scale_shape});
    if (with_input_scale) {
      plan.push_back({Join(prefix, "input_scale"), DType::kF32, ScalarShape(format)});
    }
    return plan;
  }
  // MXFP8 / MXFP4: E8M0 scales as U8 [out, in/32], no global or input scale.
  if (ct) {
    throw Error(fmt::format("{} is exported only in the modelopt layout (compressed-tensors "
                            "export supports NVFP4 and FP8); use --format modelopt",
                            QuantAlgoName(algo)),
                {.tensor = Join(prefix, "weight")});
  }
  if (algo == QuantAlgo::kMxfp4) {
    plan.push_back({Join(prefix, "weight"), DType::kU8, {out, in / 2}});
  } else {
    plan.push_back({Join(prefix, "weight"), DType::kF8E4M3, {out, in}});
  }
  plan.push_back({Join(prefix, "weight_scale"), DType::kU8, {out, in / 32}});
  return plan;
}

std::vector<ExportTensor> ExportLinear(QuantizedLinear linear, ExportFormat format) {
  const QuantAlgo quantized_algo = AlgoOf(linear);
  const std::string weight_name = Join(linear.prefix, "weight");
  Shape shape;
  int64_t padded_cols = 0;
  std::visit(
      [&](const auto& t) {
        shape = {t.rows, t.cols};
        if constexpr (std::is_same_v<std::decay_t<decltype(t)>, Fp8Tensor>) {
          padded_cols = t.cols;
        } else {
          padded_cols = t.padded_cols;
        }
      },
      linear.weight);
  if (padded_cols != shape[1]) {
    // The quantizers zero-pad a ragged last block for simulation; a padded tensor has no valid
    // on-disk layout.
    throw Error(fmt::format("last dimension {} was padded to {} by the quantizer; a weight whose "
                            "last dimension is not a multiple of the block size must stay "
                            "unquantized and be listed among the excluded modules",
                            shape[1], padded_cols),
                {.tensor = weight_name});
  }
  const bool needs_amax =
      linear.input_quantized && (IsNvfp4(quantized_algo) || IsFp8(quantized_algo));
  const QuantAlgo algo = ExportedAlgo(quantized_algo, needs_amax, format);
  if (needs_amax && !linear.input_amax) {
    throw Error(fmt::format("the input quantizer is enabled ({}) but no calibrated activation "
                            "amax was given: calibrate first, or disable the input quantizer",
                            QuantAlgoName(algo)),
                {.tensor = weight_name});
  }
  if (needs_amax && !(*linear.input_amax > 0.0f && std::isfinite(*linear.input_amax))) {
    throw Error(
        fmt::format("activation amax {} is not a positive finite number", *linear.input_amax),
        {.tensor = weight_name});
  }
  std::vector<TensorSpec> plan = LinearLayout(linear.prefix, algo, shape, needs_amax, format);
  const bool ct = format == ExportFormat::kCompressedTensors;

  std::vector<ExportTensor> out;
  out.reserve(plan.size());
  const auto add = [&](size_t idx, ByteBuffer bytes) {
    TensorSpec& p = plan[idx];
    QF_CHECK(bytes.size() == static_cast<size_t>(NumElements(p.shape)) * DTypeSize(p.dtype));
    out.push_back({std::move(p.name), p.dtype, std::move(p.shape), std::move(bytes)});
  };
  if (auto* nv = std::get_if<Nvfp4Tensor>(&linear.weight)) {
    add(0, std::move(nv->codes));
    add(1, std::move(nv->block_scales));
    // compressed-tensors stores the reciprocal (ModelOptNvfp4Converter: weight_global_scale =
    // 1 / weight_scale_2, input_global_scale = 1 / input_scale); vLLM inverts it again at load.
    const float global = ct ? 1.0f / nv->global_scale : nv->global_scale;
    add(2, FloatBytes(std::span(&global, 1)));
    if (needs_amax) {
      const float input_scale = *linear.input_amax / kNvfp4ScaleDivisor;
      const float value = ct ? 1.0f / input_scale : input_scale;
      add(3, FloatBytes(std::span(&value, 1)));
    }
  } else if (auto* fp8 = std::get_if<Fp8Tensor>(&linear.weight)) {
    add(0, std::move(fp8->codes));
    if (algo == QuantAlgo::kFp8PerChannel && fp8->scales.size() == 1) {
      // Weight-only per-tensor FP8 written as per-channel (ExportedAlgo): one copy per row.
      fp8->scales.assign(static_cast<size_t>(fp8->rows), fp8->scales[0]);
    }
    add(1, FloatBytes(fp8->scales));
    if (needs_amax) {
      const float input_scale = *linear.input_amax / kFp8ScaleDivisor;
      add(2, FloatBytes(std::span(&input_scale, 1)));
    }
  } else {
    auto& mx = std::get<MxTensor>(linear.weight);
    add(0, std::move(mx.codes));
    add(1, std::move(mx.scales));
  }
  return out;
}

std::vector<TensorSpec> KvScaleLayout(std::string_view attn_prefix, ExportFormat format) {
  // Both layouts keep Model Optimizer's names; vLLM's maybe_remap_kv_scale_name maps them to
  // "<attn>.attn.k_scale". F32 is kept for compressed-tensors too (its converter would cast to
  // BF16 by default; F32 loses nothing and vLLM accepts both).
  const Shape scalar = ScalarShape(format);
  return {{Join(attn_prefix, "k_proj.k_scale"), DType::kF32, scalar},
          {Join(attn_prefix, "v_proj.v_scale"), DType::kF32, scalar}};
}

std::vector<ExportTensor> ExportKvScales(std::string_view attn_prefix, float k_amax, float v_amax,
                                         ExportFormat format) {
  std::vector<TensorSpec> plan = KvScaleLayout(attn_prefix, format);
  const float amax[2] = {k_amax, v_amax};
  std::vector<ExportTensor> out;
  for (size_t i = 0; i < 2; ++i) {
    if (!(amax[i] > 0.0f && std::isfinite(amax[i]))) {
      throw Error(fmt::format("KV-cache amax {} is not a positive finite number", amax[i]),
                  {.tensor = plan[i].name});
    }
    const float scale = amax[i] / kFp8ScaleDivisor;
    out.push_back({std::move(plan[i].name), plan[i].dtype, std::move(plan[i].shape),
                   FloatBytes(std::span(&scale, 1))});
  }
  return out;
}

}  // namespace qf
