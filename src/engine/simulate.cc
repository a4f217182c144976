// Run-time quantization of a quantized checkpoint, simulated on the F32 forward pass: each Linear
// input fake-quantized as the serving kernel quantizes it, K and V as the FP8 KV cache stores
// them. The arithmetic of each quantizer is stated in quantforge/eval.h and docs/EVAL.md.
#include <algorithm>
#include <cmath>
#include <map>

#include "quantforge/error.h"
#include "quantforge/eval.h"
#include "quantforge/formats.h"
#include "quantforge/quantize.h"
#include "src/util/log.h"

namespace qf {
namespace {

// One activation row through the quant layer's dynamic MX quantizer with Model Optimizer's
// E8M0 rule (2^ceil(log2(amax / element_max)), never clipping), and back.
void FakeQuantMxRows(float* x, int64_t rows, int64_t cols, int64_t ld, MxElement element,
                     std::vector<float>& scratch) {
  scratch.resize(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * ld;
    const MxTensor q = QuantizeMx(MakeView(std::span<const float>(row, cols), {1, cols}, "input"),
                                  element, MxScaleRule::kCeil);
    DequantizeMx(q, scratch);
    std::copy(scratch.begin(), scratch.end(), row);
  }
}

std::string Label(const LinearQuantization& q) {
  const std::string_view w = StoredWeightFormatName(q.weight);
  switch (q.input.kind) {
    case InputQuantKind::kNone:
      return q.weight == StoredWeightFormat::kNvfp4 ? "NVFP4 W4A16 (weights only)"
                                                    : std::string(w) + " weights only";
    case InputQuantKind::kNvfp4:
      return "NVFP4 W4A4 (weights + activations)";
    case InputQuantKind::kFp8Static:
      return std::string(w) + " W8A8 (weights + static per-tensor activations)";
    case InputQuantKind::kFp8PerToken:
      return std::string(w) + " weights + dynamic per-token FP8 activations";
    case InputQuantKind::kMxfp8:
    case InputQuantKind::kMxfp4:
      return std::string(w) + " (weights + activations)";
  }
  return std::string(w);
}

}  // namespace

std::string_view StoredWeightFormatName(StoredWeightFormat format) {
  switch (format) {
    case StoredWeightFormat::kNvfp4:
      return "NVFP4";
    case StoredWeightFormat::kFp8PerTensor:
      return "FP8";
    case StoredWeightFormat::kFp8PerChannel:
      return "FP8 per-channel";
    case StoredWeightFormat::kMxfp8:
      return "MXFP8";
    case StoredWeightFormat::kMxfp4:
      return "MXFP4";
  }
  return "?";
}

std::string_view InputQuantKindName(InputQuantKind kind) {
  switch (kind) {
    case InputQuantKind::kNone:
      return "none";
    case InputQuantKind::kNvfp4:
      return "NVFP4 dynamic blocks, static global";
    case InputQuantKind::kFp8Static:
      return "FP8 static per-tensor";
    case InputQuantKind::kFp8PerToken:
      return "FP8 dynamic per-token";
    case InputQuantKind::kMxfp8:
      return "MXFP8 dynamic";
    case InputQuantKind::kMxfp4:
      return "MXFP4 dynamic";
  }
  return "?";
}

std::string QuantizationScheme::Summary() const {
  std::vector<std::pair<std::string, int64_t>> counts;  // label, modules; first appearance order
  for (const auto& [module, q] : linears) {
    const std::string label = Label(q);
    auto it =
        std::find_if(counts.begin(), counts.end(), [&](const auto& c) { return c.first == label; });
    if (it == counts.end()) {
      counts.emplace_back(label, 1);
    } else {
      ++it->second;
    }
  }
  std::string out;
  if (counts.size() == 1) {
    out = counts[0].first;
  } else {
    for (const auto& [label, n] : counts) {
      out += (out.empty() ? "mixed: " : "; ") + std::to_string(n) + " x " + label;
    }
  }
  if (!kv.empty()) out += out.empty() ? "FP8 KV cache" : ", FP8 KV";
  return out.empty() ? "unquantized" : out;
}

InputQuantizer ResolveInputQuantizer(const QuantizationScheme& scheme,
                                     std::span<const std::string> modules) {
  std::optional<InputQuantizer> resolved;
  bool any_unquantized = false;
  bool scales_differ = false;
  for (const std::string& module : modules) {
    const auto it = scheme.linears.find(module);
    if (it == scheme.linears.end()) {
      any_unquantized = true;
      continue;
    }
    const InputQuantizer& q = it->second.input;
    if (!resolved) {
      resolved = q;
    } else if (resolved->kind != q.kind) {
      throw Error("modules reading one input quantize it differently (" +
                      std::string(InputQuantKindName(resolved->kind)) + " vs " +
                      std::string(InputQuantKindName(q.kind)) + "); engines refuse such a layer",
                  {.tensor = module});
    } else if (resolved->input_scale != q.input_scale) {
      scales_differ = true;
      resolved->input_scale = std::max(resolved->input_scale, q.input_scale);
    }
  }
  if (!resolved) return {};
  if (any_unquantized && resolved->kind != InputQuantKind::kNone) {
    throw Error("fused modules mix quantized and unquantized inputs", {.tensor = modules[0]});
  }
  if (scales_differ) {
    log::Warn(
        "{} ... share one input but their input_scale differ; using the max {} (vLLM does "
        "the same)",
        modules[0], resolved->input_scale);
  }
  return *resolved;
}

void FakeQuantNvfp4Input(float* x, int64_t n, float input_scale) {
  const float global = input_scale > 0.0f ? input_scale : 1e-12f;
  const float denominator = 6.0f * global;  // rounded to F32 first, then divided by
  for (int64_t begin = 0; begin < n; begin += kNvfp4BlockSize) {
    const int64_t end = std::min(n, begin + kNvfp4BlockSize);
    float amax = 0.0f;
    for (int64_t i = begin; i < end; ++i) amax = std::max(amax, std::abs(x[i]));
    const float block = std::min(amax / denominator, kE4M3Max);
    float scale = DecodeE4M3(EncodeE4M3(block)) * input_scale;
    if (!(scale >= 1e-5f)) scale = 1.0f;  // fp4_fake_quant_block's guard for tiny blocks
    for (int64_t i = begin; i < end; ++i) {
      const float q = DecodeE2M1(EncodeE2M1(std::abs(x[i]) / scale)) * scale;
      x[i] = x[i] >= 0.0f ? q : -q;
    }
  }
}

void FakeQuantFp8(float* x, int64_t n, float scale) {
  for (int64_t i = 0; i < n; ++i) x[i] = DecodeE4M3(EncodeE4M3(x[i] / scale)) * scale;
}

void FakeQuantFp8PerToken(float* x, int64_t n) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::abs(x[i]));
  if (amax == 0.0f) return;
  // vLLM's dynamic_per_token_scaled_fp8_quant floors the scale at 1 / (448 * 512) (FBGEMM's
  // bound), so a row with amax below 1/512 is quantized on that coarser grid.
  constexpr float kMinScale = 1.0f / (kE4M3Max * 512.0f);
  FakeQuantFp8(x, n, std::max(amax / kE4M3Max, kMinScale));
}

void SimulationHooks::OnActivation(const ActivationSite& site, float* x, int64_t rows, int64_t cols,
                                   int64_t ld) {
  if (site.modules.empty()) return;
  if (site.kind != ActivationKind::kLinearInput) {
    // "model.layers.0.self_attn.k_proj" -> "model.layers.0.self_attn".
    const std::string& module = site.modules[0];
    const auto it = scheme_.kv.find(module.substr(0, module.rfind('.')));
    if (it == scheme_.kv.end()) return;
    const float scale = site.kind == ActivationKind::kKey ? it->second.k_scale : it->second.v_scale;
    for (int64_t r = 0; r < rows; ++r) FakeQuantFp8(x + r * ld, cols, scale);
    return;
  }
  auto it = resolved_.find(site.modules[0]);
  if (it == resolved_.end()) {
    it = resolved_.emplace(site.modules[0], ResolveInputQuantizer(scheme_, site.modules)).first;
  }
  const InputQuantizer& q = it->second;
  switch (q.kind) {
    case InputQuantKind::kNone:
      return;
    case InputQuantKind::kNvfp4:
      for (int64_t r = 0; r < rows; ++r) FakeQuantNvfp4Input(x + r * ld, cols, q.input_scale);
      return;
    case InputQuantKind::kFp8Static:
      for (int64_t r = 0; r < rows; ++r) FakeQuantFp8(x + r * ld, cols, q.input_scale);
      return;
    case InputQuantKind::kFp8PerToken:
      for (int64_t r = 0; r < rows; ++r) FakeQuantFp8PerToken(x + r * ld, cols);
      return;
    case InputQuantKind::kMxfp8:
      FakeQuantMxRows(x, rows, cols, ld, MxElement::kE4M3, scratch_);
      return;
    case InputQuantKind::kMxfp4:
      FakeQuantMxRows(x, rows, cols, ld, MxElement::kE2M1, scratch_);
      return;
  }
}

}  // namespace qf
