// Per-layer construction of a Llama-family model (Llama, Mistral, Qwen2) from Hugging Face tensor
// names: the embedding, one decoder layer, the final norm and lm_head, each loaded on its own
// from a WeightSource with the LoadOptions weight transform applied.
//
// Two users: LlamaModel (llama_model.cc) loads everything once; LayerwiseRunner
// (layerwise_runner.cc) and the backward pass (src/grad) load one decoder layer at a time, run it
// and drop it, so only one layer's F32 weights are ever resident. Both get bit-identical weights:
// the same widening, the same stacking of q|k|v and gate|up, the transform called in the same
// order (q, k, v, o, gate, up, down within a layer; lm_head last).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "quantforge/model.h"
#include "src/model/attention.h"
#include "src/model/decoder_layer.h"
#include "src/model/linear.h"
#include "src/model/rmsnorm.h"
#include "src/util/aligned_buffer.h"

namespace qf::model {

// The F32 weights of one Llama decoder layer, as the forward pass uses them.
struct LlamaLayerWeights {
  RmsNorm input_norm;           // input_layernorm
  Linear qkv;                   // q_proj | k_proj | v_proj stacked by rows: [QkvWidth, hidden]
  Linear o;                     // o_proj: [hidden, num_heads * head_dim]
  RmsNorm post_attention_norm;  // post_attention_layernorm
  Linear gate_up;               // gate_proj | up_proj stacked by rows: [2 * intermediate, hidden]
  Linear down;                  // down_proj: [hidden, intermediate]
};

// The rows of `batch` (its sequences' tokens concatenated) with their positions. Throws qf::Error
// on an empty batch or sequence, a token id outside [0, vocab_size) or a sequence longer than
// max_position_embeddings.
BatchLayout LayoutBatch(const ModelConfig& config, const TokenBatch& batch);

// "model.layers.<layer>." (the Hugging Face module prefix of decoder layer `layer`).
std::string LlamaLayerPrefix(int64_t layer);
// Every checkpoint tensor decoder layer `layer` reads (weights, biases, norms), in load order:
// what a streaming caller releases (WeightSource::Release) once the layer is loaded.
std::vector<std::string> LlamaLayerTensorNames(const ModelConfig& config, int64_t layer);

// The attention geometry and RoPE inverse frequencies shared by every layer.
AttentionShape LlamaAttentionShape(const ModelConfig& config);
std::vector<double> LlamaRopeInverseFrequencies(const ModelConfig& config);

// Loads and widens decoder layer `layer`'s weights (transform applied to each Linear weight in
// the order q, k, v, o, gate, up, down; with options.release_weights each tensor is released
// from the source right after widening). Throws qf::Error naming a missing tensor, a wrong shape
// or an unsupported dtype.
LlamaLayerWeights LoadLlamaLayerWeights(const ModelConfig& config, const WeightSource& source,
                                        const LoadOptions& options, int64_t layer);
// The runnable layer [(input_layernorm, attention), (post_attention_layernorm, SwiGLU MLP)] made
// from `weights` (moved in); its hooks report module names under LlamaLayerPrefix(layer).
DecoderLayer MakeLlamaDecoderLayer(const ModelConfig& config, int64_t layer,
                                   LlamaLayerWeights weights, const std::vector<double>& inv_freq);
// LoadLlamaLayerWeights + MakeLlamaDecoderLayer.
DecoderLayer LoadLlamaDecoderLayer(const ModelConfig& config, const WeightSource& source,
                                   const LoadOptions& options, int64_t layer,
                                   const std::vector<double>& inv_freq);

// model.embed_tokens.weight widened to F32: [vocab_size, hidden].
AlignedBuffer<float> LoadLlamaEmbedding(const ModelConfig& config, const WeightSource& source);
// The embedding rows of `tokens`, widened into out[tokens.size(), hidden], reading only those rows
// of the stored table (a 128k-vocabulary table is never widened whole). Token ids must already be
// checked against vocab_size.
void GatherLlamaEmbedding(const ModelConfig& config, const WeightSource& source,
                          std::span<const int32_t> tokens, float* out);
// model.norm.weight.
RmsNorm LoadLlamaFinalNorm(const ModelConfig& config, const WeightSource& source);
// Whether lm_head needs its own buffer: untied, stored anyway, or tied but to be transformed (a
// transformed lm_head must not change the embedding). Otherwise lm_head is the embedding.
bool LlamaLmHeadIsSeparate(const ModelConfig& config, const WeightSource& source,
                           const LoadOptions& options);
// lm_head.weight ([vocab_size, hidden]; the embedding's values when tied and not stored), with the
// transform applied as "lm_head.weight".
AlignedBuffer<float> LoadLlamaLmHead(const ModelConfig& config, const WeightSource& source,
                                     const LoadOptions& options);

}  // namespace qf::model
