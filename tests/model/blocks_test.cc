// Each block of the forward pass (RMSNorm, RoPE, attention with GQA / causal mask / sliding
// window / biases, SwiGLU MLP) against a direct scalar double implementation written here.
//
// Tolerances come from the F32 error bound of the block: a dot product of K terms computed in F32
// is within K * u * sum|a_i b_i| of the exact value (u = 2^-24, Higham's gamma_K), and the blocks
// chain at most three such products plus a softmax (a few u relative). Each test states its K.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <numbers>
#include <random>
#include <vector>

#include "src/model/attention.h"
#include "src/model/mlp.h"
#include "src/model/rmsnorm.h"
#include "src/model/rope.h"

namespace qf::model {
namespace {

constexpr double kU = 1.0 / (1 << 24);

std::vector<float> RandomVector(size_t n, uint32_t seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

uint32_t Bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return b;
}

// got[i] within tol[i] (or one tolerance for all) of ref[i]; prints the first mismatches in hex.
void ExpectClose(const char* what, const std::vector<float>& got, const std::vector<double>& ref,
                 const std::vector<double>& tol) {
  ASSERT_EQ(got.size(), ref.size());
  int64_t failures = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double t = tol.size() == 1 ? tol[0] : tol[i];
    if (std::abs(got[i] - ref[i]) <= t) continue;
    if (++failures <= 5) {
      ADD_FAILURE() << what << " index " << i << ": got " << got[i] << " (0x" << std::hex
                    << Bits(got[i]) << ") expected " << ref[i] << " (0x"
                    << Bits(static_cast<float>(ref[i])) << std::dec << "), tolerance " << t;
    }
  }
  EXPECT_EQ(failures, 0) << what << ": " << failures << " of " << got.size() << " mismatched";
}

Linear MakeLinear(int64_t out, int64_t in, bool bias, uint32_t seed) {
  Linear linear;
  linear.out_features = out;
  linear.in_features = in;
  linear.weight = AlignedBuffer<float>(static_cast<size_t>(out * in));
  const std::vector<float> w =
      RandomVector(static_cast<size_t>(out * in), seed, 1.0f / std::sqrt(static_cast<float>(in)));
  std::copy(w.begin(), w.end(), linear.weight.data());
  if (bias) linear.bias = RandomVector(static_cast<size_t>(out), seed + 1, 0.5f);
  return linear;
}

// y = x W^T + b in double for one row.
std::vector<double> ReferenceLinear(const Linear& l, const double* x) {
  std::vector<double> y(static_cast<size_t>(l.out_features));
  for (int64_t o = 0; o < l.out_features; ++o) {
    double acc = l.bias.empty() ? 0.0 : l.bias[o];
    for (int64_t i = 0; i < l.in_features; ++i)
      acc += double(l.weight[o * l.in_features + i]) * x[i];
    y[o] = acc;
  }
  return y;
}

BatchLayout Layout(const std::vector<int64_t>& lengths) {
  BatchLayout layout;
  layout.seq_begin.push_back(0);
  for (int64_t len : lengths) {
    for (int64_t i = 0; i < len; ++i) layout.positions.push_back(static_cast<int32_t>(i));
    layout.seq_begin.push_back(layout.seq_begin.back() + len);
    layout.max_seq_len = std::max(layout.max_seq_len, len);
  }
  return layout;
}

TEST(RmsNorm, MatchesScalarDouble) {
  RmsNorm norm;
  norm.size = 67;  // odd size
  norm.eps = 1e-5f;
  norm.weight = AlignedBuffer<float>(67);
  const std::vector<float> w = RandomVector(67, 1);
  std::copy(w.begin(), w.end(), norm.weight.data());
  const int64_t rows = 37;
  std::vector<float> x = RandomVector(67 * rows, 2, 3.0f);
  std::fill(x.begin(), x.begin() + 67, 0.0f);  // an all-zero row: output 0, no NaN
  std::vector<float> y(x.size());
  ThreadPool pool(2);
  norm.Forward(x.data(), rows, y.data(), &pool);
  std::vector<double> ref(x.size()), tol(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int i = 0; i < 67; ++i) ss += double(x[r * 67 + i]) * x[r * 67 + i];
    const double inv = 1.0 / std::sqrt(ss / 67 + double(norm.eps));
    for (int i = 0; i < 67; ++i) {
      ref[r * 67 + i] = double(w[i]) * x[r * 67 + i] * inv;
      // mean, +eps, sqrt, divide, two products: six roundings, 8u to be safe.
      tol[r * 67 + i] = 8 * kU * std::abs(ref[r * 67 + i]) + 1e-30;
    }
  }
  ExpectClose("rmsnorm", y, ref, tol);
}

// Independent statement of transformers' llama3 frequency rule.
double Llama3Frequency(double f, const RopeScaling& s) {
  const double wavelen = 2 * std::numbers::pi / f;
  const double low = s.original_max_position_embeddings / s.low_freq_factor;
  const double high = s.original_max_position_embeddings / s.high_freq_factor;
  if (wavelen < high) return f;
  if (wavelen > low) return f / s.factor;
  const double smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) /
                        (s.high_freq_factor - s.low_freq_factor);
  return (1 - smooth) * f / s.factor + smooth * f;
}

TEST(Rope, Llama3FrequenciesMatchFormula) {
  RopeScaling s{RopeScalingKind::kLlama3, 32.0, 1.0, 4.0, 8192};
  const std::vector<double> got = RopeInverseFrequencies(128, 500000.0, s);
  ASSERT_EQ(got.size(), 64u);
  int scaled = 0, kept = 0, blended = 0;
  for (int i = 0; i < 64; ++i) {
    const double base = std::pow(500000.0, -2.0 * i / 128.0);
    const double expected = Llama3Frequency(base, s);
    EXPECT_NEAR(got[i], expected, 1e-15 * base) << i;
    if (expected == base)
      ++kept;
    else if (expected == base / 32.0)
      ++scaled;
    else
      ++blended;
  }
  // Llama 3.1's table has all three regimes.
  EXPECT_GT(scaled, 0);
  EXPECT_GT(kept, 0);
  EXPECT_GT(blended, 0);
}

TEST(Rope, RotateHalfMatchesScalarDouble) {
  const int64_t head_dim = 16, heads = 3, half = 8;
  const std::vector<double> inv_freq = RopeInverseFrequencies(head_dim, 10000.0, {});
  const RopeTable table(inv_freq, 300);
  for (int32_t pos : {0, 1, 7, 299}) {
    std::vector<float> x = RandomVector(heads * head_dim, 10 + pos);
    const std::vector<float> in = x;
    ApplyRope(table, pos, heads, x.data());
    std::vector<double> ref(x.size()), tol(x.size());
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < half; ++i) {
        const double angle = pos * std::pow(10000.0, -2.0 * i / head_dim);
        const double x1 = in[h * head_dim + i], x2 = in[h * head_dim + i + half];
        ref[h * head_dim + i] = x1 * std::cos(angle) - x2 * std::sin(angle);
        ref[h * head_dim + i + half] = x2 * std::cos(angle) + x1 * std::sin(angle);
        // cos, sin rounded, two products, one sum: 4u of |x1| + |x2|.
        tol[h * head_dim + i] = tol[h * head_dim + i + half] =
            4 * kU * (std::abs(x1) + std::abs(x2));
      }
    }
    ExpectClose("rope", x, ref, tol);
  }
}

struct AttentionCase {
  bool bias;
  int64_t sliding_window;
};

class AttentionTest : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(AttentionTest, MatchesScalarDouble) {
  const AttentionShape shape{32, 4, 2, 8, GetParam().sliding_window};  // GQA group 2
  const std::vector<double> inv_freq = RopeInverseFrequencies(8, 10000.0, {});
  const Attention attention(shape, inv_freq, MakeLinear(shape.QkvWidth(), 32, GetParam().bias, 100),
                            MakeLinear(32, 32, GetParam().bias, 200));
  // Reference copies of the weights (Attention owns its own).
  const Linear qkv = MakeLinear(shape.QkvWidth(), 32, GetParam().bias, 100);
  const Linear o = MakeLinear(32, 32, GetParam().bias, 200);
  const BatchLayout layout = Layout({5, 1, 13});
  const int64_t n = layout.NumTokens();
  const std::vector<float> x = RandomVector(n * 32, 7);
  std::vector<float> y(n * 32);
  ThreadPool pool(2);
  std::vector<float> in = x;
  attention.Forward(layout, in.data(), y.data(), ForwardContext{&pool, nullptr, 0});

  std::vector<double> ref(n * 32);
  double max_abs = 0;
  for (int64_t s = 0; s < layout.NumSequences(); ++s) {
    const int64_t b = layout.seq_begin[s], len = layout.seq_begin[s + 1] - b;
    std::vector<std::vector<double>> rows(len);
    for (int64_t t = 0; t < len; ++t) {
      std::vector<double> xd(x.begin() + (b + t) * 32, x.begin() + (b + t + 1) * 32);
      rows[t] = ReferenceLinear(qkv, xd.data());
      for (int64_t h = 0; h < 6; ++h) {  // 4 q heads + 2 k heads rotate
        for (int i = 0; i < 4; ++i) {
          const double angle = t * std::pow(10000.0, -2.0 * i / 8);
          double& a = rows[t][h * 8 + i];
          double& c = rows[t][h * 8 + i + 4];
          const double a0 = a, c0 = c;
          a = a0 * std::cos(angle) - c0 * std::sin(angle);
          c = c0 * std::cos(angle) + a0 * std::sin(angle);
        }
      }
    }
    for (int64_t t = 0; t < len; ++t) {
      std::vector<double> ctx(32, 0.0);
      for (int64_t h = 0; h < 4; ++h) {
        const int64_t kv = h / 2;
        std::vector<double> p(len, 0.0);
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j <= t; ++j) {
          if (shape.sliding_window > 0 && t - j >= shape.sliding_window) continue;
          double dot = 0;
          for (int i = 0; i < 8; ++i) dot += rows[t][h * 8 + i] * rows[j][32 + kv * 8 + i];
          p[j] = dot / std::sqrt(8.0);
          mx = std::max(mx, p[j]);
        }
        for (int64_t j = 0; j <= t; ++j) {
          if (shape.sliding_window > 0 && t - j >= shape.sliding_window) {
            p[j] = 0;
            continue;
          }
          p[j] = std::exp(p[j] - mx);
          sum += p[j];
        }
        for (int64_t j = 0; j <= t; ++j) {
          for (int i = 0; i < 8; ++i) ctx[h * 8 + i] += p[j] / sum * rows[j][48 + kv * 8 + i];
        }
      }
      const std::vector<double> out = ReferenceLinear(o, ctx.data());
      for (int i = 0; i < 32; ++i) {
        ref[(b + t) * 32 + i] = out[i];
        max_abs = std::max(max_abs, std::abs(out[i]));
      }
    }
  }
  // qkv (K=32), scores (K=8), softmax, P V (K<=13), o_proj (K=32): ~(32+8+13+32+16) u of the
  // terms' scale, which the O(1) weights and inputs keep near max|y|; 4x margin.
  ExpectClose("attention", y, ref, {4 * 101 * kU * std::max(1.0, max_abs)});
}

INSTANTIATE_TEST_SUITE_P(Variants, AttentionTest,
                         ::testing::Values(AttentionCase{false, 0}, AttentionCase{true, 0},
                                           AttentionCase{false, 3}));

TEST(SwiGluMlp, MatchesScalarDouble) {
  const int64_t hidden = 24, inter = 43;  // odd intermediate, like stories260K's 172
  const SwiGluMlp mlp(hidden, inter, MakeLinear(2 * inter, hidden, false, 300),
                      MakeLinear(hidden, inter, false, 400));
  const Linear gate_up = MakeLinear(2 * inter, hidden, false, 300);
  const Linear down = MakeLinear(hidden, inter, false, 400);
  const BatchLayout layout = Layout({9});
  const std::vector<float> x = RandomVector(9 * hidden, 8, 2.0f);
  std::vector<float> y(9 * hidden);
  std::vector<float> in = x;
  mlp.Forward(layout, in.data(), y.data(), ForwardContext{});
  std::vector<double> ref(y.size());
  double max_abs = 0;
  for (int64_t t = 0; t < 9; ++t) {
    std::vector<double> xd(x.begin() + t * hidden, x.begin() + (t + 1) * hidden);
    const std::vector<double> gu = ReferenceLinear(gate_up, xd.data());
    std::vector<double> act(inter);
    for (int64_t i = 0; i < inter; ++i) act[i] = gu[i] / (1 + std::exp(-gu[i])) * gu[inter + i];
    const std::vector<double> out = ReferenceLinear(down, act.data());
    for (int64_t i = 0; i < hidden; ++i) {
      ref[t * hidden + i] = out[i];
      max_abs = std::max(max_abs, std::abs(out[i]));
    }
  }
  // gate/up (K=24), silu (~4u), down (K=43); 4x margin over (24 + 4 + 43) u.
  ExpectClose("swiglu", y, ref, {4 * 71 * kU * std::max(1.0, max_abs)});
}

}  // namespace
}  // namespace qf::model
