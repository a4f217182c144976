// Perplexity over non-overlapping sequences (the convention is stated in quantforge/eval.h).
// Logits are formed kLogitRows rows at a time, so memory stays at batch * hidden activations plus
// kLogitRows * vocab floats, never tokens * vocab.
#include <algorithm>
#include <chrono>
#include <cmath>

#include "quantforge/error.h"
#include "quantforge/eval.h"

namespace qf {
namespace {

constexpr int64_t kLogitRows = 64;

// -ln softmax(row)[target], in double.
double TokenNll(const float* row, int64_t vocab, int32_t target) {
  const float max_logit = *std::max_element(row, row + vocab);
  double sum = 0.0;
  for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(row[v]) - max_logit);
  return static_cast<double>(max_logit) + std::log(sum) - static_cast<double>(row[target]);
}

}  // namespace

EvalResult EvaluatePerplexity(const Model& model, std::span<const int32_t> stream,
                              const EvalOptions& options) {
  const ModelConfig& config = model.config();
  const int64_t seq_len = options.seq_len;
  if (seq_len < 2) {
    throw Error("--seq-len must be at least 2 (one token predicts the next), found " +
                std::to_string(seq_len));
  }
  if (seq_len > config.max_position_embeddings) {
    throw Error("--seq-len " + std::to_string(seq_len) +
                " is longer than the model's context (max_position_embeddings " +
                std::to_string(config.max_position_embeddings) + ")");
  }
  const int64_t data_per_seq = options.bos_id ? seq_len - 1 : seq_len;
  int64_t available = static_cast<int64_t>(stream.size());
  if (options.max_tokens > 0) available = std::min(available, options.max_tokens);
  const int64_t num_sequences = available / data_per_seq;
  if (num_sequences == 0) {
    throw Error("data too short: " + std::to_string(available) + " tokens" +
                (options.max_tokens > 0 ? " (after --max-tokens)" : "") + ", one sequence of " +
                std::to_string(seq_len) + " needs " + std::to_string(data_per_seq) +
                " data tokens");
  }
  const int64_t vocab = config.vocab_size;
  const int64_t hidden_size = config.hidden_size;
  const int64_t per_batch = std::max<int64_t>(1, options.batch_tokens / seq_len);

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::vector<int32_t>> batch_tokens;
  std::vector<float> hidden;
  std::vector<float> logits(static_cast<size_t>(kLogitRows * vocab));
  double nll_sum = 0.0;
  EvalResult result;
  for (int64_t first = 0; first < num_sequences; first += per_batch) {
    const int64_t count = std::min(per_batch, num_sequences - first);
    batch_tokens.assign(static_cast<size_t>(count), {});
    TokenBatch batch;
    for (int64_t s = 0; s < count; ++s) {
      std::vector<int32_t>& seq = batch_tokens[s];
      if (options.bos_id) seq.push_back(*options.bos_id);
      const auto begin = stream.begin() + (first + s) * data_per_seq;
      seq.insert(seq.end(), begin, begin + data_per_seq);
      batch.sequences.emplace_back(seq);
    }
    model.Forward(batch, hidden);
    // Rows of sequence s: [s * seq_len, (s + 1) * seq_len); row i predicts token i + 1.
    for (int64_t s = 0; s < count; ++s) {
      const std::vector<int32_t>& seq = batch_tokens[s];
      for (int64_t row = 0; row < seq_len - 1; row += kLogitRows) {
        const int64_t rows = std::min(kLogitRows, seq_len - 1 - row);
        model.Logits(hidden.data() + (s * seq_len + row) * hidden_size, rows, logits.data());
        for (int64_t r = 0; r < rows; ++r) {
          nll_sum += TokenNll(logits.data() + r * vocab, vocab, seq[row + r + 1]);
        }
      }
    }
    result.sequences += count;
    result.tokens += count * (seq_len - 1);
    if (options.progress) {
      options.progress(
          {result.sequences, num_sequences, result.tokens,
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()});
    }
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.nll = nll_sum / static_cast<double>(result.tokens);
  result.perplexity = std::exp(result.nll);
  return result;
}

}  // namespace qf
