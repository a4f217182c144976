// Per-layer construction of Llama-family models from Hugging Face tensor names (see
// llama_layers.h). Weights are loaded in checkpoint order into named locals, so a weight
// transform sees a fixed order (function arguments have none).
#include "src/model/llama_layers.h"

#include <algorithm>
#include <memory>

#include "quantforge/error.h"
#include "src/model/mlp.h"
#include "src/model/rope.h"
#include "src/model/weights.h"

namespace qf::model {
namespace {

void Transform(const LoadOptions& options, const std::string& name, float* weight, int64_t rows,
               int64_t cols) {
  if (options.weight_transform) {
    options.weight_transform(name, std::span<float>(weight, static_cast<size_t>(rows * cols)), rows,
                             cols);
  }
}

// Called once tensor `name` is widened: a streaming caller unmaps it right away, so at most one
// tensor's mapping is alive while a layer loads.
void Done(const WeightSource& source, const LoadOptions& options, const std::string& name) {
  if (options.release_weights) source.Release(name);
}

// Linear `name`.weight [out, in] (+ `name`.bias when has_bias).
Linear LoadLinear(const WeightSource& source, const LoadOptions& options, const std::string& name,
                  int64_t out, int64_t in, bool has_bias) {
  Linear linear;
  linear.in_features = in;
  linear.out_features = out;
  linear.weight = LoadF32(source, name + ".weight", {out, in});
  Done(source, options, name + ".weight");
  Transform(options, name + ".weight", linear.weight.data(), out, in);
  if (has_bias) {
    const AlignedBuffer<float> bias = LoadF32(source, name + ".bias", {out});
    Done(source, options, name + ".bias");
    linear.bias.assign(bias.data(), bias.data() + out);
  }
  return linear;
}

// Several Linear layers with the same input stacked by rows into one: [sum(outs), in].
Linear LoadStacked(const WeightSource& source, const LoadOptions& options,
                   const std::vector<std::string>& names, const std::vector<int64_t>& outs,
                   int64_t in, bool has_bias) {
  Linear linear;
  linear.in_features = in;
  for (int64_t out : outs) linear.out_features += out;
  linear.weight = AlignedBuffer<float>(static_cast<size_t>(linear.out_features * in));
  if (has_bias) linear.bias.resize(static_cast<size_t>(linear.out_features));
  int64_t row = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    LoadRowsInto(source, names[i] + ".weight", {outs[i], in}, linear.weight.data(), row);
    Done(source, options, names[i] + ".weight");
    Transform(options, names[i] + ".weight", linear.weight.data() + row * in, outs[i], in);
    if (has_bias) {
      LoadRowsInto(source, names[i] + ".bias", {outs[i]}, linear.bias.data(), row);
      Done(source, options, names[i] + ".bias");
    }
    row += outs[i];
  }
  return linear;
}

RmsNorm LoadNorm(const WeightSource& source, const LoadOptions& options, const std::string& name,
                 const ModelConfig& config) {
  RmsNorm norm;
  norm.size = config.hidden_size;
  norm.eps = static_cast<float>(config.rms_norm_eps);
  norm.weight = LoadF32(source, name, {config.hidden_size});
  Done(source, options, name);
  return norm;
}

}  // namespace

BatchLayout LayoutBatch(const ModelConfig& config, const TokenBatch& batch) {
  BatchLayout layout;
  layout.seq_begin.push_back(0);
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    const auto& seq = batch.sequences[s];
    const int64_t len = static_cast<int64_t>(seq.size());
    if (len == 0) throw Error("sequence " + std::to_string(s) + " of the batch is empty");
    if (len > config.max_position_embeddings) {
      throw Error("sequence of " + std::to_string(len) +
                  " tokens is longer than the model's max_position_embeddings (" +
                  std::to_string(config.max_position_embeddings) + ")");
    }
    for (int64_t i = 0; i < len; ++i) {
      if (seq[i] < 0 || seq[i] >= config.vocab_size) {
        throw Error("token id " + std::to_string(seq[i]) + " at index " + std::to_string(i) +
                    " of sequence " + std::to_string(s) + " is outside the vocabulary [0, " +
                    std::to_string(config.vocab_size) + ")");
      }
      layout.positions.push_back(static_cast<int32_t>(i));
    }
    layout.seq_begin.push_back(layout.seq_begin.back() + len);
    layout.max_seq_len = std::max(layout.max_seq_len, len);
  }
  if (layout.NumTokens() == 0) throw Error("empty batch: no sequences to run");
  return layout;
}

std::string LlamaLayerPrefix(int64_t layer) {
  return "model.layers." + std::to_string(layer) + ".";
}

std::vector<std::string> LlamaLayerTensorNames(const ModelConfig& config, int64_t layer) {
  const std::string prefix = LlamaLayerPrefix(layer);
  std::vector<std::string> names = {prefix + "input_layernorm.weight"};
  const auto add_linear = [&](const std::string& module, bool has_bias) {
    names.push_back(prefix + module + ".weight");
    if (has_bias) names.push_back(prefix + module + ".bias");
  };
  for (const char* proj : {"q_proj", "k_proj", "v_proj"}) {
    add_linear(std::string("self_attn.") + proj, config.qkv_bias);
  }
  add_linear("self_attn.o_proj", config.o_bias);
  names.push_back(prefix + "post_attention_layernorm.weight");
  for (const char* proj : {"gate_proj", "up_proj", "down_proj"}) {
    add_linear(std::string("mlp.") + proj, config.mlp_bias);
  }
  return names;
}

AttentionShape LlamaAttentionShape(const ModelConfig& config) {
  return AttentionShape{config.hidden_size, config.num_attention_heads, config.num_key_value_heads,
                        config.head_dim, config.sliding_window};
}

std::vector<double> LlamaRopeInverseFrequencies(const ModelConfig& config) {
  return RopeInverseFrequencies(config.head_dim, config.rope_theta, config.rope_scaling);
}

LlamaLayerWeights LoadLlamaLayerWeights(const ModelConfig& config, const WeightSource& source,
                                        const LoadOptions& options, int64_t layer) {
  const int64_t hidden = config.hidden_size;
  const int64_t q_out = config.num_attention_heads * config.head_dim;
  const int64_t kv_out = config.num_key_value_heads * config.head_dim;
  const std::string prefix = LlamaLayerPrefix(layer);
  const std::string attn = prefix + "self_attn.";
  const std::string mlp = prefix + "mlp.";
  LlamaLayerWeights w;
  w.input_norm = LoadNorm(source, options, prefix + "input_layernorm.weight", config);
  w.qkv = LoadStacked(source, options, {attn + "q_proj", attn + "k_proj", attn + "v_proj"},
                      {q_out, kv_out, kv_out}, hidden, config.qkv_bias);
  w.o = LoadLinear(source, options, attn + "o_proj", hidden, q_out, config.o_bias);
  w.post_attention_norm =
      LoadNorm(source, options, prefix + "post_attention_layernorm.weight", config);
  w.gate_up =
      LoadStacked(source, options, {mlp + "gate_proj", mlp + "up_proj"},
                  {config.intermediate_size, config.intermediate_size}, hidden, config.mlp_bias);
  w.down = LoadLinear(source, options, mlp + "down_proj", hidden, config.intermediate_size,
                      config.mlp_bias);
  return w;
}

DecoderLayer MakeLlamaDecoderLayer(const ModelConfig& config, int64_t layer,
                                   LlamaLayerWeights weights, const std::vector<double>& inv_freq) {
  const std::string prefix = LlamaLayerPrefix(layer);
  std::vector<ResidualBlock> blocks(2);
  blocks[0].norm = std::move(weights.input_norm);
  blocks[0].mixer =
      std::make_unique<Attention>(LlamaAttentionShape(config), inv_freq, std::move(weights.qkv),
                                  std::move(weights.o), prefix + "self_attn.");
  blocks[1].norm = std::move(weights.post_attention_norm);
  blocks[1].mixer = std::make_unique<SwiGluMlp>(config.hidden_size, config.intermediate_size,
                                                std::move(weights.gate_up), std::move(weights.down),
                                                prefix + "mlp.");
  return DecoderLayer(std::move(blocks));
}

DecoderLayer LoadLlamaDecoderLayer(const ModelConfig& config, const WeightSource& source,
                                   const LoadOptions& options, int64_t layer,
                                   const std::vector<double>& inv_freq) {
  return MakeLlamaDecoderLayer(config, layer, LoadLlamaLayerWeights(config, source, options, layer),
                               inv_freq);
}

AlignedBuffer<float> LoadLlamaEmbedding(const ModelConfig& config, const WeightSource& source) {
  return LoadF32(source, "model.embed_tokens.weight", {config.vocab_size, config.hidden_size});
}

void GatherLlamaEmbedding(const ModelConfig& config, const WeightSource& source,
                          std::span<const int32_t> tokens, float* out) {
  GatherRowsF32(source, "model.embed_tokens.weight", {config.vocab_size, config.hidden_size},
                tokens, out);
}

RmsNorm LoadLlamaFinalNorm(const ModelConfig& config, const WeightSource& source) {
  return LoadNorm(source, LoadOptions{}, "model.norm.weight", config);
}

bool LlamaLmHeadIsSeparate(const ModelConfig& config, const WeightSource& source,
                           const LoadOptions& options) {
  // Some tied checkpoints still store lm_head.weight; using it is equivalent.
  return !config.tie_word_embeddings || source.Find("lm_head.weight").has_value() ||
         static_cast<bool>(options.weight_transform);
}

AlignedBuffer<float> LoadLlamaLmHead(const ModelConfig& config, const WeightSource& source,
                                     const LoadOptions& options) {
  const Shape shape = {config.vocab_size, config.hidden_size};
  const bool stored = !config.tie_word_embeddings || source.Find("lm_head.weight").has_value();
  AlignedBuffer<float> head =
      LoadF32(source, stored ? "lm_head.weight" : "model.embed_tokens.weight", shape);
  Transform(options, "lm_head.weight", head.data(), config.vocab_size, config.hidden_size);
  return head;
}

}  // namespace qf::model
