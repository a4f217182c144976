// GradientModel for the Llama family: a forward pass that keeps each layer's activations (or, layer
// by layer, only each layer's input), the loss head, then the backward sweep through the layers
// calling the visitor per Linear module (quantforge/grad.h). Weights come from src/model's
// per-layer loaders, so they are the same F32 values qf::Model runs on.
#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "quantforge/grad.h"
#include "src/grad/attention_backward.h"
#include "src/grad/cross_entropy.h"
#include "src/grad/linear_backward.h"
#include "src/grad/rmsnorm_backward.h"
#include "src/grad/rope_backward.h"
#include "src/grad/swiglu_backward.h"
#include "src/model/llama_layers.h"
#include "src/model/rope.h"

namespace qf {
namespace grad {
namespace {

std::vector<float> Zeros(int64_t n) { return std::vector<float>(static_cast<size_t>(n)); }

// Columns [col, col + width) of m[rows, ld] as a dense [rows, width] matrix.
std::vector<float> Columns(const float* m, int64_t ld, int64_t rows, int64_t col, int64_t width) {
  std::vector<float> out(static_cast<size_t>(rows * width));
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(out.data() + r * width, m + r * ld + col, static_cast<size_t>(width) * 4);
  }
  return out;
}

// What one layer's backward needs from its forward (see grad.h for the memory this is).
struct LayerActivations {
  std::vector<float> residual_in;   // [T, hidden] entering input_layernorm
  std::vector<float> qkv;           // [T, QkvWidth] after RoPE on q and k
  std::vector<float> context;       // [T, heads * head_dim], o_proj's input
  std::vector<float> residual_mid;  // [T, hidden] entering post_attention_layernorm
  std::vector<float> gate_up;       // [T, 2 * intermediate] before the activation
  std::vector<float> act;           // [T, intermediate], down_proj's input
};

// Module names of one layer, kept for the visit's string_view.
struct LayerModules {
  std::string q, k, v, o, gate, up, down;
};

class LlamaGradientModel final : public GradientModel {
 public:
  // `owned` (may be null) is the checkpoint LoadDir opened; `source` refers to it or to the
  // caller's weights, which then outlive the model in layerwise mode.
  LlamaGradientModel(const ModelConfig& config, const WeightSource& source,
                     std::unique_ptr<WeightSource> owned, ThreadPool* pool,
                     const GradientOptions& options)
      : config_(config), pool_(pool), owned_source_(std::move(owned)) {
    model::UseSingleThreadedBlas();
    attention_ = model::LlamaAttentionShape(config);
    inv_freq_ = model::LlamaRopeInverseFrequencies(config);
    embed_ = model::LoadLlamaEmbedding(config, source);
    for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
      if (!options.layerwise) layers_.push_back(LoadLayer(source, l));
      const std::string p = model::LlamaLayerPrefix(l);
      modules_.push_back({p + "self_attn.q_proj", p + "self_attn.k_proj", p + "self_attn.v_proj",
                          p + "self_attn.o_proj", p + "mlp.gate_proj", p + "mlp.up_proj",
                          p + "mlp.down_proj"});
    }
    if (options.layerwise) layer_source_ = &source;
    final_norm_ = model::LoadLlamaFinalNorm(config, source);
    if (model::LlamaLmHeadIsSeparate(config, source, {})) {
      lm_head_ = model::LoadLlamaLmHead(config, source, {});
    }
  }

  const ModelConfig& config() const override { return config_; }

  GradResult Backward(const TokenBatch& batch,
                      const std::function<void(const LinearGradient&)>& visit) const override {
    const model::BatchLayout layout = model::LayoutBatch(config_, batch);
    std::vector<int32_t> token_ids;
    for (const auto& seq : batch.sequences)
      token_ids.insert(token_ids.end(), seq.begin(), seq.end());
    const int64_t tokens = layout.NumTokens();
    const int64_t dim = config_.hidden_size;
    const model::RopeTable rope(inv_freq_, layout.max_seq_len);

    std::vector<float> x = Zeros(tokens * dim);
    for (int64_t t = 0; t < tokens; ++t) {
      std::memcpy(x.data() + t * dim, embed_.data() + token_ids[t] * dim,
                  static_cast<size_t>(dim) * 4);
    }
    const size_t num_layers = modules_.size();
    std::vector<LayerActivations> acts(num_layers);
    for (size_t l = 0; l < num_layers; ++l) {
      std::optional<model::LlamaLayerWeights> loaded;
      LayerForward(Layer(l, loaded), layout, rope, x, acts[l]);
      // Layerwise: keep only the layer's input; the backward sweep recomputes the rest.
      if (loaded) acts[l] = {std::move(acts[l].residual_in), {}, {}, {}, {}, {}};
    }

    std::vector<float> final_hidden = Zeros(tokens * dim);
    final_norm_.Forward(x.data(), tokens, final_hidden.data(), pool_);
    std::vector<float> dfinal = Zeros(tokens * dim);
    const float* head = lm_head_.size() != 0 ? lm_head_.data() : embed_.data();
    const LossSum loss = LmHeadLossBackward(head, config_.vocab_size, dim, layout, token_ids,
                                            final_hidden.data(), dfinal.data(), pool_);
    // dx: dL/d(residual stream), carried from the top of the stack down.
    std::vector<float> dx = Zeros(tokens * dim);
    RmsNormBackward(final_norm_, x.data(), tokens, dfinal.data(), dx.data(), pool_);
    for (size_t l = num_layers; l-- > 0;) {
      std::optional<model::LlamaLayerWeights> loaded;
      const model::LlamaLayerWeights& w = Layer(l, loaded);
      if (loaded) {
        // The same inputs and arithmetic as the forward sweep: bit-identical activations.
        std::vector<float> residual = acts[l].residual_in;
        LayerForward(w, layout, rope, residual, acts[l]);
      }
      LayerBackward(w, layout, rope, l, acts[l], dx, visit);
      acts[l] = {};  // released as the sweep passes
    }
    return {loss.loss, loss.tokens};
  }

 private:
  model::LlamaLayerWeights LoadLayer(const WeightSource& source, int64_t l) const {
    return model::LoadLlamaLayerWeights(config_, source, LoadOptions{}, l);
  }

  // Decoder layer l's weights: resident, or loaded into `loaded` (layerwise).
  const model::LlamaLayerWeights& Layer(size_t l,
                                        std::optional<model::LlamaLayerWeights>& loaded) const {
    if (layer_source_ == nullptr) return layers_[l];
    loaded.emplace(LoadLayer(*layer_source_, static_cast<int64_t>(l)));
    return *loaded;
  }

  // x enters as the layer's input and leaves as its output.
  void LayerForward(const model::LlamaLayerWeights& w, const model::BatchLayout& layout,
                    const model::RopeTable& rope, std::vector<float>& x,
                    LayerActivations& a) const {
    const int64_t tokens = layout.NumTokens();
    const int64_t dim = config_.hidden_size;
    const int64_t ld_qkv = attention_.QkvWidth();
    const int64_t q_width = attention_.num_heads * attention_.head_dim;
    const int64_t inter = config_.intermediate_size;
    std::vector<float> normed = Zeros(tokens * dim);
    std::vector<float> out = Zeros(tokens * dim);

    a.residual_in = x;
    w.input_norm.Forward(x.data(), tokens, normed.data(), pool_);
    a.qkv = Zeros(tokens * ld_qkv);
    w.qkv.Forward(normed.data(), dim, tokens, a.qkv.data(), ld_qkv, pool_);
    for (int64_t t = 0; t < tokens; ++t) {
      model::ApplyRope(rope, layout.positions[t], attention_.num_heads + attention_.num_kv_heads,
                       a.qkv.data() + t * ld_qkv);
    }
    a.context = Zeros(tokens * q_width);
    AttentionCoreForward(attention_, layout, a.qkv.data(), a.context.data(), pool_);
    w.o.Forward(a.context.data(), q_width, tokens, out.data(), dim, pool_);
    for (size_t i = 0; i < x.size(); ++i) x[i] += out[i];

    a.residual_mid = x;
    w.post_attention_norm.Forward(x.data(), tokens, normed.data(), pool_);
    a.gate_up = Zeros(tokens * 2 * inter);
    w.gate_up.Forward(normed.data(), dim, tokens, a.gate_up.data(), 2 * inter, pool_);
    a.act = Zeros(tokens * inter);
    SwiGluForward(a.gate_up.data(), tokens, inter, a.act.data(), pool_);
    w.down.Forward(a.act.data(), inter, tokens, out.data(), dim, pool_);
    for (size_t i = 0; i < x.size(); ++i) x[i] += out[i];
  }

  // dx enters as dL/d(layer output) and leaves as dL/d(layer input).
  void LayerBackward(const model::LlamaLayerWeights& w, const model::BatchLayout& layout,
                     const model::RopeTable& rope, size_t l, const LayerActivations& a,
                     std::vector<float>& dx,
                     const std::function<void(const LinearGradient&)>& visit) const {
    const LayerModules& names = modules_[l];
    const int64_t layer = static_cast<int64_t>(l);
    const int64_t tokens = layout.NumTokens();
    const int64_t dim = config_.hidden_size;
    const int64_t d = attention_.head_dim;
    const int64_t ld_qkv = attention_.QkvWidth();
    const int64_t q_width = attention_.num_heads * d;
    const int64_t kv_width = attention_.num_kv_heads * d;
    const int64_t inter = config_.intermediate_size;
    std::vector<float> normed = Zeros(tokens * dim);
    std::vector<float> dnormed = Zeros(tokens * dim);
    std::vector<float> dresidual = Zeros(tokens * dim);

    // MLP block: out = mid + down(swiglu(gate_up(norm(mid)))).
    visit({names.down, layer, a.act.data(), inter, dx.data(), dim, tokens, w.down.weight.data()});
    std::vector<float> dact = Zeros(tokens * inter);
    LinearBackwardInput(w.down, dx.data(), dim, tokens, dact.data(), inter, pool_);
    std::vector<float> dgate_up = Zeros(tokens * 2 * inter);
    SwiGluBackward(a.gate_up.data(), tokens, inter, dact.data(), dgate_up.data(), pool_);
    w.post_attention_norm.Forward(a.residual_mid.data(), tokens, normed.data(), pool_);
    {
      const std::vector<float> dgate = Columns(dgate_up.data(), 2 * inter, tokens, 0, inter);
      visit({names.gate, layer, normed.data(), dim, dgate.data(), inter, tokens,
             w.gate_up.weight.data()});
      const std::vector<float> dup = Columns(dgate_up.data(), 2 * inter, tokens, inter, inter);
      visit({names.up, layer, normed.data(), dim, dup.data(), inter, tokens,
             w.gate_up.weight.data() + inter * dim});
    }
    LinearBackwardInput(w.gate_up, dgate_up.data(), 2 * inter, tokens, dnormed.data(), dim, pool_);
    RmsNormBackward(w.post_attention_norm, a.residual_mid.data(), tokens, dnormed.data(),
                    dresidual.data(), pool_);
    for (size_t i = 0; i < dx.size(); ++i) dx[i] += dresidual[i];

    // Attention block: mid = in + o(attention(rope(qkv(norm(in))))).
    visit({names.o, layer, a.context.data(), q_width, dx.data(), dim, tokens, w.o.weight.data()});
    std::vector<float> dcontext = Zeros(tokens * q_width);
    LinearBackwardInput(w.o, dx.data(), dim, tokens, dcontext.data(), q_width, pool_);
    std::vector<float> dqkv = Zeros(tokens * ld_qkv);
    AttentionCoreBackward(attention_, layout, a.qkv.data(), dcontext.data(), dqkv.data(), pool_);
    for (int64_t t = 0; t < tokens; ++t) {
      ApplyRopeBackward(rope, layout.positions[t], attention_.num_heads + attention_.num_kv_heads,
                        dqkv.data() + t * ld_qkv);
    }
    w.input_norm.Forward(a.residual_in.data(), tokens, normed.data(), pool_);
    {
      const std::vector<float> dq = Columns(dqkv.data(), ld_qkv, tokens, 0, q_width);
      visit({names.q, layer, normed.data(), dim, dq.data(), q_width, tokens, w.qkv.weight.data()});
      const std::vector<float> dk = Columns(dqkv.data(), ld_qkv, tokens, q_width, kv_width);
      visit({names.k, layer, normed.data(), dim, dk.data(), kv_width, tokens,
             w.qkv.weight.data() + q_width * dim});
      const std::vector<float> dv =
          Columns(dqkv.data(), ld_qkv, tokens, q_width + kv_width, kv_width);
      visit({names.v, layer, normed.data(), dim, dv.data(), kv_width, tokens,
             w.qkv.weight.data() + (q_width + kv_width) * dim});
    }
    LinearBackwardInput(w.qkv, dqkv.data(), ld_qkv, tokens, dnormed.data(), dim, pool_);
    RmsNormBackward(w.input_norm, a.residual_in.data(), tokens, dnormed.data(), dresidual.data(),
                    pool_);
    for (size_t i = 0; i < dx.size(); ++i) dx[i] += dresidual[i];
  }

  ModelConfig config_;
  ThreadPool* pool_;
  std::unique_ptr<WeightSource> owned_source_;  // LoadDir's checkpoint
  const WeightSource* layer_source_ = nullptr;  // layerwise: where layers are loaded from
  model::AttentionShape attention_;
  std::vector<double> inv_freq_;
  AlignedBuffer<float> embed_;                    // [vocab, hidden]
  std::vector<model::LlamaLayerWeights> layers_;  // resident mode only
  std::vector<LayerModules> modules_;
  model::RmsNorm final_norm_;
  AlignedBuffer<float> lm_head_;  // [vocab, hidden]; empty when it is the embedding
};

}  // namespace
}  // namespace grad

std::unique_ptr<GradientModel> GradientModel::Load(const ModelConfig& config,
                                                   const WeightSource& weights, ThreadPool* pool,
                                                   const GradientOptions& options) {
  return std::make_unique<grad::LlamaGradientModel>(config, weights, nullptr, pool, options);
}

std::unique_ptr<GradientModel> GradientModel::LoadDir(const std::filesystem::path& dir,
                                                      ThreadPool* pool,
                                                      const GradientOptions& options) {
  const ModelConfig config = LoadModelConfig(dir);
  std::unique_ptr<WeightSource> weights = OpenCheckpointWeights(dir);
  const WeightSource& source = *weights;
  return std::make_unique<grad::LlamaGradientModel>(config, source, std::move(weights), pool,
                                                    options);
}

}  // namespace qf
