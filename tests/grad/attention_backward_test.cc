// Finite-difference checks of the attention core's backward (dq, dk, dv after RoPE) with GQA,
// several sequences of different lengths (one of a single token), full causal attention and
// sliding windows; plus the forward context against the same double reference.
#include "src/grad/attention_backward.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "tests/grad/fd_check.h"

namespace qf::grad {
namespace {

using grad_test::CentralDifference;
using grad_test::ExpectGradientsMatch;

// context[T, heads * d] in double, straight from the definition (attention_backward.h).
std::vector<double> ReferenceContext(const model::AttentionShape& shape,
                                     const model::BatchLayout& batch,
                                     const std::vector<double>& qkv) {
  const int64_t d = shape.head_dim, ld = shape.QkvWidth();
  const int64_t q_width = shape.num_heads * d, kv_width = shape.num_kv_heads * d;
  const int64_t group = shape.num_heads / shape.num_kv_heads;
  std::vector<double> out(static_cast<size_t>(batch.NumTokens() * q_width));
  for (int64_t s = 0; s < batch.NumSequences(); ++s) {
    const int64_t b = batch.seq_begin[s], len = batch.seq_begin[s + 1] - b;
    for (int64_t h = 0; h < shape.num_heads; ++h) {
      const int64_t kv = h / group;
      for (int64_t i = 0; i < len; ++i) {
        const int64_t first =
            shape.sliding_window > 0 ? std::max<int64_t>(0, i - shape.sliding_window + 1) : 0;
        std::vector<double> p(static_cast<size_t>(len), 0.0);
        double m = -1e300, z = 0.0;
        for (int64_t j = first; j <= i; ++j) {
          for (int64_t c = 0; c < d; ++c) {
            p[j] += qkv[(b + i) * ld + h * d + c] * qkv[(b + j) * ld + q_width + kv * d + c];
          }
          p[j] /= std::sqrt(static_cast<double>(d));
          m = std::max(m, p[j]);
        }
        for (int64_t j = first; j <= i; ++j) z += std::exp(p[j] - m);
        for (int64_t j = first; j <= i; ++j) {
          const double w = std::exp(p[j] - m) / z;
          for (int64_t c = 0; c < d; ++c) {
            out[(b + i) * q_width + h * d + c] +=
                w * qkv[(b + j) * ld + q_width + kv_width + kv * d + c];
          }
        }
      }
    }
  }
  return out;
}

struct Case {
  int64_t heads, kv_heads, head_dim, window;
  std::vector<int64_t> lengths;
};

void CheckCase(const Case& cs, uint32_t seed) {
  const model::AttentionShape shape{cs.heads * cs.head_dim, cs.heads, cs.kv_heads, cs.head_dim,
                                    cs.window};
  model::BatchLayout batch;
  batch.seq_begin = {0};
  for (const int64_t len : cs.lengths) {
    batch.seq_begin.push_back(batch.seq_begin.back() + len);
    for (int64_t i = 0; i < len; ++i) batch.positions.push_back(static_cast<int32_t>(i));
    batch.max_seq_len = std::max(batch.max_seq_len, len);
  }
  const int64_t tokens = batch.NumTokens();
  const int64_t q_width = cs.heads * cs.head_dim;
  std::mt19937 rng(seed);
  // Scores of a few units: softmax neither uniform nor one-hot.
  std::normal_distribution<float> dist(0.0f, 1.5f);
  std::vector<float> qkv(static_cast<size_t>(tokens * shape.QkvWidth()));
  for (float& v : qkv) v = dist(rng);
  std::vector<float> c(static_cast<size_t>(tokens * q_width));
  for (float& v : c) v = dist(rng);

  const std::string name = "heads " + std::to_string(cs.heads) + "/" + std::to_string(cs.kv_heads) +
                           " window " + std::to_string(cs.window);
  ThreadPool pool(3);
  std::vector<float> context(c.size());
  AttentionCoreForward(shape, batch, qkv.data(), context.data(), &pool);
  std::vector<double> qkv_d(qkv.begin(), qkv.end());
  const std::vector<double> ref = ReferenceContext(shape, batch, qkv_d);
  ExpectGradientsMatch(context, ref, name + ": forward context vs reference");

  std::vector<float> dqkv(qkv.size(), 5.0f);
  AttentionCoreBackward(shape, batch, qkv.data(), c.data(), dqkv.data(), &pool);
  std::vector<double> numeric(qkv.size());
  for (size_t i = 0; i < qkv.size(); ++i) {
    numeric[i] = CentralDifference([&](double delta) {
      qkv_d[i] = static_cast<double>(qkv[i]) + delta;
      const std::vector<double> out = ReferenceContext(shape, batch, qkv_d);
      qkv_d[i] = qkv[i];
      double sum = 0.0;
      for (size_t j = 0; j < out.size(); ++j) sum += c[j] * out[j];
      return sum;
    });
  }
  ExpectGradientsMatch(dqkv, numeric, name + ": d(q|k|v)");

  // One thread gives the same bytes.
  std::vector<float> serial(qkv.size());
  AttentionCoreBackward(shape, batch, qkv.data(), c.data(), serial.data(), nullptr);
  EXPECT_EQ(serial, dqkv) << name;
}

TEST(AttentionBackward, CausalGqaMatchesFiniteDifferences) {
  CheckCase({4, 2, 8, 0, {7, 1, 5}}, 1);
}

TEST(AttentionBackward, MultiHeadAndMultiQueryMatchFiniteDifferences) {
  CheckCase({2, 2, 4, 0, {6, 3}}, 2);  // one query head per kv head
  CheckCase({3, 1, 4, 0, {6}}, 3);     // all query heads share one kv head
}

TEST(AttentionBackward, SlidingWindowMatchesFiniteDifferences) {
  CheckCase({4, 2, 8, 3, {9, 2}}, 4);
  CheckCase({2, 1, 4, 1, {5}}, 5);  // window 1: each token sees only itself
}

}  // namespace
}  // namespace qf::grad
