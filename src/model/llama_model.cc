// The Llama-family model (Llama, Mistral, Qwen2), whole in memory: every layer built once by
// llama_layers.h, then embedding, layers, final norm and lm_head run per batch.
#include <cstring>

#include "quantforge/model.h"
#include "src/model/decoder_layer.h"
#include "src/model/linear.h"
#include "src/model/llama_layers.h"

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

class LlamaModel final : public Model {
 public:
  LlamaModel(const ModelConfig& config, const WeightSource& source, ThreadPool* pool,
             const LoadOptions& options)
      : config_(config), pool_(pool) {
    UseSingleThreadedBlas();
    WarnIfSlowBlasCore();
    embed_ = LoadLlamaEmbedding(config, source);
    const std::vector<double> inv_freq = LlamaRopeInverseFrequencies(config);
    for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
      layers_.push_back(LoadLlamaDecoderLayer(config, source, options, l, inv_freq));
    }
    final_norm_ = LoadLlamaFinalNorm(config, source);
    if (LlamaLmHeadIsSeparate(config, source, options)) {
      lm_head_ = LoadLlamaLmHead(config, source, options);
    }
  }

  const ModelConfig& config() const override { return config_; }

  void Forward(const TokenBatch& batch, std::vector<float>& hidden,
               ForwardHooks* hooks) const override {
    const BatchLayout layout = LayoutBatch(config_, batch);
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
