// The backward pass of the Llama-family model (LlamaForCausalLM, MistralForCausalLM,
// Qwen2ForCausalLM): gradients of the language-model loss with respect to the output of every
// decoder Linear module, for AutoQuantize's gradient score (docs/GRAD.md; Model Optimizer's
// AutoQuantizeGradientSearcher: S = sum over elements of (dL/dY * dY_quant)^2).
//
// The loss. Each sequence of the batch predicts its tokens 1..T-1 from its own prefix, as
// qf::EvaluatePerplexity does (quantforge/eval.h), and
//   L = SUM over the batch's predicted tokens of -ln softmax(logits)[target]   (natural log)
// -- the SUM, not the mean: AutoQuantize sums scores over batches, and with a sum the gradient of
// one token does not depend on how many other tokens share its batch. L / tokens equals
// EvaluatePerplexity's nll on the same sequences (to F32 rounding of the forward pass).
//
// What is differentiated: embedding lookup (as a constant input), RMSNorm (inputs only),
// q|k|v projections (+ biases), RoPE, grouped-query attention with the causal mask and Mistral's
// sliding window, o_proj, SwiGLU (silu(gate) * up), down_proj, the final norm and lm_head (tied or
// not). Weight gradients are never formed: AutoQuantize needs dL/dY and X only.
//
// Memory. Resident (the default): the whole F32 model (lm_head shares the embedding when tied)
// and, per layer, the forward activations of all the batch's tokens: the residual stream before
// each norm (2 x hidden), q|k|v after RoPE (QkvWidth), the attention context (heads x head_dim),
// gate|up (2 x intermediate) and the SwiGLU output (intermediate), i.e.
//   4 x tokens x (2 hidden + QkvWidth + heads x head_dim + 3 intermediate) bytes per layer,
// released layer by layer as the backward sweep passes; plus one layer's backward temporaries
// (about as much again), 4 x 64 x vocab bytes of logits and 16 x len^2 bytes of attention
// scratch per worker (len: the longest sequence).
// Layer by layer (GradientOptions::layerwise): the embedding and lm_head, the residual stream
// entering each layer for all tokens (4 x tokens x hidden bytes per layer), and one decoder
// layer's weights and activations at a time. Each layer is loaded twice per Backward: in the
// forward sweep, and in the backward sweep, where its activations are recomputed from its saved
// input (gradient checkpointing). The results are bit-identical to the resident mode.
//
// Determinism: work is split by data size (never by thread count) and every reduction runs in a
// fixed order, so the gradients and the visit order do not depend on the thread count.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string_view>

#include "quantforge/model.h"
#include "quantforge/thread_pool.h"

namespace qf {

// One decoder Linear module's view of the backward pass, valid only during the visit call.
// Both matrices are dense row-major with no padding (fused q|k|v and gate|up are split). Rows are
// the batch's tokens in TokenBatch order, every token included: a sequence's last token feeds
// nothing that is scored (causal attention, and it predicts nothing), so its rows of dL/dY are 0.
struct LinearGradient {
  std::string_view module;       // Hugging Face module name, e.g. "model.layers.0.self_attn.q_proj"
  int64_t layer = 0;             // decoder layer index
  const float* input = nullptr;  // X [rows, in_features]: the module's forward input
  int64_t in_features = 0;
  const float* grad_output = nullptr;  // dL/dY [rows, out_features], L the summed NLL
  int64_t out_features = 0;
  int64_t rows = 0;
  const float* weight = nullptr;  // W [out_features, in_features] in F32, as loaded
};

struct GradResult {
  double loss = 0.0;   // L: sum over predicted tokens of the NLL (natural log)
  int64_t tokens = 0;  // predicted tokens: sum over sequences of (length - 1)
};

struct GradientOptions {
  // Keep no decoder-layer weights resident: load each layer when a sweep reaches it (see
  // "Memory" above). With Load, `weights` must then outlive the GradientModel.
  bool layerwise = false;
};

class GradientModel {
 public:
  // Loads and widens the weights (F32 / BF16 / F16) with the same checks, errors and values as
  // qf::Model::Load (src/model/llama_layers.h). `pool` (may be null) runs both passes.
  static std::unique_ptr<GradientModel> Load(const ModelConfig& config, const WeightSource& weights,
                                             ThreadPool* pool, const GradientOptions& options = {});
  // LoadModelConfig(dir) + OpenCheckpointWeights(dir); the model owns the checkpoint.
  static std::unique_ptr<GradientModel> LoadDir(const std::filesystem::path& dir, ThreadPool* pool,
                                                const GradientOptions& options = {});

  virtual ~GradientModel() = default;
  virtual const ModelConfig& config() const = 0;

  // Forward with caches, then back through every layer. Calls `visit` once per decoder Linear
  // module, on the calling thread, in the order the backward pass reaches them: layers last to
  // first, and within a layer down_proj, gate_proj, up_proj, o_proj, q_proj, k_proj, v_proj.
  // Throws qf::Error on an empty sequence, a token outside the vocabulary or a sequence longer
  // than max_position_embeddings. A one-token sequence predicts nothing (it adds no loss).
  virtual GradResult Backward(const TokenBatch& batch,
                              const std::function<void(const LinearGradient&)>& visit) const = 0;
};

}  // namespace qf
