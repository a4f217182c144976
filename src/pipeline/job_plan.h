// The quantize job's decisions for every tensor of a checkpoint, made before any output is
// written: the recipe's plan, refused requests (calibration-dependent quantizers, unsupported
// formats), fused siblings' shared NVFP4 global amax, and the NaN/Inf policy.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "quantforge/checkpoint.h"
#include "quantforge/export.h"
#include "quantforge/pipeline.h"
#include "quantforge/quantize.h"
#include "quantforge/recipe.h"

namespace qf {

// Weight algorithms that need the Hessian of the Linear's input (calibration activations): the
// weight is quantized during the layer-by-layer calibration run (src/pipeline/weight_calib.h).
enum class HessianAlgo {
  kNone,               // round-to-nearest with nvfp4.algorithm (max, mse, four_over_six)
  kGptq,               // GPTQ from the initial scales of nvfp4.algorithm (max or mse)
  kLocalHessian,       // NVFP4 output-MSE block-scale search (nvfp4.mse's candidates)
  kLocalHessianGptq,   // local_hessian scales, then GPTQ from them
};

struct LinearJob {
  std::string module;    // "<module>" of "<module>.weight"
  QuantAlgo algo = QuantAlgo::kW4A16Nvfp4;
  Nvfp4Options nvfp4;    // NVFP4 only: algorithm, static scales, shared global amax
  HessianAlgo hessian_algo = HessianAlgo::kNone;
  GptqParams gptq;       // kGptq / kLocalHessianGptq
  // Static input scale (W4A4 / W8A8, calibrated): input_amax is filled by ApplyCalibration,
  // unified by max over fusion_group and moe_input_group (the plan's keys).
  bool input_quantized = false;
  std::optional<float> input_amax;
  std::string fusion_group;
  std::string moe_input_group;
};

// FP8 KV cache of one attention module ("model.layers.0.self_attn"), calibrated.
struct KvJob {
  std::string attn;
  float k_amax = 0.0f;
  float v_amax = 0.0f;
};

struct TensorJob {
  const TensorInfo* info = nullptr;
  bool is_linear_weight = false;
  // Unquantized and named in the config's exclusions: linear weights left unquantized and
  // modules the recipe excludes although they are no plain linear (MoE routers), which loaders
  // would otherwise expect packed.
  bool list_as_excluded = false;
  std::string module;
  std::optional<LinearJob> linear;  // set when the tensor is quantized
};

struct JobPlan {
  std::vector<TensorJob> tensors;      // checkpoint order (sorted by name)
  std::vector<std::string> excluded;   // "module: reason" for linear weights left unquantized
  std::vector<std::string> notes;
  std::vector<KvJob> kv;  // amax filled by ApplyCalibration
  // Some quantizer's scale comes from activations (options.calib_data is then set).
  bool needs_calibration = false;
  // Some weight has a HessianAlgo (then needs_calibration too); full: some runs GPTQ (the whole
  // dim x dim Hessian), else the 16x16 diagonal blocks suffice.
  bool needs_hessians = false;
  bool full_hessians = false;
};

// The HessianAlgo a recipe's algorithm list asks for: [m], or [m, gptq] with m one of max, mse,
// local_hessian (Model Optimizer stacks them: initial scales by m, then GPTQ). Throws qf::Error
// naming the recipe for other lists.
HessianAlgo HessianAlgoOf(const Recipe& recipe);
std::string_view HessianAlgoName(HessianAlgo algo);  // "gptq", "local_hessian", "local_hessian+gptq"

JobPlan BuildJobPlan(const Checkpoint& checkpoint, const Recipe& recipe,
                     const QuantizeOptions& options, ThreadPool* pool);

// Throws qf::Error when the checkpoint declares a quantization (config.json's
// quantization_config or an hf_quant_config.json): quantizing packed weights again is never
// what the user meant.
void RefuseQuantizedInput(const Checkpoint& checkpoint);

// The quant_algo the exported config declares (algorithms as written, see ExportedAlgo): one algorithm's name, MIXED_PRECISION, or "none".
std::string DeclaredQuantAlgo(const ExportManifest& manifest, ExportFormat format);

}  // namespace qf
