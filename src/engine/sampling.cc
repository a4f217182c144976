// Ancestral sampling (quantforge/sampling.h): Philox uniforms keyed by (seed, sequence, position)
// and an inverse CDF over a double softmax, so the tokens depend on nothing but the model and the
// options.
#include "quantforge/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "quantforge/error.h"
#include "quantforge/formats.h"

namespace qf {

int32_t SampleToken(std::span<const float> logits, double temperature, int64_t top_k, double u) {
  const int64_t n = static_cast<int64_t>(logits.size());
  if (n == 0) return 0;
  // Greedy: the first index of the maximum (std::max_element keeps the first on ties).
  if (temperature == 0.0) {
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  // Which indices take part: all, or the top_k largest (ties: the lower index ranks first, so
  // the set is a function of the logits alone).
  std::vector<char> keep(static_cast<size_t>(n), 1);
  if (top_k > 0 && top_k < n) {
    std::vector<int32_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::nth_element(order.begin(), order.begin() + (top_k - 1), order.end(),
                     [&](int32_t a, int32_t b) {
                       return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
                     });
    std::fill(keep.begin(), keep.end(), 0);
    for (int64_t i = 0; i < top_k; ++i) keep[order[i]] = 1;
  }
  double max_scaled = -std::numeric_limits<double>::infinity();
  for (int64_t v = 0; v < n; ++v) {
    if (keep[v]) max_scaled = std::max(max_scaled, static_cast<double>(logits[v]) / temperature);
  }
  // Unnormalized probabilities in double; the cumulative sum runs in index order.
  std::vector<double> weight(static_cast<size_t>(n), 0.0);
  double total = 0.0;
  for (int64_t v = 0; v < n; ++v) {
    if (!keep[v]) continue;
    weight[v] = std::exp(static_cast<double>(logits[v]) / temperature - max_scaled);
    total += weight[v];
  }
  const double target = u * total;
  double cumulative = 0.0;
  int32_t last_positive = 0;
  for (int64_t v = 0; v < n; ++v) {
    if (weight[v] <= 0.0) continue;
    cumulative += weight[v];
    last_positive = static_cast<int32_t>(v);
    if (cumulative > target) return last_positive;
  }
  return last_positive;  // u * total rounded to (or past) the full sum
}

double SampleUniform(uint64_t seed, uint64_t sequence, uint32_t position) {
  const PhiloxCounter counter = {static_cast<uint32_t>(sequence),
                                 static_cast<uint32_t>(sequence >> 32), position, 0};
  const PhiloxKey key = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  const PhiloxCounter out = Philox4x32(counter, key);
  // 64 random bits, the top 53 as a double in [0, 1): exact, never 1.
  const uint64_t bits = (static_cast<uint64_t>(out[0]) << 32) | out[1];
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

std::vector<std::vector<int32_t>> SampleSequences(const Model& model,
                                                  const SampleOptions& options) {
  const ModelConfig& config = model.config();
  if (options.num_sequences < 1) {
    throw Error("sample: number of sequences must be at least 1, found " +
                std::to_string(options.num_sequences));
  }
  if (options.seq_len < 2) {
    throw Error("sample: seq_len must be at least 2 (the start token and one drawn token), found " +
                std::to_string(options.seq_len));
  }
  if (options.seq_len > config.max_position_embeddings) {
    throw Error("sample: seq_len " + std::to_string(options.seq_len) +
                " exceeds the model's context (max_position_embeddings " +
                std::to_string(config.max_position_embeddings) + ")");
  }
  if (!(options.temperature >= 0.0) || !std::isfinite(options.temperature)) {
    throw Error("sample: temperature must be a finite number >= 0, found " +
                std::to_string(options.temperature));
  }
  if (options.top_k < 0) {
    throw Error("sample: top_k must be >= 0 (0: the whole vocabulary), found " +
                std::to_string(options.top_k));
  }
  if (options.start_id < 0 || options.start_id >= config.vocab_size) {
    throw Error("sample: start token " + std::to_string(options.start_id) +
                " is outside the vocabulary (vocab_size " + std::to_string(config.vocab_size) +
                ")");
  }
  const int64_t vocab = config.vocab_size;
  const int64_t hidden_size = config.hidden_size;
  const int64_t group_size =
      std::min(options.num_sequences, std::max<int64_t>(1, options.batch_tokens / options.seq_len));

  std::vector<std::vector<int32_t>> sequences(static_cast<size_t>(options.num_sequences));
  std::vector<float> hidden;
  std::vector<float> last_hidden;
  std::vector<float> logits;
  for (int64_t first = 0; first < options.num_sequences; first += group_size) {
    const int64_t count = std::min(group_size, options.num_sequences - first);
    for (int64_t s = first; s < first + count; ++s) {
      sequences[s].reserve(static_cast<size_t>(options.seq_len));
      sequences[s].push_back(options.start_id);
    }
    last_hidden.resize(static_cast<size_t>(count * hidden_size));
    logits.resize(static_cast<size_t>(count * vocab));
    // Step t draws token t from the prefix [0, t): the forward over the whole prefix (no KV
    // cache), then lm_head over each sequence's last position only.
    for (int64_t t = 1; t < options.seq_len; ++t) {
      TokenBatch batch;
      for (int64_t s = first; s < first + count; ++s) batch.sequences.emplace_back(sequences[s]);
      model.Forward(batch, hidden);
      for (int64_t i = 0; i < count; ++i) {
        const float* row = hidden.data() + ((i + 1) * t - 1) * hidden_size;
        std::copy(row, row + hidden_size, last_hidden.data() + i * hidden_size);
      }
      model.Logits(last_hidden.data(), count, logits.data(), nullptr);
      for (int64_t i = 0; i < count; ++i) {
        const double u =
            SampleUniform(options.seed, static_cast<uint64_t>(first + i), static_cast<uint32_t>(t));
        sequences[first + i].push_back(
            SampleToken(std::span<const float>(logits.data() + i * vocab, vocab),
                        options.temperature, options.top_k, u));
      }
      if (options.progress) options.progress(first, t, options.seq_len - 1);
    }
  }
  if (options.progress) {
    options.progress(options.num_sequences, options.seq_len - 1, options.seq_len - 1);
  }
  return sequences;
}

}  // namespace qf
