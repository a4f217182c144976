// AmaxObserver and weight fake quantization: the first users of the model's quantizer hooks.
// Fake quantization calls the numerics layer's quantizers (quantize.h) and dequantizes back, so
// the simulated weights are exactly what an exported checkpoint would hold.
#include <algorithm>
#include <cmath>

#include "quantforge/error.h"
#include "quantforge/eval.h"
#include "quantforge/formats.h"
#include "quantforge/quantize.h"

namespace qf {
namespace {

std::string WithSuffix(const std::string& module, std::string_view suffix) {
  return module + std::string(suffix);
}

// "model.layers.0.self_attn.k_proj" -> "model.layers.0.self_attn.k_bmm_quantizer".
std::string BmmQuantizerName(const std::string& module, std::string_view kind) {
  const size_t dot = module.rfind('.');
  return module.substr(0, dot + 1) + std::string(kind) + "_bmm_quantizer";
}

}  // namespace

void AmaxObserver::OnActivation(const ActivationSite& site, float* x, int64_t rows, int64_t cols,
                                int64_t ld) {
  float amax = 0.0f;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * ld;
    for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::abs(row[c]));
  }
  const auto update = [&](const std::string& key) {
    auto [it, inserted] = amax_.emplace(key, amax);
    if (!inserted) it->second = std::max(it->second, amax);
  };
  switch (site.kind) {
    case ActivationKind::kLinearInput:
      for (const std::string& module : site.modules) update(WithSuffix(module, ".input_quantizer"));
      break;
    case ActivationKind::kKey:
      update(BmmQuantizerName(site.modules[0], "k"));
      break;
    case ActivationKind::kValue:
      update(BmmQuantizerName(site.modules[0], "v"));
      break;
  }
}

std::optional<WeightFakeQuant> ParseWeightFakeQuant(std::string_view name) {
  if (name == "none") return WeightFakeQuant::kNone;
  if (name == "bf16") return WeightFakeQuant::kBf16;
  if (name == "fp8") return WeightFakeQuant::kFp8PerTensor;
  if (name == "fp8-channel") return WeightFakeQuant::kFp8PerChannel;
  if (name == "nvfp4") return WeightFakeQuant::kNvfp4;
  if (name == "mxfp4") return WeightFakeQuant::kMxfp4;
  return std::nullopt;
}

WeightTransform MakeWeightFakeQuant(WeightFakeQuant format, ThreadPool* pool) {
  if (format == WeightFakeQuant::kNone) return {};
  return
      [format, pool](const std::string& name, std::span<float> weight, int64_t rows, int64_t cols) {
        if (name.rfind("model.layers.", 0) != 0) return;  // lm_head stays unquantized
        const TensorView view = MakeView(std::span<const float>(weight), {rows, cols}, name);
        switch (format) {
          case WeightFakeQuant::kNone:
            break;
          case WeightFakeQuant::kBf16:
            for (float& w : weight) w = DecodeBF16(EncodeBF16(w));
            break;
          case WeightFakeQuant::kFp8PerTensor:
          case WeightFakeQuant::kFp8PerChannel: {
            const Fp8Tensor q =
                QuantizeFp8(view,
                            format == WeightFakeQuant::kFp8PerTensor ? Fp8Granularity::kPerTensor
                                                                     : Fp8Granularity::kPerChannel,
                            std::nullopt, pool);
            DequantizeFp8(q, weight, pool);
            break;
          }
          case WeightFakeQuant::kNvfp4: {
            const Nvfp4Tensor q = QuantizeNvfp4(view, Nvfp4Options{}, pool);
            DequantizeNvfp4(q, weight, pool);
            break;
          }
          case WeightFakeQuant::kMxfp4: {
            const MxTensor q = QuantizeMx(view, MxElement::kE2M1, MxScaleRule::kOcpFloor, pool);
            DequantizeMx(q, weight, pool);
            break;
          }
        }
      };
}

}  // namespace qf
