// LayerwiseRunner: the model run one decoder layer at a time over a fixed set of sequences (see
// model.h for the memory formula). Bit-identical to Model::Forward over the same batches: the
// same loaders (llama_layers.h), the same DecoderLayer::Forward on the same rows, so every GEMM
// sees the same operands with the same tiling; only the loop order (layers outside, batches
// inside) differs, and batches never interact.
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "quantforge/model.h"
#include "src/model/decoder_layer.h"
#include "src/model/linear.h"
#include "src/model/llama_layers.h"

namespace qf {
namespace {

// One batch: sequences [first, last) of the set, their rows [row, row + layout.NumTokens()).
struct Batch {
  size_t first = 0;
  size_t last = 0;
  int64_t row = 0;
  model::BatchLayout layout;
};

// Consecutive sequences, at most `batch_tokens` tokens per batch (at least one sequence).
std::vector<Batch> SplitBatches(const ModelConfig& config, const TokenBatch& sequences,
                                int64_t batch_tokens) {
  std::vector<Batch> batches;
  int64_t row = 0;
  size_t first = 0;
  while (first < sequences.sequences.size()) {
    size_t last = first;
    int64_t tokens = 0;
    while (last < sequences.sequences.size()) {
      const int64_t len = static_cast<int64_t>(sequences.sequences[last].size());
      if (last > first && tokens + len > batch_tokens) break;
      tokens += len;
      ++last;
    }
    TokenBatch sub;
    sub.sequences.assign(sequences.sequences.begin() + static_cast<std::ptrdiff_t>(first),
                         sequences.sequences.begin() + static_cast<std::ptrdiff_t>(last));
    batches.push_back(Batch{first, last, row, model::LayoutBatch(config, sub)});
    row += tokens;
    first = last;
  }
  return batches;
}

}  // namespace

LayerwiseMemory EstimateLayerwiseMemory(const ModelConfig& config, int64_t num_sequences,
                                        int64_t seq_len, int64_t num_workers,
                                        const LayerwiseOptions& options) {
  const uint64_t hidden = static_cast<uint64_t>(config.hidden_size);
  const uint64_t inter = static_cast<uint64_t>(config.intermediate_size);
  const uint64_t q = static_cast<uint64_t>(config.num_attention_heads * config.head_dim);
  const uint64_t kv = static_cast<uint64_t>(config.num_key_value_heads * config.head_dim);
  const uint64_t qkv = q + 2 * kv;
  const uint64_t tokens = static_cast<uint64_t>(num_sequences * seq_len);
  const uint64_t per_batch =
      static_cast<uint64_t>(std::max<int64_t>(1, options.batch_tokens / seq_len));
  const uint64_t batch_tokens =
      std::min(static_cast<uint64_t>(num_sequences), per_batch) * static_cast<uint64_t>(seq_len);

  LayerwiseMemory m;
  m.residual = 4 * tokens * hidden;
  // Two norms, q|k|v, o and gate|up, down (+ biases): the parameters of one layer.
  uint64_t params = 2 * hidden + qkv * hidden + hidden * q + 2 * inter * hidden + hidden * inter;
  if (config.qkv_bias) params += qkv;
  if (config.o_bias) params += hidden;
  if (config.mlp_bias) params += 2 * inter + hidden;
  m.layer_weights = 4 * params;
  // DecoderLayer keeps `normed` and `mixed` [B, hidden]; inside, attention holds q|k|v and the
  // context [B, q] at once, the MLP gate|up [B, 2 * inter]. Each worker has a 64-query block of
  // scores per sequence.
  m.batch_activations = 4 * batch_tokens * (2 * hidden + std::max(qkv + q, 2 * inter)) +
                        4 * 64 * static_cast<uint64_t>(seq_len * std::max<int64_t>(1, num_workers));
  // BF16 checkpoints: 2 bytes per element; the rows touched, never more than the table.
  const uint64_t rows = std::min(tokens, static_cast<uint64_t>(config.vocab_size));
  m.embedding_rows = 2 * rows * hidden;
  m.load_mapping = 2 * std::max({q * hidden, kv * hidden, inter * hidden});
  return m;
}

LayerwiseRunner::LayerwiseRunner(const ModelConfig& config, const WeightSource& weights,
                                 ThreadPool* pool, const LoadOptions& load,
                                 const LayerwiseOptions& options)
    : config_(config), weights_(weights), pool_(pool), load_(load), options_(options) {
  load_.release_weights = true;
#ifdef __GLIBC__
  // Buffers of 1 MiB and more straight from mmap, back to the system on free. glibc's default
  // threshold adapts upwards (to 32 MiB) once a large block is freed; the next layer's 16-24 MiB
  // weights then come from the heap, interleave with small allocations that outlive them, and
  // the heap grows by about one buffer per layer (measured on the 1b preset: +24 MiB of RSS and
  // address space per layer from layer 10 on; with this setting, flat). Process-wide, and
  // harmless elsewhere: a page-fault cost only on buffers that size.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
  model::UseSingleThreadedBlas();
  model::WarnIfSlowBlasCore();
}

void LayerwiseRunner::Run(const TokenBatch& sequences, ForwardHooks* hooks,
                          const LayerwiseCallbacks& callbacks) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  // Every sequence is checked (tokens, lengths) before anything is loaded.
  const std::vector<Batch> batches = SplitBatches(config_, sequences, options_.batch_tokens);
  const int64_t dim = config_.hidden_size;
  const int64_t num_tokens = sequences.NumTokens();
  hidden_.assign(static_cast<size_t>(num_tokens * dim), 0.0f);
  hidden_.shrink_to_fit();

  // Only the rows of the tokens used are read and widened (one lookup of the table, whose
  // mapping goes right afterwards).
  {
    std::vector<int32_t> tokens;
    tokens.reserve(static_cast<size_t>(num_tokens));
    for (const auto& seq : sequences.sequences) tokens.insert(tokens.end(), seq.begin(), seq.end());
    model::GatherLlamaEmbedding(config_, weights_, tokens, hidden_.data());
  }
  weights_.Release("model.embed_tokens.weight");

  const std::vector<double> inv_freq = model::LlamaRopeInverseFrequencies(config_);
  LayerwiseProgress progress{.num_layers = config_.num_hidden_layers, .num_tokens = num_tokens};
  std::vector<float> layer_input;  // rerun_transform: the residual stream layer l received
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    if (callbacks.rerun_transform) layer_input = hidden_;
    {
      // Scoped: the layer's F32 weights are freed before on_layer_done and the next load.
      const model::DecoderLayer layer =
          model::LoadLlamaDecoderLayer(config_, weights_, load_, l, inv_freq);
      progress.layer = l;
      progress.tokens_done = 0;
      for (const Batch& b : batches) {
        layer.Forward(b.layout, hidden_.data() + b.row * dim, dim,
                      model::ForwardContext{pool_, hooks, l});
        progress.tokens_done += b.layout.NumTokens();
        progress.seconds = std::chrono::duration<double>(Clock::now() - start).count();
        if (callbacks.progress) callbacks.progress(progress);
      }
    }
    if (callbacks.on_layer_done) callbacks.on_layer_done(l);
    if (callbacks.rerun_transform) {
      LoadOptions rerun = load_;
      rerun.weight_transform = callbacks.rerun_transform;
      const model::DecoderLayer layer =
          model::LoadLlamaDecoderLayer(config_, weights_, rerun, l, inv_freq);
      hidden_.swap(layer_input);
      for (const Batch& b : batches) {
        layer.Forward(b.layout, hidden_.data() + b.row * dim, dim,
                      model::ForwardContext{pool_, callbacks.rerun_hooks, l});
      }
    }
  }
  layer_input = {};

  if (options_.lm_head_input) {
    const model::RmsNorm final_norm = model::LoadLlamaFinalNorm(config_, weights_);
    weights_.Release("model.norm.weight");
    const std::vector<std::string> lm_head = {"lm_head"};
    std::vector<float> normed;
    for (const Batch& b : batches) {
      const int64_t rows = b.layout.NumTokens();
      float* x = hidden_.data() + b.row * dim;
      normed.resize(static_cast<size_t>(rows * dim));
      final_norm.Forward(x, rows, normed.data(), pool_);
      std::memcpy(x, normed.data(), normed.size() * sizeof(float));
      if (hooks != nullptr) {
        hooks->OnActivation({ActivationKind::kLinearInput, config_.num_hidden_layers, lm_head}, x,
                            rows, dim, dim);
      }
    }
  }
}

}  // namespace qf
