// Attention forward. Per sequence and head: scores = q k^T (BLAS), scale and mask, softmax in F32
// with the max subtracted (as torch.softmax), then probabilities times v (BLAS). The softmax rows
// run as ThreadPool tasks between the BLAS calls (never concurrently with them).
#include "src/model/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "src/model/rope.h"

namespace qf::model {

Attention::Attention(const AttentionShape& shape, std::vector<double> inv_freq, Linear qkv,
                     Linear o)
    : shape_(shape), inv_freq_(std::move(inv_freq)), qkv_(std::move(qkv)), o_(std::move(o)) {}

void Attention::Forward(const BatchLayout& batch, const float* in, float* out,
                        ThreadPool* pool) const {
  const int64_t num_tokens = batch.NumTokens();
  const int64_t d = shape_.head_dim;
  const int64_t q_width = shape_.num_heads * d;
  const int64_t kv_width = shape_.num_kv_heads * d;
  const int64_t ld_qkv = shape_.QkvWidth();
  const int64_t group = shape_.num_heads / shape_.num_kv_heads;

  std::vector<float> qkv(static_cast<size_t>(num_tokens * ld_qkv));
  qkv_.Forward(in, shape_.hidden_size, num_tokens, qkv.data(), ld_qkv);

  const RopeTable rope(inv_freq_, batch.max_seq_len);
  constexpr int64_t kRowsPerTask = 32;
  {
    const Partition part{static_cast<uint64_t>(num_tokens), kRowsPerTask};
    ParallelFor(pool, part.NumTasks(), [&](uint64_t task, size_t) {
      for (uint64_t t = part.Begin(task); t < part.End(task); ++t) {
        float* row = qkv.data() + t * ld_qkv;
        // q heads and k heads are contiguous: rotate num_heads + num_kv_heads heads at once.
        ApplyRope(rope, batch.positions[t], shape_.num_heads + shape_.num_kv_heads, row);
      }
    });
  }

  std::vector<float> context(static_cast<size_t>(num_tokens * q_width));
  std::vector<float> scores(static_cast<size_t>(batch.max_seq_len * batch.max_seq_len));
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  for (int64_t s = 0; s < batch.NumSequences(); ++s) {
    const int64_t begin = batch.seq_begin[s];
    const int64_t len = batch.seq_begin[s + 1] - begin;
    const float* base = qkv.data() + begin * ld_qkv;
    for (int64_t h = 0; h < shape_.num_heads; ++h) {
      const int64_t kv = h / group;
      const float* q = base + h * d;
      const float* k = base + q_width + kv * d;
      const float* v = base + q_width + kv_width + kv * d;
      GemmNT(len, len, d, q, ld_qkv, k, ld_qkv, scores.data(), len);
      const Partition part{static_cast<uint64_t>(len), kRowsPerTask};
      ParallelFor(pool, part.NumTasks(), [&](uint64_t task, size_t) {
        for (uint64_t i = part.Begin(task); i < part.End(task); ++i) {
          float* row = scores.data() + i * len;
          // Visible keys: [first, i]; the rest get probability exactly 0 (exp(-inf)).
          const int64_t first = shape_.sliding_window > 0
                                    ? std::max<int64_t>(0, static_cast<int64_t>(i) -
                                                               shape_.sliding_window + 1)
                                    : 0;
          float max_score = -std::numeric_limits<float>::infinity();
          for (int64_t j = first; j <= static_cast<int64_t>(i); ++j) {
            row[j] *= scale;
            max_score = std::max(max_score, row[j]);
          }
          float sum = 0.0f;
          for (int64_t j = first; j <= static_cast<int64_t>(i); ++j) {
            row[j] = std::exp(row[j] - max_score);
            sum += row[j];
          }
          const float inv_sum = 1.0f / sum;
          for (int64_t j = 0; j < len; ++j) {
            row[j] = (j >= first && j <= static_cast<int64_t>(i)) ? row[j] * inv_sum : 0.0f;
          }
        }
      });
      GemmNN(len, d, len, scores.data(), len, v, ld_qkv, context.data() + begin * q_width + h * d,
             q_width);
    }
  }
  o_.Forward(context.data(), q_width, num_tokens, out, shape_.hidden_size);
}

}  // namespace qf::model
