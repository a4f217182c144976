// Max calibration for the quantize job: runs the unquantized model over calibration sequences
// with the engine's amax observers and returns the activation amax of every quantizer, named as
// Model Optimizer names them ("<module>.input_quantizer", "<attn>.k_bmm_quantizer",
// "<attn>.v_bmm_quantizer").
//
// Like Model Optimizer's max calibration, activations are observed on the unquantized model (the
// weight quantizers do not act during calibration). The model runs layer by layer
// (LayerwiseRunner, model.h): the F32 residual stream of every calibration token stays in memory,
// the weights come one decoder layer at a time, so a model larger than memory calibrates as long
// as samples * seq_len * hidden * 4 bytes plus one layer fit (docs/ENGINE.md has the formula).
//
// Defaults: 128 sequences of 512 tokens (65536 tokens; the residual stream of an 8B model is then
// 1 GiB). Model Optimizer's hf_ptq defaults to 512 samples; max calibration converges well before
// that on the amax of real text, and 4x the tokens means 4x the time and the residual memory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "quantforge/eval.h"
#include "quantforge/model.h"
#include "quantforge/pipeline.h"
#include "quantforge/thread_pool.h"
#include "src/pipeline/job_plan.h"

namespace qf {

struct CalibrationOptions {
  std::filesystem::path data;       // LoadEvalData's formats
  std::filesystem::path tokenizer;  // empty: OpenModelTokenizer's search of model_dir
  int64_t samples = 128;
  int64_t seq_len = 0;  // 0: min(512, max_position_embeddings)
  // Also observe lm_head's input (the final norm's output): only when a recipe quantizes it.
  bool lm_head_input = false;
  CalibrationProgressCallback progress;  // may be empty
  // More hooks that see every activation after the amax observer (e.g. WeightCalibrator's
  // Hessian collection), and a callback once each decoder layer is done (LayerwiseCallbacks).
  ForwardHooks* extra_hooks = nullptr;
  std::function<void(int64_t layer)> on_layer_done;
  // Sequential calibration: each layer re-run with these weights and hooks after on_layer_done
  // (LayerwiseCallbacks::rerun_transform); empty: the unquantized model throughout.
  WeightTransform rerun_transform;
  ForwardHooks* rerun_hooks = nullptr;
};

struct CalibrationResult {
  std::map<std::string, float> amax;  // quantizer name -> max |activation|
  int64_t sequences = 0;
  int64_t seq_len = 0;
  std::string tokenizer;  // describes the tokenizer used ("" for input_ids data)
  double seconds = 0.0;   // the layer-by-layer run
};

// The calibration sequences cut from `stream` (CutSequences, quantforge/eval.h). seq_len 0 means
// min(512, max_positions); a seq_len above max_positions (when > 0) is refused with a qf::Error
// naming `data`, as eval refuses it, rather than silently shortened.
std::vector<std::vector<int32_t>> CalibrationSequences(std::span<const int32_t> stream,
                                                       std::optional<int32_t> bos,
                                                       int64_t samples, int64_t seq_len,
                                                       int64_t max_positions,
                                                       const std::string& data);

// Loads the model in `model_dir` and the data, and observes every activation site. Throws
// qf::Error for a missing data file, a missing tokenizer (text data), no or too few tokens.
CalibrationResult Calibrate(const std::filesystem::path& model_dir,
                            const CalibrationOptions& options, ThreadPool* pool);

// Runs `first` then `second` (may be null) on every activation: the second sees what the first
// left (e.g. fake-quantized inputs, then Hessian collection).
class HookChain : public ForwardHooks {
 public:
  HookChain(ForwardHooks* first, ForwardHooks* second) : first_(first), second_(second) {}
  void OnActivation(const ActivationSite& site, float* x, int64_t rows, int64_t cols,
                    int64_t ld) override {
    first_->OnActivation(site, x, rows, cols, ld);
    if (second_ != nullptr) second_->OnActivation(site, x, rows, cols, ld);
  }

 private:
  ForwardHooks* first_;
  ForwardHooks* second_;
};

// What a serving engine quantizes at run time under the calibrated job (after ApplyCalibration):
// static NVFP4 / FP8 inputs with the exported input_scale (amax / 2688 or / 448, in F32 as the
// exporter computes it) and the FP8 KV cache, for SimulationHooks (eval.h). Empty when the job
// quantizes no activation.
QuantizationScheme ActivationScheme(const JobPlan& job);

// Whether the lm_head's input is quantized (then calibration must observe it).
bool LmHeadInputQuantized(const JobPlan& job);

// Fills the job's input amax (max over each fused group and each MoE layer's routed experts:
// loaders need one input_scale per fused GEMM) and the KV jobs' k/v amax. Throws qf::Error naming
// a quantizer the forward pass never observed.
void ApplyCalibration(JobPlan& job, const std::map<std::string, float>& amax);

}  // namespace qf
