// AutoQuantize's sensitivity score and the in-memory simulation of an assignment.
//
// Score (Model Optimizer's `gradient` method, AutoQuantizeGradientSearcher): for a decision group
// and a candidate format,
//   S = sum over calibration batches, modules of the group, tokens and output features of
//       clamp(g * dy, +-1e10)^2
// with g = dL/dY of the module output (qf::GradientModel, L the summed NLL) and dy the change of
// that module's output when only it is quantized as its exported checkpoint is served: the weight
// fake-quantized (quantize, then dequantize, with the numerics layer's quantizers, NVFP4 members
// of a fused q/k/v or gate/up sharing the max amax as the exporter makes them), and for FP8 / MX,
// whose modelopt-layout exports the engine runs with quantized inputs (per-token FP8, per-32 MX),
// the input too: dy = Q(X) W_q^T - X W^T (NVFP4 W4A16: X (W_q - W)^T). kNone scores 0. This is
// the diagonal-Fisher (second-order Taylor) estimate of the loss increase. grad.h's loss is a sum
// where ModelOpt's is a per-batch mean; with equal-sized batches this scales every score by one
// constant and changes no decision.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "quantforge/autoquant.h"
#include "quantforge/grad.h"
#include "quantforge/model.h"
#include "quantforge/thread_pool.h"
#include "quantforge/tokenizer.h"

namespace qf {

// Quantizes and dequantizes `weight` [rows, cols] in place in `format` (kNone: unchanged).
// `global_amax` is the fused group's NVFP4 amax (ignored for other formats). Throws qf::Error
// naming `name` on NaN / Inf.
void FakeQuantizeWeight(std::span<float> weight, int64_t rows, int64_t cols, AutoFormat format,
                        std::optional<float> global_amax, const std::string& name,
                        ThreadPool* pool);

// Per module: the shared NVFP4 global amax of its fusion key, for the modules whose key has two
// or more members in one decision group (read from `weights`).
std::map<std::string, float> FusionGlobalAmax(std::span<const DecisionGroup> groups,
                                              const WeightSource& weights, ThreadPool* pool);

// A Model weight transform that fake-quantizes every module of every group in its assigned
// format (others untouched): the assignment simulated on the engine's forward pass.
WeightTransform MakeAssignmentTransform(std::span<const DecisionGroup> groups,
                                        const Assignment& assignment,
                                        const std::map<std::string, float>& fusion_amax,
                                        ThreadPool* pool);

struct ScoreProgress {
  int64_t batches_done = 0;
  int64_t batches_total = 0;
  double seconds = 0.0;
};

struct ScoreOptions {
  int64_t batch_tokens = 2048;  // sequences per backward pass: max(1, batch_tokens / seq_len)
  std::function<void(const ScoreProgress&)> progress;
};

// The gradient scores of every group and candidate over `sequences` (ScoreTable layout of
// autoquant.h, before MakeScoresMonotone). Deterministic: batches and modules are summed in a
// fixed order in double.
ScoreTable GradientScores(const GradientModel& model, const WeightSource& weights,
                          std::span<const DecisionGroup> groups,
                          const std::vector<std::vector<int32_t>>& sequences, ThreadPool* pool,
                          const ScoreOptions& options = {});

// ---------------------------------------------------------------------------------------------
// One scoring run over a checkpoint directory: what `quantforge autoquant` and `sweep` share.

struct ScoringInputs {
  std::filesystem::path model;      // Hugging Face checkpoint directory
  std::filesystem::path calib;      // text, JSONL "text" or JSONL "input_ids"
  std::filesystem::path tokenizer;  // empty: found in the model directory
  std::string formats = "nvfp4,fp8,none";
  int64_t calib_samples = 64;  // sequences, clipped to the data
  int64_t seq_len = 256;       // tokens per sequence (BOS included), clipped to the context
  int64_t batch_tokens = 2048;
  // GradientOptions::layerwise: one decoder layer's weights resident at a time (grad.h "Memory");
  // the default, so scoring streams a model larger than RAM. false: the whole F32 model.
  bool layerwise = true;
  std::function<void(const ScoreProgress&)> progress;
};

struct ScoredModel {
  std::vector<DecisionGroup> groups;
  ScoreTable raw_scores;  // GradientScores as measured
  ScoreTable scores;      // made monotone (what the solver sees)
  int64_t num_sequences = 0;
  int64_t seq_len = 0;
  std::optional<int32_t> bos_id;
  double seconds = 0.0;
};

// Groups, tokenizer, calibration sequences, GradientModel and scores. Throws qf::Error naming
// the file on a missing model, tokenizer or calibration text.
ScoredModel ScoreCheckpoint(const ScoringInputs& inputs, ThreadPool* pool);


}  // namespace qf
