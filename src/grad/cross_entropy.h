// The loss head: lm_head logits and the summed next-token cross-entropy with its gradient.
// Convention of quantforge/eval.h: row i of a sequence predicts the sequence's token i + 1; the
// last row of each sequence predicts nothing and gets a zero gradient.
//   nll(row) = logsumexp(z) - z[target],   dnll/dz = softmax(z) - onehot(target)
#pragma once

#include <cstdint>
#include <span>

#include "quantforge/thread_pool.h"
#include "src/model/mixer.h"

namespace qf::grad {

// -ln softmax(logits)[target] in double (qf::EvaluatePerplexity's arithmetic), and its gradient
// softmax(logits) - onehot(target) into dlogits[vocab] (may be `logits` itself).
double SoftmaxCrossEntropyRow(const float* logits, int64_t vocab, int32_t target, float* dlogits);

struct LossSum {
  double loss = 0.0;   // summed NLL, added in sequence and token order
  int64_t tokens = 0;  // predicted tokens
};

// lm_head[vocab, hidden_size] (the embedding when tied); hidden[tokens, hidden_size] are the
// final-norm outputs; `token_ids` the batch's tokens concatenated
// (the targets). dhidden[tokens, hidden_size] (overwritten) = dL/dhidden for L = the summed NLL.
// Logits are formed kLossRows rows at a time, so memory is kLossRows x vocab floats.
LossSum LmHeadLossBackward(const float* lm_head, int64_t vocab, int64_t hidden_size,
                           const model::BatchLayout& batch, std::span<const int32_t> token_ids,
                           const float* hidden, float* dhidden, ThreadPool* pool);

}  // namespace qf::grad
