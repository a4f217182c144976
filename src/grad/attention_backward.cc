// Attention core forward and backward on single-threaded BLAS per (sequence, head): full
// [len, len] score matrices (the masked entries are computed and zeroed), one scratch set per
// worker. Memory per worker: 4 len^2 floats (64 MB at len 2048).
#include "src/grad/attention_backward.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "src/model/attention.h"
#include "src/model/linear.h"

namespace qf::grad {
namespace {

// probs[len, len] for query head h over keys of kv head kv; `base` is the sequence's first row.
void Probabilities(const model::AttentionShape& shape, const float* base, int64_t len, int64_t h,
                   int64_t kv, float scale, float* probs) {
  const int64_t d = shape.head_dim;
  const int64_t ld = shape.QkvWidth();
  const float* k = base + shape.num_heads * d + kv * d;
  model::GemmNT(len, len, d, base + h * d, ld, k, ld, probs, len);
  for (int64_t i = 0; i < len; ++i) {
    model::MaskedSoftmaxRow(probs + i * len, i, len, shape.sliding_window, scale);
  }
}

void Transpose(const float* in, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) out[j * n + i] = in[i * n + j];
  }
}

float Scale(const model::AttentionShape& shape) {
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(shape.head_dim)));
}

}  // namespace

void AttentionCoreForward(const model::AttentionShape& shape, const model::BatchLayout& batch,
                          const float* qkv, float* context, ThreadPool* pool) {
  const int64_t d = shape.head_dim;
  const int64_t ld = shape.QkvWidth();
  const int64_t q_width = shape.num_heads * d;
  const int64_t group = shape.num_heads / shape.num_kv_heads;
  const float scale = Scale(shape);
  const size_t num_workers = pool != nullptr ? pool->NumWorkers() : 1;
  std::vector<std::vector<float>> probs_per_worker(num_workers);
  const int64_t num_tasks = batch.NumSequences() * shape.num_heads;
  ParallelFor(pool, static_cast<uint64_t>(num_tasks), [&](uint64_t task, size_t worker) {
    const int64_t s = static_cast<int64_t>(task) / shape.num_heads;
    const int64_t h = static_cast<int64_t>(task) % shape.num_heads;
    const int64_t begin = batch.seq_begin[s];
    const int64_t len = batch.seq_begin[s + 1] - begin;
    const int64_t kv = h / group;
    const float* base = qkv + begin * ld;
    std::vector<float>& probs = probs_per_worker[worker];
    probs.resize(static_cast<size_t>(len * len));
    Probabilities(shape, base, len, h, kv, scale, probs.data());
    const float* v = base + q_width + shape.num_kv_heads * d + kv * d;
    model::GemmNN(len, d, len, probs.data(), len, v, ld, context + begin * q_width + h * d,
                  q_width);
  });
}

void AttentionCoreBackward(const model::AttentionShape& shape, const model::BatchLayout& batch,
                           const float* qkv, const float* dcontext, float* dqkv, ThreadPool* pool) {
  const int64_t d = shape.head_dim;
  const int64_t ld = shape.QkvWidth();
  const int64_t q_width = shape.num_heads * d;
  const int64_t kv_width = shape.num_kv_heads * d;
  const int64_t group = shape.num_heads / shape.num_kv_heads;
  const float scale = Scale(shape);
  struct Scratch {
    std::vector<float> probs, dprobs, transposed, partial;
  };
  const size_t num_workers = pool != nullptr ? pool->NumWorkers() : 1;
  std::vector<Scratch> scratch_per_worker(num_workers);
  const int64_t num_tasks = batch.NumSequences() * shape.num_kv_heads;
  ParallelFor(pool, static_cast<uint64_t>(num_tasks), [&](uint64_t task, size_t worker) {
    const int64_t s = static_cast<int64_t>(task) / shape.num_kv_heads;
    const int64_t kv = static_cast<int64_t>(task) % shape.num_kv_heads;
    const int64_t begin = batch.seq_begin[s];
    const int64_t len = batch.seq_begin[s + 1] - begin;
    const float* base = qkv + begin * ld;
    const float* k = base + q_width + kv * d;
    const float* v = base + q_width + kv_width + kv * d;
    float* dbase = dqkv + begin * ld;
    float* dk = dbase + q_width + kv * d;
    float* dv = dbase + q_width + kv_width + kv * d;
    for (int64_t i = 0; i < len; ++i) {
      std::fill(dk + i * ld, dk + i * ld + d, 0.0f);
      std::fill(dv + i * ld, dv + i * ld + d, 0.0f);
    }
    Scratch& sc = scratch_per_worker[worker];
    const size_t square = static_cast<size_t>(len * len);
    sc.probs.resize(square);
    sc.dprobs.resize(square);
    sc.transposed.resize(square);
    sc.partial.resize(static_cast<size_t>(len * d));
    // Adds partial[len, d] into the kv head's column block of dk or dv.
    const auto accumulate = [&](float* dest) {
      for (int64_t i = 0; i < len; ++i) {
        for (int64_t c = 0; c < d; ++c) dest[i * ld + c] += sc.partial[i * d + c];
      }
    };
    for (int64_t h = kv * group; h < (kv + 1) * group; ++h) {
      const float* q = base + h * d;
      const float* dout = dcontext + begin * q_width + h * d;
      Probabilities(shape, base, len, h, kv, scale, sc.probs.data());
      // dv += P^T dO
      Transpose(sc.probs.data(), len, sc.transposed.data());
      model::GemmNN(len, d, len, sc.transposed.data(), len, dout, q_width, sc.partial.data(), d);
      accumulate(dv);
      // dP = dO v^T, then dS (scaled by `scale`, the derivative of S with respect to q k^T).
      model::GemmNT(len, len, d, dout, q_width, v, ld, sc.dprobs.data(), len);
      for (int64_t i = 0; i < len; ++i) {
        const float* p = sc.probs.data() + i * len;
        float* g = sc.dprobs.data() + i * len;
        double dot = 0.0;
        for (int64_t j = 0; j <= i; ++j) dot += static_cast<double>(p[j]) * g[j];
        for (int64_t j = 0; j < len; ++j) {
          g[j] = static_cast<float>(static_cast<double>(p[j]) * (g[j] - dot) * scale);
        }
      }
      // dq = dS k
      model::GemmNN(len, d, len, sc.dprobs.data(), len, k, ld, dbase + h * d, ld);
      // dk += dS^T q
      Transpose(sc.dprobs.data(), len, sc.transposed.data());
      model::GemmNN(len, d, len, sc.transposed.data(), len, q, ld, sc.partial.data(), d);
      accumulate(dk);
    }
  });
}

}  // namespace qf::grad
