// Perplexity over non-overlapping sequences (the convention is stated in quantforge/eval.h), and
// with a reference model the KL divergence and top-1 agreement of the next-token distributions.
// Logits are formed kLogitRows rows at a time, so memory stays at batch * hidden activations plus
// kLogitRows * vocab floats (twice with a reference), never tokens * vocab.
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

// ln of sum_v exp(row_v - max), in double, v in order.
double LogSumExpShifted(const float* row, int64_t vocab, float max_logit) {
  double sum = 0.0;
  for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(row[v]) - max_logit);
  return std::log(sum);
}

void CheckSeqLen(int64_t seq_len, const ModelConfig& config, const char* which) {
  if (seq_len > config.max_position_embeddings) {
    throw Error("--seq-len " + std::to_string(seq_len) + " is longer than the " + which +
                "'s context (max_position_embeddings " +
                std::to_string(config.max_position_embeddings) + ")");
  }
}

}  // namespace

NextTokenComparison CompareNextToken(std::span<const float> reference_logits,
                                     std::span<const float> model_logits) {
  QF_CHECK(reference_logits.size() == model_logits.size() && !model_logits.empty());
  const int64_t vocab = static_cast<int64_t>(model_logits.size());
  const float* p = reference_logits.data();
  const float* q = model_logits.data();
  const int64_t p_arg = std::max_element(p, p + vocab) - p;  // first index of the max
  const int64_t q_arg = std::max_element(q, q + vocab) - q;
  const double p_norm = static_cast<double>(p[p_arg]) + LogSumExpShifted(p, vocab, p[p_arg]);
  const double q_norm = static_cast<double>(q[q_arg]) + LogSumExpShifted(q, vocab, q[q_arg]);
  double kl = 0.0;
  for (int64_t v = 0; v < vocab; ++v) {
    const double log_p = static_cast<double>(p[v]) - p_norm;
    const double log_q = static_cast<double>(q[v]) - q_norm;
    kl += std::exp(log_p) * (log_p - log_q);
  }
  return {kl, p_arg == q_arg};
}

EvalResult EvaluatePerplexity(const Model& model, std::span<const int32_t> stream,
                              const EvalOptions& options) {
  const ModelConfig& config = model.config();
  const int64_t seq_len = options.seq_len;
  if (seq_len < 2) {
    throw Error("--seq-len must be at least 2 (one token predicts the next), found " +
                std::to_string(seq_len));
  }
  CheckSeqLen(seq_len, config, "model");
  const Model* reference = options.reference;
  if (reference != nullptr) {
    CheckSeqLen(seq_len, reference->config(), "reference model");
    if (reference->config().vocab_size != config.vocab_size) {
      throw Error("the reference model's vocab_size " +
                  std::to_string(reference->config().vocab_size) + " differs from the model's " +
                  std::to_string(config.vocab_size) + " (KL needs one vocabulary)");
    }
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
  std::vector<float> ref_hidden, ref_logits;
  if (reference != nullptr) ref_logits.resize(logits.size());
  const int64_t ref_hidden_size = reference != nullptr ? reference->config().hidden_size : 0;
  double nll_sum = 0.0, ref_nll_sum = 0.0, kl_sum = 0.0;
  int64_t top1_count = 0;
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
    model.Forward(batch, hidden, options.hooks);
    if (reference != nullptr) reference->Forward(batch, ref_hidden, options.reference_hooks);
    // Rows of sequence s: [s * seq_len, (s + 1) * seq_len); row i predicts token i + 1.
    for (int64_t s = 0; s < count; ++s) {
      const std::vector<int32_t>& seq = batch_tokens[s];
      for (int64_t row = 0; row < seq_len - 1; row += kLogitRows) {
        const int64_t rows = std::min(kLogitRows, seq_len - 1 - row);
        model.Logits(hidden.data() + (s * seq_len + row) * hidden_size, rows, logits.data(),
                     options.hooks);
        for (int64_t r = 0; r < rows; ++r) {
          nll_sum += TokenNll(logits.data() + r * vocab, vocab, seq[row + r + 1]);
        }
        if (reference == nullptr) continue;
        reference->Logits(ref_hidden.data() + (s * seq_len + row) * ref_hidden_size, rows,
                          ref_logits.data(), options.reference_hooks);
        for (int64_t r = 0; r < rows; ++r) {
          const std::span<const float> p(ref_logits.data() + r * vocab, vocab);
          const std::span<const float> q(logits.data() + r * vocab, vocab);
          ref_nll_sum += TokenNll(p.data(), vocab, seq[row + r + 1]);
          const NextTokenComparison c = CompareNextToken(p, q);
          kl_sum += c.kl;
          top1_count += c.top1_agrees ? 1 : 0;
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
  if (reference != nullptr) {
    const double n = static_cast<double>(result.tokens);
    result.kl = kl_sum / n;
    result.top1 = static_cast<double>(top1_count) / n;
    result.reference_nll = ref_nll_sum / n;
  }
  return result;
}

}  // namespace qf
