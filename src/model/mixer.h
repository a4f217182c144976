// The pieces a decoder layer is made of. A layer is a list of residual blocks, each an RMSNorm
// followed by a Mixer whose output is added to the residual stream:
//   Llama / Mistral / Qwen2 layer = [(input_layernorm, attention), (post_attention_layernorm, mlp)]
// A Nemotron-H layer is a single (norm, mixer) pair whose mixer is Mamba-2, attention, MLP or MoE,
// so new block kinds are new Mixer implementations in new files; nothing else changes.
#pragma once

#include <cstdint>
#include <vector>

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

class Mixer {
 public:
  virtual ~Mixer() = default;
  // in: [NumTokens, hidden] normalized activations; out: [NumTokens, hidden], overwritten.
  virtual void Forward(const BatchLayout& batch, const float* in, float* out,
                       ThreadPool* pool) const = 0;
};

}  // namespace qf::model
