// Weight fake quantization for AutoQuantize: one module's weight in one candidate format, the
// fused-group NVFP4 amax the exporter would use, and the Model weight transform simulating a
// whole assignment. The quantizers are the numerics layer's (quantize.h) with the options the
// pipeline derives from the recipe this layer writes (job_plan.cc NvfpOptionsFor): dynamic NVFP4
// max, four-over-six (static scales, 256 normalisation), FP8 per tensor, MX with the OCP floor
// rule, so the simulated weights are the exported checkpoint's.
#include <algorithm>

#include "quantforge/autoquant_score.h"
#include "quantforge/error.h"
#include "quantforge/quantize.h"

namespace qf {

void FakeQuantizeWeight(std::span<float> weight, int64_t rows, int64_t cols, AutoFormat format,
                        std::optional<float> global_amax, const std::string& name,
                        ThreadPool* pool) {
  if (format == AutoFormat::kNone) return;
  const TensorView view = MakeView(std::span<const float>(weight), {rows, cols}, name);
  switch (format) {
    case AutoFormat::kNvfp4:
    case AutoFormat::kNvfp4FourOverSix: {
      Nvfp4Options options;
      if (format == AutoFormat::kNvfp4FourOverSix) {
        options.algorithm = BlockScaleAlgorithm::kFourOverSix;
        options.static_block_scales = true;
        options.four_over_six_normalization = true;
      }
      options.global_amax = global_amax;
      const Nvfp4Tensor q = QuantizeNvfp4(view, options, pool);
      DequantizeNvfp4(q, weight, pool);
      break;
    }
    case AutoFormat::kFp8: {
      const Fp8Tensor q = QuantizeFp8(view, Fp8Granularity::kPerTensor, std::nullopt, pool);
      DequantizeFp8(q, weight, pool);
      break;
    }
    case AutoFormat::kMxfp4:
    case AutoFormat::kMxfp8: {
      const MxTensor q =
          QuantizeMx(view, format == AutoFormat::kMxfp4 ? MxElement::kE2M1 : MxElement::kE4M3,
                     MxScaleRule::kOcpFloor, pool);
      DequantizeMx(q, weight, pool);
      break;
    }
    case AutoFormat::kNone:
      break;
  }
}

std::map<std::string, float> FusionGlobalAmax(std::span<const DecisionGroup> groups,
                                              const WeightSource& weights, ThreadPool* pool) {
  std::map<std::string, float> result;
  for (const DecisionGroup& group : groups) {
    std::map<std::string, std::vector<size_t>> members;
    for (size_t i = 0; i < group.modules.size(); ++i) {
      if (!group.fusion_keys[i].empty()) members[group.fusion_keys[i]].push_back(i);
    }
    for (const auto& [key, indices] : members) {
      if (indices.size() < 2) continue;
      float amax = 0.0f;
      for (size_t i : indices) {
        const std::string name = group.modules[i] + ".weight";
        const std::optional<TensorView> view = weights.Find(name);
        if (!view) throw Error(weights.Describe() + ": tensor '" + name + "' is missing");
        amax = std::max(amax, TensorAmax(*view, pool));
      }
      for (size_t i : indices) result[group.modules[i]] = amax;
    }
  }
  return result;
}

WeightTransform MakeAssignmentTransform(std::span<const DecisionGroup> groups,
                                        const Assignment& assignment,
                                        const std::map<std::string, float>& fusion_amax,
                                        ThreadPool* pool) {
  QF_CHECK(assignment.choice.size() == groups.size());
  std::map<std::string, AutoFormat> formats;  // "<module>.weight" -> format
  for (size_t g = 0; g < groups.size(); ++g) {
    for (const std::string& module : groups[g].modules) {
      formats[module + ".weight"] = groups[g].candidates[assignment.choice[g]];
    }
  }
  return [formats = std::move(formats), fusion_amax, pool](
             const std::string& name, std::span<float> weight, int64_t rows, int64_t cols) {
    const auto it = formats.find(name);
    if (it == formats.end()) return;
    const auto amax = fusion_amax.find(name.substr(0, name.size() - 7));  // drop ".weight"
    FakeQuantizeWeight(
        weight, rows, cols, it->second,
        amax == fusion_amax.end() ? std::nullopt : std::optional<float>(amax->second), name, pool);
  };
}

}  // namespace qf
