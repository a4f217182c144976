// The pieces a decoder layer is made of. A layer is a list of residual blocks, each an RMSNorm
// followed by a Mixer whose output is added to the residual stream:
//   Llama / Mistral / Qwen2 layer = [(input_layernorm, attention), (post_attention_layernorm, mlp)]
// A Nemotron-H layer is a single (norm, mixer) pair whose mixer is Mamba-2, attention, MLP or MoE,
// so new block kinds are new Mixer implementations in new files; nothing else changes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "quantforge/model.h"
#include "quantforge/thread_pool.h"

namespace qf::model {

// How the batch's token rows split into sequences. Rows are the sequences' tokens concatenated;
// positions restart at 0 in every sequence.
struct BatchLayout {
  std::vector<int64_t> seq_begin;  // num_sequences + 1 offsets into the rows
  std::vector<int32_t> positions;  // one per row
  int64_t max_seq_len = 0;

  int64_t NumTokens() const { return seq_begin.empty() ? 0 : seq_begin.back(); }
  int64_t NumSequences() const { return static_cast<int64_t>(seq_begin.size()) - 1; }
};

// What every block's Forward gets besides its data.
struct ForwardContext {
  ThreadPool* pool = nullptr;     // may be null
  ForwardHooks* hooks = nullptr;  // may be null
  int64_t layer = 0;              // decoder layer index, for ActivationSite
};

// Calls the hooks, if any, on one activation site.
inline void Observe(const ForwardContext& ctx, ActivationKind kind,
                    std::span<const std::string> modules, float* x, int64_t rows, int64_t cols,
                    int64_t ld) {
  if (ctx.hooks != nullptr) ctx.hooks->OnActivation({kind, ctx.layer, modules}, x, rows, cols, ld);
}

class Mixer {
 public:
  virtual ~Mixer() = default;
  // in: [NumTokens, hidden] normalized activations (hooks may change them in place);
  // out: [NumTokens, hidden], overwritten.
  virtual void Forward(const BatchLayout& batch, float* in, float* out,
                       const ForwardContext& ctx) const = 0;
};

}  // namespace qf::model
