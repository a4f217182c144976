// Finite-difference checks of the elementwise and dense blocks' backward: RMSNorm, RoPE, SwiGLU,
// Linear and the cross-entropy head. Each test builds L = sum(c * block(x)) with fixed random c
// (so dL/dy = c), runs the F32 backward on c, and compares with central differences of a
// double-precision reference forward written here (see fd_check.h for step and tolerance).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "src/grad/cross_entropy.h"
#include "src/grad/linear_backward.h"
#include "src/grad/rmsnorm_backward.h"
#include "src/grad/rope_backward.h"
#include "src/grad/swiglu_backward.h"
#include "src/model/rope.h"
#include "tests/grad/fd_check.h"

namespace qf::grad {
namespace {

using grad_test::CentralDifference;
using grad_test::ExpectGradientsMatch;

std::vector<float> Normal(size_t n, float std, uint32_t seed, float mean = 0.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(mean, std);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<double> ToDouble(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// Numeric gradient of f over every element of x (f reads x in double).
std::vector<double> NumericGradient(const std::vector<float>& x,
                                    const std::function<double(const std::vector<double>&)>& f) {
  std::vector<double> xd = ToDouble(x);
  std::vector<double> grad(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    grad[i] = CentralDifference([&](double delta) {
      xd[i] = static_cast<double>(x[i]) + delta;
      const double value = f(xd);
      xd[i] = x[i];
      return value;
    });
  }
  return grad;
}

TEST(RmsNormBackward, MatchesFiniteDifferences) {
  constexpr int64_t kRows = 5, kSize = 24;
  model::RmsNorm norm;
  norm.size = kSize;
  norm.eps = 1e-5f;
  norm.weight = AlignedBuffer<float>(kSize);
  const std::vector<float> w = Normal(kSize, 0.3f, 1, 1.0f);
  std::copy(w.begin(), w.end(), norm.weight.data());
  std::vector<float> x = Normal(kRows * kSize, 1.0f, 2);
  // Row 1 has a mean square near eps (where eps shapes the gradient), row 2 an outlier.
  for (int64_t i = 0; i < kSize; ++i) x[kSize + i] *= 3e-3f;
  x[2 * kSize + 5] = 40.0f;
  const std::vector<float> c = Normal(kRows * kSize, 1.0f, 3);

  const auto loss = [&](const std::vector<double>& xd) {
    double sum = 0.0;
    for (int64_t r = 0; r < kRows; ++r) {
      double ms = 0.0;
      for (int64_t i = 0; i < kSize; ++i) ms += xd[r * kSize + i] * xd[r * kSize + i];
      const double inv = 1.0 / std::sqrt(ms / kSize + static_cast<double>(norm.eps));
      for (int64_t i = 0; i < kSize; ++i) sum += c[r * kSize + i] * w[i] * xd[r * kSize + i] * inv;
    }
    return sum;
  };
  std::vector<float> dx(x.size());
  ThreadPool pool(2);
  RmsNormBackward(norm, x.data(), kRows, c.data(), dx.data(), &pool);
  ExpectGradientsMatch(dx, NumericGradient(x, loss), "RMSNorm dx");
}

TEST(RopeBackward, MatchesFiniteDifferences) {
  constexpr int64_t kHeadDim = 8, kHeads = 3;
  const std::vector<double> inv_freq = model::RopeInverseFrequencies(kHeadDim, 10000.0, {});
  const model::RopeTable table(inv_freq, 200);
  const int32_t positions[] = {0, 1, 7, 199};
  for (const int32_t pos : positions) {
    const std::vector<float> x = Normal(kHeads * kHeadDim, 1.0f, 10 + pos);
    const std::vector<float> c = Normal(x.size(), 1.0f, 20 + pos);
    const auto loss = [&](const std::vector<double>& xd) {
      double sum = 0.0;
      const int64_t h = kHeadDim / 2;
      for (int64_t head = 0; head < kHeads; ++head) {
        for (int64_t i = 0; i < h; ++i) {
          const double angle = pos * inv_freq[i];
          const double x1 = xd[head * kHeadDim + i], x2 = xd[head * kHeadDim + i + h];
          sum += c[head * kHeadDim + i] * (x1 * std::cos(angle) - x2 * std::sin(angle));
          sum += c[head * kHeadDim + i + h] * (x2 * std::cos(angle) + x1 * std::sin(angle));
        }
      }
      return sum;
    };
    std::vector<float> dx = c;
    ApplyRopeBackward(table, pos, kHeads, dx.data());
    ExpectGradientsMatch(dx, NumericGradient(x, loss),
                         "RoPE dx at position " + std::to_string(pos));
  }
}

TEST(SwiGluBackward, MatchesFiniteDifferences) {
  constexpr int64_t kRows = 4, kInter = 10;
  std::vector<float> gate_up = Normal(kRows * 2 * kInter, 2.0f, 30);
  // Saturated and zero gates: silu' -> 0 and 1 far out, 0.5 at 0.
  gate_up[0] = 0.0f;
  gate_up[1] = 18.0f;
  gate_up[2] = -18.0f;
  gate_up[2 * kInter + 3] = -4.5f;
  const std::vector<float> c = Normal(kRows * kInter, 1.0f, 31);
  const auto loss = [&](const std::vector<double>& gu) {
    double sum = 0.0;
    for (int64_t r = 0; r < kRows; ++r) {
      for (int64_t i = 0; i < kInter; ++i) {
        const double g = gu[r * 2 * kInter + i], u = gu[r * 2 * kInter + kInter + i];
        sum += c[r * kInter + i] * g / (1.0 + std::exp(-g)) * u;
      }
    }
    return sum;
  };
  std::vector<float> d(gate_up.size());
  SwiGluBackward(gate_up.data(), kRows, kInter, c.data(), d.data(), nullptr);
  ExpectGradientsMatch(d, NumericGradient(gate_up, loss), "SwiGLU d(gate|up)");

  // The cached forward is the model's arithmetic: silu(g) * u in F32.
  std::vector<float> h(kRows * kInter);
  SwiGluForward(gate_up.data(), kRows, kInter, h.data(), nullptr);
  for (int64_t r = 0; r < kRows; ++r) {
    for (int64_t i = 0; i < kInter; ++i) {
      const float g = gate_up[r * 2 * kInter + i];
      EXPECT_EQ(h[r * kInter + i],
                g * (1.0f / (1.0f + std::exp(-g))) * gate_up[r * 2 * kInter + kInter + i]);
    }
  }
}

model::Linear MakeLinear(int64_t out, int64_t in, bool bias, uint32_t seed) {
  model::Linear linear;
  linear.in_features = in;
  linear.out_features = out;
  linear.weight = AlignedBuffer<float>(static_cast<size_t>(out * in));
  const std::vector<float> w = Normal(static_cast<size_t>(out * in), 0.5f, seed);
  std::copy(w.begin(), w.end(), linear.weight.data());
  if (bias) linear.bias = Normal(static_cast<size_t>(out), 0.5f, seed + 1);
  return linear;
}

TEST(LinearBackward, MatchesFiniteDifferences) {
  constexpr int64_t kRows = 5, kIn = 12, kOut = 7;
  const model::Linear linear = MakeLinear(kOut, kIn, true, 40);
  const std::vector<float> x = Normal(kRows * kIn, 1.0f, 42);
  const std::vector<float> c = Normal(kRows * kOut, 1.0f, 43);
  const auto loss = [&](const std::vector<double>& xd) {
    double sum = 0.0;
    for (int64_t r = 0; r < kRows; ++r) {
      for (int64_t o = 0; o < kOut; ++o) {
        double y = linear.bias[o];
        for (int64_t i = 0; i < kIn; ++i) y += xd[r * kIn + i] * linear.weight[o * kIn + i];
        sum += c[r * kOut + o] * y;
      }
    }
    return sum;
  };
  std::vector<float> dx(x.size());
  LinearBackwardInput(linear, c.data(), kOut, kRows, dx.data(), kIn, nullptr);
  ExpectGradientsMatch(dx, NumericGradient(x, loss), "Linear dx");
}

TEST(LinearBackward, TilesStridesAndThreadsAgreeWithDirectProduct) {
  // More rows and columns than one GEMM tile (256 x 512), dy and dx with row padding.
  constexpr int64_t kRows = 300, kIn = 520, kOut = 9, kLdy = 11, kLdx = 530;
  const model::Linear linear = MakeLinear(kOut, kIn, false, 50);
  const std::vector<float> dy = Normal(kRows * kLdy, 1.0f, 51);
  std::vector<float> dx1(kRows * kLdx, -7.0f), dx3(kRows * kLdx, -7.0f);
  LinearBackwardInput(linear, dy.data(), kLdy, kRows, dx1.data(), kLdx, nullptr);
  ThreadPool pool(3);
  LinearBackwardInput(linear, dy.data(), kLdy, kRows, dx3.data(), kLdx, &pool);
  EXPECT_EQ(dx1, dx3);  // bytes, independent of the thread count
  std::vector<double> expected, got;
  for (int64_t r = 0; r < kRows; ++r) {
    for (int64_t i = 0; i < kIn; ++i) {
      double sum = 0.0;
      for (int64_t o = 0; o < kOut; ++o)
        sum += double(dy[r * kLdy + o]) * linear.weight[o * kIn + i];
      expected.push_back(sum);
      got.push_back(dx1[r * kLdx + i]);
    }
    EXPECT_EQ(dx1[r * kLdx + kIn], -7.0f) << "padding of row " << r << " was written";
  }
  const std::vector<float> got_f(got.begin(), got.end());
  ExpectGradientsMatch(got_f, expected, "tiled dY W");
}

TEST(CrossEntropy, RowMatchesFiniteDifferences) {
  constexpr int64_t kVocab = 50;
  std::vector<float> z = Normal(kVocab, 3.0f, 60);
  // A confident prediction (p ~ 0.99). Far more (z = 25) leaves gradients of ~1e-11, below the
  // double FD rounding of ~1e-16 * 25 / h.
  z[7] = 12.0f;
  for (const int32_t target : {7, 0, 49}) {
    const auto nll = [&](const std::vector<double>& zd) {
      double m = zd[0], s = 0.0;
      for (const double v : zd) m = std::max(m, v);
      for (const double v : zd) s += std::exp(v - m);
      return m + std::log(s) - zd[target];
    };
    std::vector<float> dz(kVocab);
    const double value = SoftmaxCrossEntropyRow(z.data(), kVocab, target, dz.data());
    EXPECT_NEAR(value, nll(ToDouble(z)), 1e-12 * std::max(1.0, value));
    ExpectGradientsMatch(dz, NumericGradient(z, nll),
                         "cross-entropy dz, target " + std::to_string(target));
    // In place, as LmHeadLossBackward calls it.
    std::vector<float> inplace = z;
    EXPECT_EQ(SoftmaxCrossEntropyRow(inplace.data(), kVocab, target, inplace.data()), value);
    EXPECT_EQ(inplace, dz);
  }
}

TEST(CrossEntropy, LmHeadLossMatchesFiniteDifferences) {
  // Three sequences (5, 1 and 70 tokens: one predicts nothing, one spans two 64-row chunks).
  constexpr int64_t kHidden = 6, kVocab = 11;
  const model::Linear head = MakeLinear(kVocab, kHidden, false, 70);
  model::BatchLayout layout;
  layout.seq_begin = {0, 5, 6, 76};
  layout.max_seq_len = 70;
  const int64_t tokens = layout.NumTokens();
  std::vector<int32_t> ids(static_cast<size_t>(tokens));
  std::mt19937 rng(71);
  for (int32_t& id : ids) id = static_cast<int32_t>(rng() % kVocab);
  const std::vector<float> hidden = Normal(tokens * kHidden, 1.0f, 72);
  const auto loss = [&](const std::vector<double>& h) {
    double sum = 0.0;
    for (int64_t s = 0; s < layout.NumSequences(); ++s) {
      for (int64_t t = layout.seq_begin[s]; t + 1 < layout.seq_begin[s + 1]; ++t) {
        std::vector<double> z(kVocab);
        double m = -1e300, e = 0.0;
        for (int64_t v = 0; v < kVocab; ++v) {
          for (int64_t i = 0; i < kHidden; ++i)
            z[v] += h[t * kHidden + i] * head.weight[v * kHidden + i];
          m = std::max(m, z[v]);
        }
        for (const double v : z) e += std::exp(v - m);
        sum += m + std::log(e) - z[ids[t + 1]];
      }
    }
    return sum;
  };
  std::vector<float> dh(hidden.size(), 9.0f);
  ThreadPool pool(2);
  const LossSum result = LmHeadLossBackward(head.weight.data(), kVocab, kHidden, layout, ids,
                                            hidden.data(), dh.data(), &pool);
  EXPECT_EQ(result.tokens, 4 + 0 + 69);
  EXPECT_NEAR(result.loss, loss(ToDouble(hidden)), 1e-5 * result.loss);
  ExpectGradientsMatch(dh, NumericGradient(hidden, loss), "lm_head loss dhidden");
  for (const int64_t last : {4, 5, 75}) {
    for (int64_t i = 0; i < kHidden; ++i) EXPECT_EQ(dh[last * kHidden + i], 0.0f) << last;
  }
}

}  // namespace
}  // namespace qf::grad
