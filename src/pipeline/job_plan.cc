// BuildJobPlan: turns the recipe's per-tensor plan into quantize jobs, refusing what this build
// cannot produce and unifying the NVFP4 global scale of fused siblings.
#include "src/pipeline/job_plan.h"

#include <algorithm>
#include <map>
#include <set>

#include <fstream>
#include <nlohmann/json.hpp>

#include "quantforge/error.h"

namespace qf {
namespace {

std::optional<QuantAlgo> AlgoFor(const QuantFormat& weight) {
  switch (weight.kind) {
    // Weight-only unless a calibrated static input scale makes it W4A4 (EnableStaticInput).
    case QuantKind::kNvfp4:
      return QuantAlgo::kW4A16Nvfp4;
    case QuantKind::kFp8PerTensor:
      return QuantAlgo::kFp8;
    case QuantKind::kFp8PerChannel:
      return QuantAlgo::kFp8PerChannel;
    case QuantKind::kMxfp4:
      return QuantAlgo::kMxfp4;
    case QuantKind::kMxfp8:
      return QuantAlgo::kMxfp8;
    default:
      return std::nullopt;
  }
}

int64_t BlockSizeOf(QuantAlgo algo) {
  const int group = QuantAlgoGroupSize(algo);
  return group == 0 ? 1 : group;
}

// Maps the recipe's algorithm and the weight format onto the NVFP4 quantizer's options.
Nvfp4Options NvfpOptionsFor(const AlgorithmConfig& algorithm, const QuantFormat& format) {
  Nvfp4Options o;
  o.static_block_scales = format.static_block_scales;
  o.four_over_six_normalization = format.four_over_six;
  const bool searches = algorithm.method == AlgorithmMethod::kMse ||
                        algorithm.method == AlgorithmMethod::kLocalHessian;
  if (searches && format.static_block_scales) {
    const MseParams& p = algorithm.mse;
    const bool is_four_over_six = algorithm.method == AlgorithmMethod::kMse &&
                                  format.four_over_six && !p.fp8_scale_sweep &&
                                  p.start_multiplier == 1.0 && p.stop_multiplier == 1.5 &&
                                  p.step_size == 0.5;
    if (is_four_over_six) {
      o.algorithm = BlockScaleAlgorithm::kFourOverSix;
    } else {
      o.algorithm = BlockScaleAlgorithm::kMse;
      o.mse = MseSweep{static_cast<float>(p.start_multiplier),
                       static_cast<float>(p.stop_multiplier), static_cast<float>(p.step_size),
                       p.fp8_scale_sweep};
    }
  }
  return o;
}

// The algorithm that sets the initial scales: the first of the list ([gptq] alone: max).
AlgorithmConfig InitialAlgorithm(const Recipe& recipe) {
  const AlgorithmConfig& first = recipe.algorithm();
  if (first.method == AlgorithmMethod::kGptq) return AlgorithmConfig{};
  return first;
}

// The part of the recipe's HessianAlgo that applies to one weight: local_hessian searches NVFP4
// static block scales only (as Model Optimizer's calibrator); other weights keep max, and GPTQ
// (if stacked) runs from those.
HessianAlgo HessianAlgoFor(HessianAlgo recipe_algo, QuantAlgo algo, const QuantFormat& weight) {
  const bool nvfp4 = algo == QuantAlgo::kNvfp4 || algo == QuantAlgo::kW4A16Nvfp4;
  if (nvfp4 && weight.static_block_scales) return recipe_algo;
  if (recipe_algo == HessianAlgo::kLocalHessian) return HessianAlgo::kNone;
  if (recipe_algo == HessianAlgo::kLocalHessianGptq) return HessianAlgo::kGptq;
  return recipe_algo;
}

// Every quantizer the recipe enables whose scale comes from activations.
std::vector<std::string> CalibrationDependent(const std::vector<TensorPlan>& plans) {
  std::vector<std::string> names;
  for (const TensorPlan& p : plans) {
    if (!p.weight.enabled()) continue;
    if (p.input.enabled() && p.input.needs_calibration) names.push_back(p.module + ".input_quantizer");
    if (p.kv_cache.enabled() && p.kv_cache.needs_calibration) {
      names.push_back(p.module + " (KV cache)");
    }
  }
  return names;
}

void RefuseCalibrationDependent(const Recipe& recipe, const std::vector<TensorPlan>& plans) {
  const std::vector<std::string> names = CalibrationDependent(plans);
  if (names.empty()) return;
  std::string examples;
  for (size_t i = 0; i < names.size() && i < 3; ++i) examples += (i ? ", " : "") + names[i];
  throw Error("recipe '" + recipe.name + "' enables " + std::to_string(names.size()) +
              " quantizers whose scales come from activations (e.g. " + examples +
              "): they need calibration data; pass --calib FILE or --weight-only (weights "
              "alone: NVFP4 -> W4A16_NVFP4; FP8 weights with dynamic per-token activations)");
}

// A calibrated static input scale: NVFP4 inputs under NVFP4 weights (W4A4) or FP8 per-tensor
// inputs under FP8 per-tensor weights (W8A8); the exporters know no other pairing.
void EnableStaticInput(LinearJob& linear, const TensorPlan& plan, const std::string& tensor) {
  const bool w4a4 = plan.weight.kind == QuantKind::kNvfp4 && plan.input.kind == QuantKind::kNvfp4;
  const bool w8a8 = plan.weight.kind == QuantKind::kFp8PerTensor &&
                    plan.input.kind == QuantKind::kFp8PerTensor;
  if (!w4a4 && !w8a8) {
    throw Error("static input quantizer " + FormatToString(plan.input) + " with weights " +
                    FormatToString(plan.weight) +
                    " has no export format (NVFP4 W4A4 and FP8 W8A8 only); use --weight-only",
                {.tensor = tensor});
  }
  linear.input_quantized = true;
  if (w4a4) linear.algo = QuantAlgo::kNvfp4;
}

// k_proj and v_proj both carry the KV quantizer; one job per attention module.
void AddKvJob(JobPlan& job, const TensorPlan& plan) {
  if (plan.kv_cache.kind != QuantKind::kFp8Kv) {
    throw Error("KV-cache quantizer " + FormatToString(plan.kv_cache) +
                    " has no export format (FP8 KV only)",
                {.tensor = plan.tensor});
  }
  const size_t dot = plan.module.rfind('.');
  const std::string attn = dot == std::string::npos ? "" : plan.module.substr(0, dot);
  if (attn.empty()) throw Error("KV-cache quantizer outside an attention module", {.tensor = plan.tensor});
  for (const KvJob& k : job.kv) {
    if (k.attn == attn) return;
  }
  job.kv.push_back(KvJob{.attn = attn});
  job.needs_calibration = true;
}

void Exclude(JobPlan& job, TensorJob& t, const std::string& reason) {
  t.linear.reset();
  job.excluded.push_back(t.module + ": " + reason);
}

}  // namespace

HessianAlgo HessianAlgoOf(const Recipe& recipe) {
  std::vector<AlgorithmMethod> methods;
  for (const AlgorithmConfig& a : recipe.algorithms) methods.push_back(a.method);
  const auto is = [&](size_t i, AlgorithmMethod m) { return methods[i] == m; };
  if (methods.size() == 1) {
    if (is(0, AlgorithmMethod::kGptq)) return HessianAlgo::kGptq;
    if (is(0, AlgorithmMethod::kLocalHessian)) return HessianAlgo::kLocalHessian;
    return HessianAlgo::kNone;
  }
  if (methods.size() == 2 && is(1, AlgorithmMethod::kGptq)) {
    if (is(0, AlgorithmMethod::kMax) || is(0, AlgorithmMethod::kMse)) return HessianAlgo::kGptq;
    if (is(0, AlgorithmMethod::kLocalHessian)) return HessianAlgo::kLocalHessianGptq;
  }
  std::string list;
  for (const AlgorithmMethod m : methods) {
    list += (list.empty() ? "" : ", ") + std::string(AlgorithmMethodName(m));
  }
  throw Error("recipe '" + recipe.name + "': algorithm list [" + list +
              "] is not supported (one algorithm, or max / mse / local_hessian followed by gptq)");
}

std::string_view HessianAlgoName(HessianAlgo algo) {
  switch (algo) {
    case HessianAlgo::kNone:
      return "none";
    case HessianAlgo::kGptq:
      return "gptq";
    case HessianAlgo::kLocalHessian:
      return "local_hessian";
    case HessianAlgo::kLocalHessianGptq:
      return "local_hessian+gptq";
  }
  return "?";
}

JobPlan BuildJobPlan(const Checkpoint& checkpoint, const Recipe& recipe,
                     const QuantizeOptions& options, ThreadPool* pool) {
  std::vector<TensorDesc> descs;
  for (const TensorInfo& info : checkpoint.Tensors()) {
    descs.push_back(TensorDesc{info.name, info.dtype, info.shape});
  }
  const std::vector<TensorPlan> plans = PlanCheckpoint(recipe, descs);
  const HessianAlgo recipe_hessian_algo = HessianAlgoOf(recipe);
  const AlgorithmConfig initial_algorithm = InitialAlgorithm(recipe);
  const GptqParams* gptq_params = nullptr;
  for (const AlgorithmConfig& a : recipe.algorithms) {
    if (a.method == AlgorithmMethod::kGptq) gptq_params = &a.gptq;
  }
  const bool calibrate = !options.weight_only && !options.calib_data.empty();
  if (!options.weight_only && !calibrate) RefuseCalibrationDependent(recipe, plans);
  std::map<std::string, const TensorPlan*> plan_by_name;
  for (const TensorPlan& p : plans) plan_by_name[p.tensor] = &p;

  JobPlan job;
  std::map<std::string, std::vector<size_t>> fusion_groups;  // key -> indices into job.tensors
  for (const TensorInfo& info : checkpoint.Tensors()) {
    TensorJob t{.info = &info};
    const auto it = plan_by_name.find(info.name);
    QF_CHECK(it != plan_by_name.end());
    const TensorPlan& plan = *it->second;
    t.is_linear_weight = plan.is_linear_weight;
    t.list_as_excluded = plan.is_linear_weight || (plan.excluded && !plan.module.empty());
    t.module = plan.module;
    if (plan.is_linear_weight && plan.weight.enabled()) {
      if (plan.weight.kind == QuantKind::kUnsupported) {
        throw Error("the recipe asks for a format quantforge cannot produce: " +
                        plan.weight.reason,
                    {.path = recipe.name, .tensor = info.name});
      }
      const std::optional<QuantAlgo> algo = AlgoFor(plan.weight);
      if (!algo) {
        throw Error("no exporter for weight format " + FormatToString(plan.weight),
                    {.tensor = info.name});
      }
      t.linear = LinearJob{.module = plan.module, .algo = *algo,
                           .nvfp4 = NvfpOptionsFor(initial_algorithm, plan.weight),
                           .hessian_algo = HessianAlgoFor(recipe_hessian_algo, *algo,
                                                          plan.weight),
                           .gptq = gptq_params != nullptr ? *gptq_params : GptqParams{},
                           .fusion_group = plan.fusion_group,
                           .moe_input_group = plan.moe_input_group};
      if (calibrate && plan.input.enabled() && plan.input.needs_calibration) {
        EnableStaticInput(*t.linear, plan, info.name);
        job.needs_calibration = true;
      }
      if (calibrate && plan.kv_cache.enabled() && plan.kv_cache.needs_calibration) {
        AddKvJob(job, plan);
      }
      if (info.shape.size() != 2 || info.shape[1] % BlockSizeOf(*algo) != 0) {
        Exclude(job, t, "last dimension " + std::to_string(info.shape.back()) +
                            " is not a multiple of the " + std::string(QuantAlgoName(*algo)) +
                            " block size " + std::to_string(BlockSizeOf(*algo)) +
                            " (serving kernels need it): left unquantized");
      }
    } else if (plan.is_linear_weight && plan.excluded) {
      job.excluded.push_back(plan.module + ": " + plan.reason);
    }
    if (!plan.fusion_group.empty() && plan.is_linear_weight) {
      fusion_groups[plan.fusion_group].push_back(job.tensors.size());
    }
    job.tensors.push_back(std::move(t));
  }

  // GPTQ and local_hessian need the Hessian of every such weight's input: activations, even for
  // a weight-only recipe. Refused here, before any weight is read or anything written.
  int64_t dropped_local_hessian = 0;
  for (const TensorJob& t : job.tensors) {
    if (!t.linear) continue;
    const HessianAlgo a = t.linear->hessian_algo;
    if (a != recipe_hessian_algo) ++dropped_local_hessian;
    if (a == HessianAlgo::kNone) continue;
    job.needs_hessians = true;
    job.full_hessians |= a == HessianAlgo::kGptq || a == HessianAlgo::kLocalHessianGptq;
  }
  if (job.needs_hessians) {
    if (options.calib_data.empty()) {
      throw Error("recipe '" + recipe.name + "' uses algorithm " +
                  std::string(HessianAlgoName(recipe_hessian_algo)) +
                  ", which needs calibration activations (the Hessian of each Linear's input), "
                  "also with --weight-only: pass --calib FILE");
    }
    job.needs_calibration = true;
  }
  if (dropped_local_hessian > 0) {
    job.notes.push_back("local_hessian searches NVFP4 static block scales; " +
                        std::to_string(dropped_local_hessian) +
                        " weights of other formats keep their max scales");
  }

  // Weights with NaN/Inf under the keep policy change the layout, so find them now.
  if (options.non_finite == NonFinitePolicy::kKeepUnquantized) {
    for (TensorJob& t : job.tensors) {
      if (!t.linear) continue;
      try {
        TensorAmax(checkpoint.View(*t.info), pool);
      } catch (const Error& e) {
        Exclude(job, t, "holds NaN/Inf (" + e.problem() + "): kept unquantized");
      }
      checkpoint.ReleasePages(*t.info);
    }
  }

  // Engines fuse siblings into one GEMM: all quantized with one algorithm, or none quantized.
  for (const auto& [key, members] : fusion_groups) {
    std::set<QuantAlgo> algos;
    size_t num_quantized = 0;
    for (size_t idx : members) {
      if (job.tensors[idx].linear) {
        algos.insert(job.tensors[idx].linear->algo);
        ++num_quantized;
      }
    }
    if (algos.size() > 1) {
      throw Error("the recipe gives fused siblings " + key +
                  " different formats; serving engines fuse them into one GEMM and refuse that");
    }
    if (num_quantized != 0 && num_quantized != members.size()) {
      for (size_t idx : members) {
        if (job.tensors[idx].linear) {
          Exclude(job, job.tensors[idx],
                  "a fused sibling in " + key + " is unquantized, so engines cannot fuse them");
        }
      }
      continue;
    }
    // NVFP4: one weight_scale_2 for the group, from the max of the members' amax.
    if (num_quantized < 2) continue;
    const QuantAlgo algo = *algos.begin();
    if (algo != QuantAlgo::kNvfp4 && algo != QuantAlgo::kW4A16Nvfp4) continue;
    float group_amax = 0.0f;
    for (size_t idx : members) {
      group_amax = std::max(group_amax, TensorAmax(checkpoint.View(*job.tensors[idx].info), pool));
      checkpoint.ReleasePages(*job.tensors[idx].info);
    }
    for (size_t idx : members) job.tensors[idx].linear->nvfp4.global_amax = group_amax;
  }

  const AlgorithmMethod method = recipe.algorithm().method;
  if (method == AlgorithmMethod::kMse) {
    bool has_fp8 = false;
    for (const TensorJob& t : job.tensors) {
      has_fp8 |= t.linear && (t.linear->algo == QuantAlgo::kFp8 ||
                              t.linear->algo == QuantAlgo::kFp8PerChannel);
    }
    if (has_fp8) {
      job.notes.push_back(
          "algorithm mse searches NVFP4 block scales; FP8 per-tensor weights keep their max "
          "scale (Model Optimizer's search over [1.0, 1.5] keeps 1.0 for FP8 almost always)");
    }
  }
  return job;
}

void RefuseQuantizedInput(const Checkpoint& checkpoint) {
  const std::filesystem::path dir = checkpoint.Directory();
  if (std::filesystem::exists(dir / "hf_quant_config.json")) {
    throw Error("the checkpoint is already quantized (it has hf_quant_config.json); quantize the "
                "original BF16/F32 checkpoint",
                {.path = dir.string()});
  }
  std::ifstream in(dir / "config.json");
  if (!in) return;
  const nlohmann::json config = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (config.is_object() && config.contains("quantization_config")) {
    throw Error("the checkpoint is already quantized (config.json has a quantization_config); "
                "quantize the original BF16/F32 checkpoint",
                {.path = (dir / "config.json").string()});
  }
}

std::string DeclaredQuantAlgo(const ExportManifest& manifest, ExportFormat format) {
  std::set<QuantAlgo> algos;
  for (const QuantizedModule& m : manifest.quantized) {
    algos.insert(ExportedAlgo(m.algo, m.has_input_scale, format));
  }
  if (algos.empty()) return "none";
  if (algos.size() == 1) return std::string(QuantAlgoName(*algos.begin()));
  return "MIXED_PRECISION";
}

}  // namespace qf
