// Cross-entropy over the lm_head logits, chunked by rows of one sequence.
#include "src/grad/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "src/grad/linear_backward.h"
#include "src/model/linear.h"

namespace qf::grad {
namespace {
constexpr int64_t kLossRows = 64;
}  // namespace

double SoftmaxCrossEntropyRow(const float* logits, int64_t vocab, int32_t target, float* dlogits) {
  const float max_logit = *std::max_element(logits, logits + vocab);
  double sum = 0.0;
  for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(logits[v]) - max_logit);
  // Before dlogits is written: it may alias logits.
  const double nll =
      static_cast<double>(max_logit) + std::log(sum) - static_cast<double>(logits[target]);
  const double inv_sum = 1.0 / sum;
  for (int64_t v = 0; v < vocab; ++v) {
    dlogits[v] = static_cast<float>(std::exp(static_cast<double>(logits[v]) - max_logit) * inv_sum -
                                    (v == target ? 1.0 : 0.0));
  }
  return nll;
}

LossSum LmHeadLossBackward(const float* lm_head, int64_t vocab, int64_t hidden_size,
                           const model::BatchLayout& batch, std::span<const int32_t> token_ids,
                           const float* hidden, float* dhidden, ThreadPool* pool) {
  const int64_t dim = hidden_size;
  std::vector<float> logits(static_cast<size_t>(kLossRows * vocab));
  LossSum result;
  for (int64_t s = 0; s < batch.NumSequences(); ++s) {
    const int64_t begin = batch.seq_begin[s];
    const int64_t end = batch.seq_begin[s + 1];
    // The last row predicts nothing.
    std::fill(dhidden + (end - 1) * dim, dhidden + end * dim, 0.0f);
    for (int64_t row = begin; row < end - 1; row += kLossRows) {
      const int64_t rows = std::min(kLossRows, end - 1 - row);
      model::ParallelGemmNT(pool, rows, vocab, dim, hidden + row * dim, dim, lm_head, dim,
                            logits.data(), vocab);
      for (int64_t r = 0; r < rows; ++r) {
        float* z = logits.data() + r * vocab;
        result.loss += SoftmaxCrossEntropyRow(z, vocab, token_ids[row + r + 1], z);
      }
      result.tokens += rows;
      ParallelGemmNN(pool, rows, dim, vocab, logits.data(), vocab, lm_head, dhidden + row * dim,
                     dim);
    }
  }
  return result;
}

}  // namespace qf::grad
