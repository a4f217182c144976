// Ancestral sampling from a model: text drawn from the model's own distribution, the in-domain
// evaluation set of a model that comes without its data. The cross-entropy of a quantized model Q
// on samples of the original P estimates H(P) + KL(P || Q), so perplexity on them measures what
// quantization lost (docs/EVAL.md, "Model-sampled evaluation data").
//
// Determinism: token t of sequence s is drawn with the uniform u(seed, s, t) from Philox4x32
// (quantforge/formats.h) and an inverse CDF over the softmax computed in double, so the result
// depends on (model, seed, options) only: not on the thread count, and not on how many sequences
// run in one forward pass (as long as the model's logits do not, which Model::Forward promises).
//
// Cost: there is no KV cache, so every step runs the forward pass over the whole prefix:
// O(seq_len^2) token-forwards per sequence (plus O(seq_len^3) attention). Fine for small models
// (stories260K: 64 x 256 tokens in about 2 minutes on the shared 2-core machine, 2.1M
// token-forwards), not meant for billion-parameter ones.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "quantforge/model.h"

namespace qf {

struct SampleOptions {
  int64_t num_sequences = 1;
  // Tokens per sequence, the start token included (eval's --seq-len convention): seq_len - 1
  // tokens are drawn. At most the model's max_position_embeddings; at least 2.
  int64_t seq_len = 256;
  uint64_t seed = 0;
  // Logits are divided by it; 0 is greedy decoding (argmax, the first index on ties).
  double temperature = 1.0;
  // Keep the k largest logits (the lower index first on ties), 0: the whole vocabulary.
  int64_t top_k = 0;
  // The first token of every sequence (BOS). Required: a causal LM needs one input to predict from.
  int32_t start_id = 1;
  // Sequences decoded together per forward pass: max(1, batch_tokens / seq_len).
  int64_t batch_tokens = 4096;
  // Called after every step of every group: sequences finished so far, steps of this group.
  std::function<void(int64_t sequences_done, int64_t step, int64_t num_steps)> progress;
};

// Draws one token from `logits` with the uniform `u` in [0, 1): p = softmax(logits / temperature)
// over the top_k largest logits (all when 0), every exp and sum in double, cumulative in index
// order; returns the first index whose cumulative probability exceeds u * total (the last index
// with p > 0 if rounding leaves none). temperature 0 returns the argmax. Never throws: callers
// check temperature >= 0 and top_k >= 0.
int32_t SampleToken(std::span<const float> logits, double temperature, int64_t top_k, double u);

// The uniform of token `position` of sequence `sequence`: word pair (0, 1) of
// Philox4x32({lo32(sequence), hi32(sequence), position, 0}, {lo32(seed), hi32(seed)}), 53 bits,
// in [0, 1).
double SampleUniform(uint64_t seed, uint64_t sequence, uint32_t position);

// num_sequences sequences of seq_len tokens, each [start_id, drawn tokens...]. Throws qf::Error
// on seq_len < 2 or beyond the model's context, num_sequences < 1, a negative temperature or
// top_k, or a start_id outside the vocabulary.
std::vector<std::vector<int32_t>> SampleSequences(const Model& model, const SampleOptions& options);

}  // namespace qf
