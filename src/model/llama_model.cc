// The Llama-family model (Llama, Mistral, Qwen2): builds decoder layers of (norm, attention) and
// (norm, SwiGLU MLP) residual blocks from Hugging Face tensor names, and runs embedding, layers,
// final norm and lm_head.
#include <algorithm>
#include <cstring>

#include "quantforge/error.h"
#include "quantforge/model.h"
#include "src/model/attention.h"
#include "src/model/decoder_layer.h"
#include "src/model/linear.h"
#include "src/model/mlp.h"
#include "src/model/rope.h"
#include "src/model/weights.h"

namespace qf {

int64_t TokenBatch::NumTokens() const {
  int64_t n = 0;
  for (const auto& seq : sequences) n += static_cast<int64_t>(seq.size());
  return n;
}

void Model::Logits(const float* hidden, int64_t num_rows, float* logits) const {
  // Without hooks nothing writes to `hidden`.
  Logits(const_cast<float*>(hidden), num_rows, logits, nullptr);
}

std::vector<float> Model::ForwardLogits(const TokenBatch& batch) const {
  std::vector<float> hidden;
  Forward(batch, hidden);
  const int64_t rows = batch.NumTokens();
  std::vector<float> logits(static_cast<size_t>(rows * config().vocab_size));
  Logits(hidden.data(), rows, logits.data());
  return logits;
}

namespace model {
namespace {

void Transform(const LoadOptions& options, const std::string& name, float* weight, int64_t rows,
               int64_t cols) {
  if (options.weight_transform) {
    options.weight_transform(name, std::span<float>(weight, static_cast<size_t>(rows * cols)), rows,
                             cols);
  }
}

// Linear `name`.weight [out, in] (+ `name`.bias when has_bias).
Linear LoadLinear(const WeightSource& source, const LoadOptions& options, const std::string& name,
                  int64_t out, int64_t in, bool has_bias) {
  Linear linear;
  linear.in_features = in;
  linear.out_features = out;
  linear.weight = LoadF32(source, name + ".weight", {out, in});
  Transform(options, name + ".weight", linear.weight.data(), out, in);
  if (has_bias) {
    const AlignedBuffer<float> bias = LoadF32(source, name + ".bias", {out});
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
    Transform(options, names[i] + ".weight", linear.weight.data() + row * in, outs[i], in);
    if (has_bias) LoadRowsInto(source, names[i] + ".bias", {outs[i]}, linear.bias.data(), row);
    row += outs[i];
  }
  return linear;
}

RmsNorm LoadNorm(const WeightSource& source, const std::string& name, const ModelConfig& config) {
  RmsNorm norm;
  norm.size = config.hidden_size;
  norm.eps = static_cast<float>(config.rms_norm_eps);
  norm.weight = LoadF32(source, name, {config.hidden_size});
  return norm;
}

class LlamaModel final : public Model {
 public:
  LlamaModel(const ModelConfig& config, const WeightSource& source, ThreadPool* pool,
             const LoadOptions& options)
      : config_(config), pool_(pool) {
    UseSingleThreadedBlas();
    WarnIfSlowBlasCore();
    const int64_t hidden = config.hidden_size;
    embed_ = LoadF32(source, "model.embed_tokens.weight", {config.vocab_size, hidden});
    const std::vector<double> inv_freq =
        RopeInverseFrequencies(config.head_dim, config.rope_theta, config.rope_scaling);
    AttentionShape shape{hidden, config.num_attention_heads, config.num_key_value_heads,
                         config.head_dim, config.sliding_window};
    const int64_t q_out = config.num_attention_heads * config.head_dim;
    const int64_t kv_out = config.num_key_value_heads * config.head_dim;
    for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
      const std::string prefix = "model.layers." + std::to_string(l) + ".";
      const std::string attn = prefix + "self_attn.";
      const std::string mlp = prefix + "mlp.";
      // Loaded in checkpoint order (q, k, v, o, gate, up, down) into named locals, so a weight
      // transform sees a fixed order (function arguments have none).
      std::vector<ResidualBlock> blocks(2);
      blocks[0].norm = LoadNorm(source, prefix + "input_layernorm.weight", config);
      Linear qkv = LoadStacked(source, options, {attn + "q_proj", attn + "k_proj", attn + "v_proj"},
                               {q_out, kv_out, kv_out}, hidden, config.qkv_bias);
      Linear o = LoadLinear(source, options, attn + "o_proj", hidden, q_out, config.o_bias);
      blocks[0].mixer =
          std::make_unique<Attention>(shape, inv_freq, std::move(qkv), std::move(o), attn);
      blocks[1].norm = LoadNorm(source, prefix + "post_attention_layernorm.weight", config);
      Linear gate_up = LoadStacked(source, options, {mlp + "gate_proj", mlp + "up_proj"},
                                   {config.intermediate_size, config.intermediate_size}, hidden,
                                   config.mlp_bias);
      Linear down = LoadLinear(source, options, mlp + "down_proj", hidden, config.intermediate_size,
                               config.mlp_bias);
      blocks[1].mixer = std::make_unique<SwiGluMlp>(hidden, config.intermediate_size,
                                                    std::move(gate_up), std::move(down), mlp);
      layers_.emplace_back(std::move(blocks));
    }
    final_norm_ = LoadNorm(source, "model.norm.weight", config);
    if (!config.tie_word_embeddings || source.Find("lm_head.weight")) {
      // Some tied checkpoints still store lm_head.weight; using it is equivalent.
      lm_head_ = LoadF32(source, "lm_head.weight", {config.vocab_size, hidden});
    } else if (options.weight_transform) {
      // Tied: a transformed lm_head must not change the embedding, so it gets its own copy.
      lm_head_ = AlignedBuffer<float>(embed_.size());
      std::copy(embed_.data(), embed_.data() + embed_.size(), lm_head_.data());
    }
    if (lm_head_.size() != 0) {
      Transform(options, "lm_head.weight", lm_head_.data(), config.vocab_size, hidden);
    }
  }

  const ModelConfig& config() const override { return config_; }

  void Forward(const TokenBatch& batch, std::vector<float>& hidden,
               ForwardHooks* hooks) const override {
    const BatchLayout layout = Layout(batch);
    const int64_t dim = config_.hidden_size;
    hidden.resize(static_cast<size_t>(layout.NumTokens() * dim));
    int64_t row = 0;
    for (const auto& seq : batch.sequences) {
      for (const int32_t token : seq) {
        std::memcpy(hidden.data() + row * dim, embed_.data() + token * dim, dim * sizeof(float));
        ++row;
      }
    }
    for (size_t l = 0; l < layers_.size(); ++l) {
      layers_[l].Forward(layout, hidden.data(), dim,
                         ForwardContext{pool_, hooks, static_cast<int64_t>(l)});
    }
    std::vector<float> normed(hidden.size());
    final_norm_.Forward(hidden.data(), layout.NumTokens(), normed.data(), pool_);
    hidden.swap(normed);
  }

  void Logits(float* hidden, int64_t num_rows, float* logits, ForwardHooks* hooks) const override {
    if (hooks != nullptr) {
      hooks->OnActivation(
          {ActivationKind::kLinearInput, config_.num_hidden_layers, lm_head_module_}, hidden,
          num_rows, config_.hidden_size, config_.hidden_size);
    }
    const float* head = lm_head_.size() ? lm_head_.data() : embed_.data();
    ParallelGemmNT(pool_, num_rows, config_.vocab_size, config_.hidden_size, hidden,
                   config_.hidden_size, head, config_.hidden_size, logits, config_.vocab_size);
  }

 private:
  BatchLayout Layout(const TokenBatch& batch) const {
    BatchLayout layout;
    layout.seq_begin.push_back(0);
    for (size_t s = 0; s < batch.sequences.size(); ++s) {
      const auto& seq = batch.sequences[s];
      const int64_t len = static_cast<int64_t>(seq.size());
      if (len == 0) throw Error("sequence " + std::to_string(s) + " of the batch is empty");
      if (len > config_.max_position_embeddings) {
        throw Error("sequence of " + std::to_string(len) +
                    " tokens is longer than the model's max_position_embeddings (" +
                    std::to_string(config_.max_position_embeddings) + ")");
      }
      for (int64_t i = 0; i < len; ++i) {
        if (seq[i] < 0 || seq[i] >= config_.vocab_size) {
          throw Error("token id " + std::to_string(seq[i]) + " at index " + std::to_string(i) +
                      " of sequence " + std::to_string(s) + " is outside the vocabulary [0, " +
                      std::to_string(config_.vocab_size) + ")");
        }
        layout.positions.push_back(static_cast<int32_t>(i));
      }
      layout.seq_begin.push_back(layout.seq_begin.back() + len);
      layout.max_seq_len = std::max(layout.max_seq_len, len);
    }
    if (layout.NumTokens() == 0) throw Error("empty batch: no sequences to run");
    return layout;
  }

  ModelConfig config_;
  ThreadPool* pool_;
  AlignedBuffer<float> embed_;    // [vocab, hidden]
  AlignedBuffer<float> lm_head_;  // [vocab, hidden], empty when tied to embed_
  std::vector<DecoderLayer> layers_;
  RmsNorm final_norm_;
  std::vector<std::string> lm_head_module_ = {"lm_head"};
};

}  // namespace
}  // namespace model

std::unique_ptr<Model> Model::Load(const ModelConfig& config, const WeightSource& weights,
                                   ThreadPool* pool, const LoadOptions& options) {
  return std::make_unique<model::LlamaModel>(config, weights, pool, options);
}

std::unique_ptr<Model> Model::LoadDir(const std::filesystem::path& dir, ThreadPool* pool,
                                      const LoadOptions& options) {
  const ModelConfig config = LoadModelConfig(dir);
  const std::unique_ptr<WeightSource> weights = OpenCheckpointWeights(dir);
  return Load(config, *weights, pool, options);
}

}  // namespace qf
