// The Llama-family model: its configuration (from a Hugging Face config.json), where its weights
// come from, and an FP32 forward pass on the CPU built for calibration and evaluation.
//
// Supported architectures: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM (q/k/v biases).
// Any other `architectures[0]` is refused with a qf::Error listing these. The forward pass follows
// Hugging Face transformers' modeling_llama.py: RMSNorm, RoPE in the rotate_half convention (with
// "linear" and "llama3" rope_scaling), grouped-query attention with a causal mask (and Mistral's
// sliding window), SwiGLU MLP, tied or separate lm_head. Weights are widened to F32 once at load.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quantforge/tensor.h"
#include "quantforge/thread_pool.h"

namespace qf {

enum class RopeScalingKind { kNone, kLinear, kLlama3 };

// transformers' rope_scaling dict; fields unused by `kind` keep their defaults.
struct RopeScaling {
  RopeScalingKind kind = RopeScalingKind::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0;                     // llama3
  double high_freq_factor = 4.0;                    // llama3
  int64_t original_max_position_embeddings = 8192;  // llama3
};

struct ModelConfig {
  std::string architecture;  // e.g. "LlamaForCausalLM"
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // defaults to num_attention_heads
  int64_t head_dim = 0;             // defaults to hidden_size / num_attention_heads
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;       // q_proj/k_proj/v_proj carry biases (Qwen2; Llama attention_bias)
  bool o_bias = false;         // o_proj carries a bias (Llama attention_bias)
  bool mlp_bias = false;       // gate/up/down carry biases (Llama mlp_bias)
  int64_t sliding_window = 0;  // 0: full causal attention
  std::optional<int64_t> bos_token_id;
  std::optional<int64_t> eos_token_id;
};

// The architectures ParseModelConfig accepts.
std::vector<std::string_view> SupportedArchitectures();

// Parses config.json text; `path` only names the file in errors. Checks every size is positive
// and the head arithmetic is consistent (heads divisible by kv heads).
ModelConfig ParseModelConfig(std::string_view json_text, const std::string& path);
// Reads DIR/config.json.
ModelConfig LoadModelConfig(const std::filesystem::path& dir);

// Where the weights come from: a checkpoint, or a test's in-memory tensors. A view returned by
// Find stays valid as long as the source lives.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual std::optional<TensorView> Find(std::string_view name) const = 0;
  // Names the source in error messages (a directory, "in-memory").
  virtual std::string Describe() const = 0;
  // Tells the source a caller is done with tensor `name` (it copied what it needed): a checkpoint
  // unmaps its pages, so a layer-by-layer pass holds one layer's mappings at a time. Views of it
  // from Find become invalid; a later Find maps it again. Unknown names are ignored. Default:
  // nothing to release (in-memory sources).
  virtual void Release(std::string_view name) const { (void)name; }
};

// Opens the safetensors checkpoint in `dir` (single file or sharded) as a WeightSource.
std::unique_ptr<WeightSource> OpenCheckpointWeights(const std::filesystem::path& dir);

// ---------------------------------------------------------------------------------------------
// Quantizer hooks. The model knows nothing of formats: calibration and simulation plug in here.

enum class ActivationKind {
  kLinearInput,  // the input of one or more Linear layers (fused q|k|v and gate|up share one)
  kKey,          // attention keys after RoPE, [tokens, num_kv_heads * head_dim]
  kValue,        // attention values, [tokens, num_kv_heads * head_dim]
};

struct ActivationSite {
  ActivationKind kind = ActivationKind::kLinearInput;
  int64_t layer = 0;  // decoder layer index; num_hidden_layers for lm_head's input
  // Hugging Face module names reading this activation, e.g. {"model.layers.0.self_attn.q_proj",
  // "...k_proj", "...v_proj"}; for kKey / kValue the k_proj / v_proj module.
  std::span<const std::string> modules;
};

class ForwardHooks {
 public:
  virtual ~ForwardHooks() = default;
  // x is [rows, cols] with row stride ld; a hook may change it in place (fake quantization).
  // Called on the thread that runs Forward, between BLAS calls, in a fixed order (layer by layer:
  // q|k|v input, keys, values, o_proj input, gate|up input, down_proj input; then lm_head input).
  virtual void OnActivation(const ActivationSite& site, float* x, int64_t rows, int64_t cols,
                            int64_t ld) = 0;
};

// Applied once per Linear weight ("model.layers.0.mlp.down_proj.weight", "lm_head.weight") right
// after widening to F32 and before q|k|v and gate|up are stacked: weight fake quantization
// (quantize, then dequantize in place). Embeddings and norms are not passed.
using WeightTransform = std::function<void(const std::string& name, std::span<float> weight,
                                           int64_t rows, int64_t cols)>;

struct LoadOptions {
  WeightTransform weight_transform;  // empty: weights as stored
  // WeightSource::Release each tensor as soon as it is widened (layer-by-layer runs: only one
  // tensor's mapping is alive while a layer loads).
  bool release_weights = false;
};

// Sequences to run at once. Each sequence starts at position 0 and attends only to itself.
struct TokenBatch {
  std::vector<std::span<const int32_t>> sequences;
  int64_t NumTokens() const;
};

class Model {
 public:
  // Loads and widens every weight; throws qf::Error naming a missing tensor, a wrong shape or an
  // unsupported dtype. `pool` is kept for the forward pass (may be nullptr).
  static std::unique_ptr<Model> Load(const ModelConfig& config, const WeightSource& weights,
                                     ThreadPool* pool, const LoadOptions& options = {});
  // LoadModelConfig(dir) + OpenCheckpointWeights(dir).
  static std::unique_ptr<Model> LoadDir(const std::filesystem::path& dir, ThreadPool* pool,
                                        const LoadOptions& options = {});

  virtual ~Model() = default;
  virtual const ModelConfig& config() const = 0;

  // Runs every decoder layer and the final norm; `hidden` becomes [NumTokens, hidden_size], the
  // sequences' tokens concatenated in order. Throws qf::Error on an empty sequence, a token id
  // outside the vocabulary or a sequence longer than max_position_embeddings.
  // `hooks` (may be null) sees every activation site.
  virtual void Forward(const TokenBatch& batch, std::vector<float>& hidden,
                       ForwardHooks* hooks) const = 0;
  void Forward(const TokenBatch& batch, std::vector<float>& hidden) const {
    Forward(batch, hidden, nullptr);
  }
  // lm_head over `num_rows` rows of final hidden states: logits [num_rows, vocab_size]. With
  // hooks, `hidden` is first passed to them as lm_head's input (and may be changed in place).
  virtual void Logits(float* hidden, int64_t num_rows, float* logits,
                      ForwardHooks* hooks) const = 0;
  void Logits(const float* hidden, int64_t num_rows, float* logits) const;
  // Forward + Logits for every token: [NumTokens, vocab_size].
  std::vector<float> ForwardLogits(const TokenBatch& batch) const;
};

// ---------------------------------------------------------------------------------------------
// Layer-by-layer runs: calibration of models larger than memory (the way llm-compressor's
// sequential pipeline works). The residual stream of every token of a fixed sequence set stays
// in memory (F32) between layers; the weights are loaded one decoder layer at a time, run over
// every sequence in batches, and freed (their checkpoint pages unmapped) before the next layer.
//
// Peak resident memory, bytes (docs/ENGINE.md, "Layer-by-layer calibration", has measurements):
//   4 * num_tokens * hidden                        residual stream (F32, kept between layers)
// + max(embedding rows touched,                    embedding step: the rows read from the table
//       4 * P_layer                                one layer's F32 weights, plus the larger of
//       + max(4 * B * (2 * hidden + max(qkv + q, 2 * intermediate))    one batch's activations
//               + 4 * 64 * max_seq_len * workers,                       and score blocks,
//             largest stored tensor of the layer)) its mapping while it is widened
// + fixed: code, libraries, OpenBLAS's GEMM buffers (~32 MiB per calling thread), tokenizer
// with B the tokens of a batch (options.batch_tokens), qkv = (heads + 2 kv_heads) * head_dim,
// q = heads * head_dim. Address space adds the whole embedding table's mapping during the
// embedding step (vocab * hidden * stored bytes) and malloc's per-thread arenas.
// EstimateLayerwiseMemory computes the terms that depend on the model and the sequences.

struct LayerwiseOptions {
  // Consecutive sequences are grouped into batches of at most this many tokens (at least one
  // sequence each). Model::Forward over the same batches gives bit-identical activations.
  int64_t batch_tokens = 4096;
  // After the last layer, apply the final norm and show the result to the hooks as lm_head's
  // input (site layer num_hidden_layers, module "lm_head"), batch by batch. Off by default: the
  // default recipes do not quantize lm_head, and skipping it saves the final pass.
  bool lm_head_input = false;
};

struct LayerwiseProgress {
  int64_t layer = 0;  // the decoder layer running, 0-based
  int64_t num_layers = 0;
  int64_t tokens_done = 0;  // tokens of the set through `layer` so far
  int64_t num_tokens = 0;   // tokens of the set
  double seconds = 0.0;     // since Run started
};

struct LayerwiseCallbacks {
  // Called once layer l has run over every sequence and its weights are freed, before layer
  // l + 1 is loaded: where GPTQ quantizes layer l with the Hessians its hooks gathered during
  // the pass, then frees them. Called for l = 0, 1, ... in order.
  std::function<void(int64_t layer)> on_layer_done;
  // Called after each batch of each layer, on the thread that runs Run.
  std::function<void(const LayerwiseProgress&)> progress;
  // Sequential calibration (Model Optimizer's layerwise GPTQ): when set, after on_layer_done(l)
  // layer l runs again over every sequence from the residual stream it received, its weights
  // passed through this transform instead of LoadOptions' (e.g. the quantized weights just made)
  // and its activations through rerun_hooks (may be null), so layer l + 1 sees the quantized
  // layer's output. Holds a second copy of the residual stream.
  WeightTransform rerun_transform;
  ForwardHooks* rerun_hooks = nullptr;
};

// The model-dependent terms of the peak-memory formula above, in bytes, for a checkpoint stored
// in BF16.
struct LayerwiseMemory {
  uint64_t residual = 0;           // 4 * num_tokens * hidden
  uint64_t embedding_rows = 0;     // stored bytes of the rows touched (at most the whole table)
  uint64_t layer_weights = 0;      // 4 * P_layer
  uint64_t batch_activations = 0;  // largest batch's activations + attention score blocks
  uint64_t load_mapping = 0;       // stored bytes of the layer's largest tensor
  uint64_t Total() const {
    return residual +
           std::max(embedding_rows, layer_weights + std::max(batch_activations, load_mapping));
  }
};
// `num_sequences` sequences of `seq_len` tokens, `num_workers` pool workers (1 without a pool).
LayerwiseMemory EstimateLayerwiseMemory(const ModelConfig& config, int64_t num_sequences,
                                        int64_t seq_len, int64_t num_workers,
                                        const LayerwiseOptions& options = {});

class LayerwiseRunner {
 public:
  // `weights` must outlive the runner. With a checkpoint source every tensor is released (its
  // pages unmapped) as soon as it is widened. `load` may carry a weight transform (fake
  // quantization of the layer's weights, applied as Model::Load does).
  LayerwiseRunner(const ModelConfig& config, const WeightSource& weights, ThreadPool* pool,
                  const LoadOptions& load = {}, const LayerwiseOptions& options = {});

  // Embeds `sequences` (each starts at position 0 and attends only to itself), then runs every
  // decoder layer over all of them, one layer loaded at a time; `hooks` (may be null) see every
  // activation site in the order Model::Forward shows them within a batch, layer by layer over
  // all batches. Throws qf::Error as Model::Forward does (checked before any layer is loaded),
  // or naming a missing or malformed tensor of the layer being loaded.
  void Run(const TokenBatch& sequences, ForwardHooks* hooks,
           const LayerwiseCallbacks& callbacks = {});

  // The residual stream after Run, [NumTokens, hidden_size]; after the final norm when
  // lm_head_input is set, and then equal bit for bit to Model::Forward's `hidden` over the same
  // batches.
  const std::vector<float>& hidden() const { return hidden_; }

 private:
  ModelConfig config_;
  const WeightSource& weights_;
  ThreadPool* pool_;
  LoadOptions load_;
  LayerwiseOptions options_;
  std::vector<float> hidden_;
};

}  // namespace qf
