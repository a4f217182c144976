// GPTQ against the textbook algorithm: a direct implementation written here (column by column,
// the OBS update with an explicit inverse Hessian from Gauss-Jordan elimination, downdated after
// every column; no Cholesky, no blocks, no lazy updates) must give the same codes as the blocked
// Cholesky sweep of src/calib for every format. Then the GPTQ property (lower layer output error
// than round-to-nearest on correlated inputs), determinism, dead columns, the non-PD fallback and
// input errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <numeric>
#include <span>
#include <vector>

#include "quantforge/calib.h"
#include "quantforge/error.h"
#include "quantforge/formats.h"
#include "tests/calib/calib_test_util.h"

namespace qf {
namespace {

using calib_test::CorrelatedInputs;
using calib_test::RandomWeights;
using calib_test::ReferenceHessian;
using calib_test::SameBytes;

// Rounds w at (row, col) to the format's grid and returns the dequantized value; the reference
// records the codes itself through the closure.
using RoundFn = std::function<float(int64_t row, int64_t col, float w)>;
// Called at the start of each 16-column group (scales chosen at group start) with the current
// row values of the group.
using GroupFn = std::function<void(int64_t row, int64_t col, const double* values, int64_t n)>;

// Textbook GPTQ / OBS (Frantar et al. 2022, eqs. 2-3): for each column q in order, quantize,
// spread the error over the remaining columns with H^-1[q, :] / H^-1[q, q], then remove q from
// H^-1 (H^-1 -= H^-1[:, q] H^-1[q, :] / H^-1[q, q]). Model Optimizer's preparation first: dead
// (all-zero) weight columns decoupled with diagonal 1, perc_damp * mean(diag) added. `order` is
// the column order (act_order), identity by default.
void ReferenceGptq(std::vector<float> w, int64_t rows, int64_t cols, const Hessian& h,
                   double perc_damp, const RoundFn& round, const GroupFn& group = nullptr,
                   std::vector<int64_t> order = {}) {
  std::vector<double> a = h.matrix;
  for (int64_t c = 0; c < cols; ++c) {
    bool dead = true;
    for (int64_t r = 0; r < rows; ++r) dead = dead && w[r * cols + c] == 0.0f;
    if (!dead) continue;
    for (int64_t k = 0; k < cols; ++k) a[c * cols + k] = a[k * cols + c] = 0.0;
    a[c * cols + c] = 1.0;
  }
  double mean = 0.0;
  for (int64_t i = 0; i < cols; ++i) mean += a[i * cols + i];
  mean /= static_cast<double>(cols);
  for (int64_t i = 0; i < cols; ++i) a[i * cols + i] += perc_damp * mean;
  std::vector<double> hinv = calib_test::ReferenceInverse(a, cols);
  if (order.empty()) {
    order.resize(static_cast<size_t>(cols));
    std::iota(order.begin(), order.end(), int64_t{0});
  }
  std::vector<double> wd(w.begin(), w.end());
  std::vector<bool> done(static_cast<size_t>(cols), false);
  for (int64_t step = 0; step < cols; ++step) {
    const int64_t q = order[step];
    const double d = hinv[q * cols + q];
    for (int64_t r = 0; r < rows; ++r) {
      double* wr = wd.data() + r * cols;
      if (group && q % 16 == 0) {
        std::vector<double> values(wr + q, wr + std::min(cols, q + 16));
        group(r, q, values.data(), static_cast<int64_t>(values.size()));
      }
      const double e = (wr[q] - round(r, q, static_cast<float>(wr[q]))) / d;
      for (int64_t j = 0; j < cols; ++j) {
        if (!done[j] && j != q) wr[j] -= e * hinv[q * cols + j];
      }
    }
    done[q] = true;
    std::vector<double> next = hinv;
    for (int64_t i = 0; i < cols; ++i) {
      for (int64_t j = 0; j < cols; ++j) {
        next[i * cols + j] -= hinv[i * cols + q] * hinv[q * cols + j] / d;
      }
    }
    hinv.swap(next);
  }
}

void SetNibble(std::span<uint8_t> codes, int64_t index, uint8_t code) {
  uint8_t& byte = codes[index / 2];
  byte = index % 2 == 0 ? static_cast<uint8_t>((byte & 0xF0) | code)
                        : static_cast<uint8_t>((byte & 0x0F) | (code << 4));
}

struct Problem {
  int64_t rows, cols, n;
  std::vector<float> w;
  Hessian h;
};

Problem MakeProblem(int64_t rows, int64_t cols, int64_t n, uint32_t seed) {
  Problem p{rows, cols, n, RandomWeights(rows, cols, seed), {}};
  const std::vector<float> x = CorrelatedInputs(n, cols, seed + 100);
  HessianAccumulator acc(cols, HessianKind::kFull);
  acc.Add(x.data(), n, cols);
  p.h = acc.GptqHessian();
  return p;
}

GptqOptions SmallBlocks() {
  GptqOptions options;
  options.block_size = 32;  // several blocks, so the lazy updates are exercised
  return options;
}

// NVFP4 with the block scales of round-to-nearest fixed before the sweep (the default).
TEST(GptqTest, Nvfp4FixedScalesEqualsTextbook) {
  for (const auto& [rows, cols] : {std::pair<int64_t, int64_t>{24, 96}, {37, 64}, {8, 40}}) {
    const Problem p = MakeProblem(rows, cols, 256, static_cast<uint32_t>(rows * cols));
    Nvfp4Options nvfp4;
    nvfp4.static_block_scales = true;
    const Nvfp4Tensor rtn = QuantizeNvfp4(MakeView(p.w, {rows, cols}), nvfp4);
    Nvfp4Tensor expected = rtn;
    const int64_t bpr = rtn.padded_cols / 16;
    ReferenceGptq(p.w, rows, cols, p.h, 0.01, [&](int64_t r, int64_t c, float w) {
      const float s = DecodeE4M3(rtn.block_scales[r * bpr + c / 16]);
      const uint8_t code = EncodeE2M1(w / (s * rtn.global_scale));
      SetNibble(expected.codes, r * rtn.padded_cols + c, code);
      return (DecodeE2M1(code) * s) * rtn.global_scale;
    });
    const Nvfp4Tensor got = GptqNvfp4(p.w, rows, cols, p.h, SmallBlocks(), nvfp4);
    EXPECT_TRUE(SameBytes(expected.codes, got.codes)) << rows << "x" << cols;
    EXPECT_TRUE(SameBytes(rtn.block_scales, got.block_scales));
    EXPECT_EQ(rtn.global_scale, got.global_scale);
    EXPECT_FALSE(SameBytes(rtn.codes, got.codes));  // GPTQ did change codes
  }
}

// Scales chosen at group start from the updated weights: static max formula with the original
// global amax, written out here.
TEST(GptqTest, Nvfp4GroupStartScalesEqualsTextbook) {
  const int64_t rows = 20, cols = 80;
  const Problem p = MakeProblem(rows, cols, 256, 11);
  Nvfp4Options nvfp4;
  nvfp4.static_block_scales = true;
  const Nvfp4Tensor rtn = QuantizeNvfp4(MakeView(p.w, {rows, cols}), nvfp4);
  Nvfp4Tensor expected = rtn;
  const int64_t bpr = rtn.padded_cols / 16;
  const float gamax = rtn.global_amax, g = rtn.global_scale;
  ReferenceGptq(
      p.w, rows, cols, p.h, 0.01,
      [&](int64_t r, int64_t c, float w) {
        const float s = DecodeE4M3(expected.block_scales[r * bpr + c / 16]);
        const uint8_t code = EncodeE2M1(w / (s * g));
        SetNibble(expected.codes, r * rtn.padded_cols + c, code);
        return (DecodeE2M1(code) * s) * g;
      },
      [&](int64_t r, int64_t c, const double* values, int64_t n) {
        float amax = 0.0f;
        for (int64_t k = 0; k < n; ++k) amax = std::fmax(amax, std::fabs(static_cast<float>(values[k])));
        float ps = amax / 6.0f;
        if (ps == 0.0f) ps = 1.0f;
        const float s = std::fmin(std::fmax((ps * 448.0f) / (gamax / 6.0f), 0.001953125f), 448.0f);
        expected.block_scales[r * bpr + c / 16] = EncodeE4M3(s);
      });
  GptqOptions options = SmallBlocks();
  options.scale_timing = GptqScaleTiming::kAtGroupStart;
  const Nvfp4Tensor got = GptqNvfp4(p.w, rows, cols, p.h, options, nvfp4);
  EXPECT_TRUE(SameBytes(expected.codes, got.codes));
  EXPECT_TRUE(SameBytes(expected.block_scales, got.block_scales));
  EXPECT_FALSE(SameBytes(rtn.block_scales, got.block_scales));  // some scales moved
}

TEST(GptqTest, Fp8PerChannelEqualsTextbookAlsoWithActOrder) {
  const int64_t rows = 16, cols = 48;
  const Problem p = MakeProblem(rows, cols, 200, 21);
  const Fp8Tensor rtn = QuantizeFp8(MakeView(p.w, {rows, cols}), Fp8Granularity::kPerChannel);
  for (const bool act_order : {false, true}) {
    Fp8Tensor expected = rtn;
    std::vector<int64_t> order(cols);
    std::iota(order.begin(), order.end(), int64_t{0});
    if (act_order) {
      // Decreasing damped diagonal, ties by index (no dead columns here).
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        return p.h.matrix[a * cols + a] > p.h.matrix[b * cols + b];
      });
    }
    ReferenceGptq(
        p.w, rows, cols, p.h, 0.01,
        [&](int64_t r, int64_t c, float w) {
          const uint8_t code = EncodeE4M3(w / rtn.scales[r]);
          expected.codes[r * cols + c] = code;
          return DecodeE4M3(code) * rtn.scales[r];
        },
        nullptr, order);
    GptqOptions options = SmallBlocks();
    options.block_size = 20;  // not a divisor of cols: a short last block
    options.act_order = act_order;
    const Fp8Tensor got = GptqFp8(p.w, rows, cols, p.h, options, Fp8Granularity::kPerChannel);
    EXPECT_TRUE(SameBytes(expected.codes, got.codes)) << "act_order " << act_order;
    EXPECT_EQ(rtn.scales, got.scales);
  }
}

TEST(GptqTest, MxEqualsTextbook) {
  const int64_t rows = 12, cols = 96;
  const Problem p = MakeProblem(rows, cols, 256, 31);
  for (const auto& [element, rule] :
       {std::pair{MxElement::kE2M1, MxScaleRule::kOcpFloor}, {MxElement::kE2M1, MxScaleRule::kCeil},
        {MxElement::kE4M3, MxScaleRule::kOcpFloor}}) {
    const MxTensor rtn = QuantizeMx(MakeView(p.w, {rows, cols}), element, rule);
    MxTensor expected = rtn;
    const int64_t bpr = rtn.padded_cols / 32;
    ReferenceGptq(p.w, rows, cols, p.h, 0.01, [&](int64_t r, int64_t c, float w) {
      const float scale = DecodeE8M0(rtn.scales[r * bpr + c / 32]);
      const float x = w / scale;
      if (element == MxElement::kE4M3) {
        expected.codes[r * rtn.padded_cols + c] = EncodeE4M3(x);
        return DecodeE4M3(EncodeE4M3(x)) * scale;
      }
      uint8_t code;
      if (rule == MxScaleRule::kCeil) {  // Model Optimizer's MXFP4 cast: ties round down
        code = 0;
        for (const float bound : {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f}) {
          code += std::fabs(x) > bound ? 1 : 0;
        }
        code |= x > 0.0f ? 0 : 0x8;
      } else {
        code = EncodeE2M1(x);
      }
      SetNibble(expected.codes, r * rtn.padded_cols + c, code);
      return DecodeE2M1(code) * scale;
    });
    const MxTensor got = GptqMx(p.w, rows, cols, p.h, SmallBlocks(), element, rule);
    EXPECT_TRUE(SameBytes(expected.codes, got.codes)) << static_cast<int>(element);
    EXPECT_TRUE(SameBytes(rtn.scales, got.scales));
  }
}

// 300 columns: the tiled factor (128-column tiles) with two full tiles and a partial one.
TEST(GptqTest, SeveralFactorTilesEqualsTextbook) {
  const int64_t rows = 6, cols = 300;
  const Problem p = MakeProblem(rows, cols, 1024, 91);
  const Fp8Tensor rtn = QuantizeFp8(MakeView(p.w, {rows, cols}), Fp8Granularity::kPerChannel);
  Fp8Tensor expected = rtn;
  ReferenceGptq(p.w, rows, cols, p.h, 0.01, [&](int64_t r, int64_t c, float w) {
    expected.codes[r * cols + c] = EncodeE4M3(w / rtn.scales[r]);
    return DecodeE4M3(expected.codes[r * cols + c]) * rtn.scales[r];
  });
  ThreadPool pool(3);
  const Fp8Tensor got =
      GptqFp8(p.w, rows, cols, p.h, {}, Fp8Granularity::kPerChannel, {}, &pool);
  EXPECT_TRUE(SameBytes(expected.codes, got.codes));
}

// The all-zero column is decoupled (Model Optimizer's rule) and stays zero; an input channel
// that is never active (zero H row) needs no special case thanks to the damping.
TEST(GptqTest, DeadColumnsAndSilentInputs) {
  const int64_t rows = 8, cols = 32;
  Problem p = MakeProblem(rows, cols, 128, 41);
  for (int64_t r = 0; r < rows; ++r) p.w[r * cols + 5] = 0.0f;
  for (int64_t k = 0; k < cols; ++k) p.h.matrix[9 * cols + k] = p.h.matrix[k * cols + 9] = 0.0;
  const Fp8Tensor rtn = QuantizeFp8(MakeView(p.w, {rows, cols}), Fp8Granularity::kPerChannel);
  Fp8Tensor expected = rtn;
  ReferenceGptq(p.w, rows, cols, p.h, 0.01, [&](int64_t r, int64_t c, float w) {
    expected.codes[r * cols + c] = EncodeE4M3(w / rtn.scales[r]);
    return DecodeE4M3(expected.codes[r * cols + c]) * rtn.scales[r];
  });
  GptqStats stats;
  const Fp8Tensor got =
      GptqFp8(p.w, rows, cols, p.h, SmallBlocks(), Fp8Granularity::kPerChannel, {}, nullptr, &stats);
  EXPECT_EQ(stats.dead_columns, 1);
  EXPECT_TRUE(stats.positive_definite);
  EXPECT_TRUE(SameBytes(expected.codes, got.codes));
  for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(got.codes[r * cols + 5], 0) << r;
}

// A Hessian that is not positive definite even after damping: the identity factor, i.e. no
// error propagation, i.e. exactly round-to-nearest.
TEST(GptqTest, NonPositiveDefiniteFallsBackToRoundToNearest) {
  const int64_t rows = 8, cols = 32;
  Problem p = MakeProblem(rows, cols, 64, 51);
  for (int64_t i = 0; i < cols; ++i) p.h.matrix[i * cols + i] = -1.0;
  Nvfp4Options nvfp4;
  nvfp4.static_block_scales = true;
  GptqStats stats;
  const Nvfp4Tensor got = GptqNvfp4(p.w, rows, cols, p.h, {}, nvfp4, nullptr, &stats);
  EXPECT_FALSE(stats.positive_definite);
  EXPECT_TRUE(SameBytes(QuantizeNvfp4(MakeView(p.w, {rows, cols}), nvfp4).codes, got.codes));
}

// The same for every format and scale rule the pipeline can hand GPTQ (dynamic NVFP4 is the
// default Nvfp4Options; mse and four-over-six set static scales; FP8 and MX rules): with no error
// propagation each element must be encoded exactly as the round-to-nearest quantizer encodes it.
TEST(GptqTest, IdentityFactorIsRoundToNearestForEveryFormat) {
  const int64_t rows = 8, cols = 64;
  Problem p = MakeProblem(rows, cols, 64, 53);
  for (int64_t i = 0; i < cols; ++i) p.h.matrix[i * cols + i] = -1.0;
  const TensorView view = MakeView(p.w, {rows, cols});
  for (const BlockScaleAlgorithm algorithm :
       {BlockScaleAlgorithm::kMax, BlockScaleAlgorithm::kMse, BlockScaleAlgorithm::kFourOverSix}) {
    for (const GptqScaleTiming timing :
         {GptqScaleTiming::kFixedBeforeUpdates, GptqScaleTiming::kAtGroupStart}) {
      Nvfp4Options nvfp4;
      nvfp4.algorithm = algorithm;
      GptqOptions options;
      options.scale_timing = timing;
      const Nvfp4Tensor rtn = QuantizeNvfp4(view, nvfp4);
      const Nvfp4Tensor got = GptqNvfp4(p.w, rows, cols, p.h, options, nvfp4);
      EXPECT_TRUE(SameBytes(rtn.codes, got.codes)) << static_cast<int>(algorithm);
      EXPECT_TRUE(SameBytes(rtn.block_scales, got.block_scales)) << static_cast<int>(algorithm);
    }
  }
  for (const Fp8Granularity g : {Fp8Granularity::kPerTensor, Fp8Granularity::kPerChannel}) {
    EXPECT_TRUE(SameBytes(QuantizeFp8(view, g).codes, GptqFp8(p.w, rows, cols, p.h, {}, g).codes));
  }
  for (const MxElement e : {MxElement::kE2M1, MxElement::kE4M3}) {
    for (const MxScaleRule rule : {MxScaleRule::kOcpFloor, MxScaleRule::kCeil}) {
      EXPECT_TRUE(SameBytes(QuantizeMx(view, e, rule).codes,
                            GptqMx(p.w, rows, cols, p.h, {}, e, rule).codes))
          << static_cast<int>(e) << " " << static_cast<int>(rule);
    }
  }
}

TEST(GptqTest, SameBytesForAnyThreadCount) {
  const Problem p = MakeProblem(100, 128, 256, 61);
  Nvfp4Options nvfp4;
  nvfp4.static_block_scales = true;
  GptqOptions options;
  options.scale_timing = GptqScaleTiming::kAtGroupStart;
  const Nvfp4Tensor one = GptqNvfp4(p.w, p.rows, p.cols, p.h, options, nvfp4, nullptr);
  ThreadPool pool(4);
  const Nvfp4Tensor four = GptqNvfp4(p.w, p.rows, p.cols, p.h, options, nvfp4, &pool);
  EXPECT_TRUE(SameBytes(one.codes, four.codes));
  EXPECT_TRUE(SameBytes(one.block_scales, four.block_scales));
}

// q|k|v read one input: one prepared factor serves all three, with the same bytes as preparing
// each on its own; a weight with other all-zero columns is refused.
TEST(GptqTest, SharedFactorGivesTheSameBytes) {
  const int64_t cols = 64;
  const Problem q = MakeProblem(32, cols, 256, 81);
  const std::vector<float> k = RandomWeights(16, cols, 82), v = RandomWeights(16, cols, 83);
  Nvfp4Options nvfp4;
  nvfp4.static_block_scales = true;
  for (const bool act_order : {false, true}) {
    GptqOptions options;
    options.act_order = act_order;
    const GptqFactor factor = PrepareGptq(q.w, 32, cols, q.h, options);
    EXPECT_EQ(factor.stats.dead_columns, 0);
    GptqOptions shared = options;
    shared.shared_factor = &factor;
    for (const auto& [w, rows] : {std::pair{&q.w, int64_t{32}}, {&k, int64_t{16}}, {&v, int64_t{16}}}) {
      const Nvfp4Tensor own = GptqNvfp4(*w, rows, cols, q.h, options, nvfp4);
      const Nvfp4Tensor reused = GptqNvfp4(*w, rows, cols, Hessian{}, shared, nvfp4);
      EXPECT_TRUE(SameBytes(own.codes, reused.codes)) << "act_order " << act_order;
    }
    std::vector<float> dead = k;
    for (int64_t r = 0; r < 16; ++r) dead[r * cols + 3] = 0.0f;
    EXPECT_THROW(GptqNvfp4(dead, 16, cols, Hessian{}, shared, nvfp4), Error);
    shared.act_order = !act_order;
    EXPECT_THROW(GptqNvfp4(k, 16, cols, Hessian{}, shared, nvfp4), Error);
  }
}

TEST(GptqTest, RejectsBadInput) {
  const Problem p = MakeProblem(4, 32, 16, 71);
  Nvfp4Options nvfp4;
  Hessian wrong = p.h;
  wrong.dim = 16;
  EXPECT_THROW(GptqNvfp4(p.w, 4, 32, wrong, {}, nvfp4), Error);
  EXPECT_THROW(GptqNvfp4(p.w, 4, 16, p.h, {}, nvfp4), Error);  // shape vs size
  GptqOptions options;
  options.block_size = 24;
  options.scale_timing = GptqScaleTiming::kAtGroupStart;
  EXPECT_THROW(GptqNvfp4(p.w, 4, 32, p.h, options, nvfp4), Error);  // 24 % 16 != 0
  options.block_size = 32;
  options.act_order = true;
  EXPECT_THROW(GptqNvfp4(p.w, 4, 32, p.h, options, nvfp4), Error);
  options = {};
  options.perc_damp = -1.0;
  EXPECT_THROW(GptqNvfp4(p.w, 4, 32, p.h, options, nvfp4), Error);
  std::vector<float> nan_w = p.w;
  nan_w[7] = std::nanf("");
  EXPECT_THROW(GptqNvfp4(nan_w, 4, 32, p.h, {}, nvfp4), Error);
}

}  // namespace
}  // namespace qf
