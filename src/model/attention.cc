// Attention forward. One ThreadPool task per sequence and head: scores = q k^T (single-threaded
// BLAS), scale and mask, softmax in F32 with the max subtracted (as torch.softmax), then
// probabilities times v (BLAS). Every output element is computed by exactly one task, so the
// result does not depend on the thread count.
#include "src/model/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "src/model/rope.h"

namespace qf::model {

// Visible keys: [first, i]; the rest get probability exactly 0 (exp(-inf)).
void MaskedSoftmaxRow(float* row, int64_t i, int64_t len, int64_t window, float scale) {
  const int64_t first = window > 0 ? std::max<int64_t>(0, i - window + 1) : 0;
  float max_score = -std::numeric_limits<float>::infinity();
  for (int64_t j = first; j <= i; ++j) {
    row[j] *= scale;
    max_score = std::max(max_score, row[j]);
  }
  float sum = 0.0f;
  for (int64_t j = first; j <= i; ++j) {
    row[j] = std::exp(row[j] - max_score);
    sum += row[j];
  }
  const float inv_sum = 1.0f / sum;
  for (int64_t j = 0; j < first; ++j) row[j] = 0.0f;
  for (int64_t j = first; j <= i; ++j) row[j] *= inv_sum;
  for (int64_t j = i + 1; j < len; ++j) row[j] = 0.0f;
}

Attention::Attention(const AttentionShape& shape, std::vector<double> inv_freq, Linear qkv,
                     Linear o, const std::string& prefix)
    : shape_(shape),
      inv_freq_(std::move(inv_freq)),
      qkv_(std::move(qkv)),
      o_(std::move(o)),
      qkv_modules_{prefix + "q_proj", prefix + "k_proj", prefix + "v_proj"},
      o_modules_{prefix + "o_proj"} {}

void Attention::Forward(const BatchLayout& batch, float* in, float* out,
                        const ForwardContext& ctx) const {
  ThreadPool* pool = ctx.pool;
  const int64_t num_tokens = batch.NumTokens();
  const int64_t d = shape_.head_dim;
  const int64_t q_width = shape_.num_heads * d;
  const int64_t kv_width = shape_.num_kv_heads * d;
  const int64_t ld_qkv = shape_.QkvWidth();
  const int64_t group = shape_.num_heads / shape_.num_kv_heads;

  std::vector<float> qkv(static_cast<size_t>(num_tokens * ld_qkv));
  Observe(ctx, ActivationKind::kLinearInput, qkv_modules_, in, num_tokens, shape_.hidden_size,
          shape_.hidden_size);
  qkv_.Forward(in, shape_.hidden_size, num_tokens, qkv.data(), ld_qkv, pool);

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

  // KV-cache quantizers see k after RoPE and v, as Model Optimizer's k/v_bmm_quantizer.
  Observe(ctx, ActivationKind::kKey, std::span(qkv_modules_).subspan(1, 1), qkv.data() + q_width,
          num_tokens, kv_width, ld_qkv);
  Observe(ctx, ActivationKind::kValue, std::span(qkv_modules_).subspan(2, 1),
          qkv.data() + q_width + kv_width, num_tokens, kv_width, ld_qkv);

  std::vector<float> context(static_cast<size_t>(num_tokens * q_width));
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  // One task per (sequence, head). Queries go in blocks of kQueryBlock rows: a block [r0, r1)
  // only needs keys [0, r1) (causal), so the masked upper triangle is never computed and each
  // block's scores [kQueryBlock, r1] stay in cache between the two GEMMs and the softmax. Each
  // worker owns its scores buffer.
  constexpr int64_t kQueryBlock = 64;
  const size_t num_workers = pool != nullptr ? pool->NumWorkers() : 1;
  std::vector<std::vector<float>> scores_per_worker(num_workers);
  const int64_t num_tasks = batch.NumSequences() * shape_.num_heads;
  ParallelFor(pool, static_cast<uint64_t>(num_tasks), [&](uint64_t task, size_t worker) {
    const int64_t s = static_cast<int64_t>(task) / shape_.num_heads;
    const int64_t h = static_cast<int64_t>(task) % shape_.num_heads;
    const int64_t begin = batch.seq_begin[s];
    const int64_t len = batch.seq_begin[s + 1] - begin;
    const int64_t kv = h / group;
    const float* base = qkv.data() + begin * ld_qkv;
    const float* k = base + q_width + kv * d;
    const float* v = base + q_width + kv_width + kv * d;
    std::vector<float>& scores = scores_per_worker[worker];
    scores.resize(static_cast<size_t>(kQueryBlock * len));
    for (int64_t r0 = 0; r0 < len; r0 += kQueryBlock) {
      const int64_t r1 = std::min(len, r0 + kQueryBlock);
      const int64_t keys = r1;  // row i sees keys [first, i] with i < r1
      GemmNT(r1 - r0, keys, d, base + r0 * ld_qkv + h * d, ld_qkv, k, ld_qkv, scores.data(), keys);
      for (int64_t i = r0; i < r1; ++i) {
        float* row = scores.data() + (i - r0) * keys;
        MaskedSoftmaxRow(row, i, keys, shape_.sliding_window, scale);
      }
      GemmNN(r1 - r0, d, keys, scores.data(), keys, v, ld_qkv,
             context.data() + (begin + r0) * q_width + h * d, q_width);
    }
  });
  Observe(ctx, ActivationKind::kLinearInput, o_modules_, context.data(), num_tokens, q_width,
          q_width);
  o_.Forward(context.data(), q_width, num_tokens, out, shape_.hidden_size, pool);
}

}  // namespace qf::model
