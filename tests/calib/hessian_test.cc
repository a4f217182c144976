// HessianAccumulator and HessianCollector: bit-exact against the scalar definition, independent
// of batch split and thread count, block-diagonal mode equal to the full Hessian's blocks, site
// sharing and Release, and a real forward pass (stories260K) feeding the collector.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "quantforge/calib.h"
#include "quantforge/error.h"
#include "tests/calib/calib_test_util.h"

namespace qf {
namespace {

using calib_test::CorrelatedInputs;
using calib_test::ReferenceHessian;

bool SameDoubles(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(double)) != 0) {
      ADD_FAILURE() << "element " << i << ": " << std::hexfloat << a[i] << " vs " << b[i];
      return false;
    }
  }
  return true;
}

// Against the scalar definition (token-order sums): the BLAS chunks add the same exact products
// in another order, so each element may differ by the rounding of the additions: at most
// (n - 1) u sum_t |x_ti x_tj| for either order (u = 2^-53), plus one rounding of the scaling
// each; tolerance (2n + 2) u (2/n) sum_t |x_ti x_tj|.
::testing::AssertionResult CloseToDefinition(const std::vector<float>& x, int64_t n, int64_t dim,
                                             const Hessian& h) {
  const Hessian ref = ReferenceHessian(x, n, dim);
  for (int64_t i = 0; i < dim; ++i) {
    for (int64_t j = 0; j < dim; ++j) {
      double abs_sum = 0.0;
      for (int64_t t = 0; t < n; ++t) abs_sum += std::fabs(double{x[t * dim + i]} * x[t * dim + j]);
      const double tol = (2.0 * n + 2.0) * 0x1p-53 * (2.0 / n) * abs_sum;
      const double got = h.matrix[i * dim + j], want = ref.matrix[i * dim + j];
      if (!(std::fabs(got - want) <= tol)) {
        return ::testing::AssertionFailure() << "H[" << i << "][" << j << "] = " << std::hexfloat
                                             << got << ", definition " << want << ", tolerance "
                                             << tol;
      }
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(HessianAccumulatorTest, EqualsScalarDefinition) {
  for (const int64_t n : {97, 128, 300}) {  // below, at and across the 128-token chunks
    const int64_t dim = 40;                 // not a multiple of 16
    const std::vector<float> x = CorrelatedInputs(n, dim, 1);
    HessianAccumulator acc(dim, HessianKind::kFull);
    acc.Add(x.data(), n, dim);
    const Hessian h = acc.GptqHessian();
    EXPECT_EQ(h.num_tokens, n);
    EXPECT_TRUE(CloseToDefinition(x, n, dim, h)) << n << " tokens";
    for (int64_t i = 0; i < dim; ++i) {
      for (int64_t j = 0; j < dim; ++j) ASSERT_EQ(h.matrix[i * dim + j], h.matrix[j * dim + i]);
    }
  }
}

TEST(HessianAccumulatorTest, BatchSplitAndThreadCountDoNotChangeBits) {
  const int64_t n = 300, dim = 72;  // 300 tokens: two full 128-token chunks and a partial one
  const std::vector<float> x = CorrelatedInputs(n, dim, 2);
  HessianAccumulator whole(dim, HessianKind::kFull);
  whole.Add(x.data(), n, dim);
  const std::vector<double> expected = whole.GptqHessian().matrix;

  ThreadPool pool(3);
  for (const std::vector<int64_t>& split : std::vector<std::vector<int64_t>>{
           {1, 1, 1, 297}, {7, 13, 280}, {128, 172}, {129, 171}, {299, 1}}) {
    HessianAccumulator acc(dim, HessianKind::kFull);
    int64_t t = 0;
    for (const int64_t rows : split) {
      acc.Add(x.data() + t * dim, rows, dim, &pool);
      t += rows;
    }
    ASSERT_EQ(t, n);
    EXPECT_TRUE(SameDoubles(expected, acc.GptqHessian().matrix)) << "split of " << split.size();
  }
}

TEST(HessianAccumulatorTest, RowStrideIsHonoured) {
  const int64_t n = 20, dim = 24, ld = 31;
  const std::vector<float> x = CorrelatedInputs(n, dim, 3);
  std::vector<float> strided(static_cast<size_t>(n * ld), std::numeric_limits<float>::quiet_NaN());
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t c = 0; c < dim; ++c) strided[t * ld + c] = x[t * dim + c];
  }
  HessianAccumulator acc(dim, HessianKind::kFull);
  acc.Add(strided.data(), n, ld);  // the NaN padding past dim is never read
  HessianAccumulator dense(dim, HessianKind::kFull);
  dense.Add(x.data(), n, dim);
  EXPECT_TRUE(SameDoubles(dense.GptqHessian().matrix, acc.GptqHessian().matrix));
}

// H_b = (1/n) sum x_b x_b^T is H's diagonal 16x16 block divided by 2 (exactly: (2S)/n is
// 2 (S/n) in binary64), so LocalHessians of a full accumulator are the blocks of GptqHessian / 2
// bit for bit. The block-diagonal kind adds the same exact products in token order, so it
// agrees with the full kind to the rounding of the sums (float output: within 2 float ulps).
TEST(HessianAccumulatorTest, BlockDiagonalEqualsFullDiagonalBlocks) {
  const int64_t n = 50, dim = 40;
  const std::vector<float> x = CorrelatedInputs(n, dim, 4);
  HessianAccumulator full(dim, HessianKind::kFull), blocks(dim, HessianKind::kBlockDiagonal);
  full.Add(x.data(), 23, dim);
  full.Add(x.data() + 23 * dim, n - 23, dim);
  blocks.Add(x.data(), n, dim);
  const BlockHessians a = full.LocalHessians(), b = blocks.LocalHessians();
  ASSERT_EQ(a.num_blocks, 3);
  ASSERT_EQ(a.blocks.size(), b.blocks.size());
  for (size_t i = 0; i < a.blocks.size(); ++i) {
    EXPECT_NEAR(a.blocks[i], b.blocks[i], 2.0 * std::ldexp(std::fabs(a.blocks[i]), -23)) << i;
  }
  const Hessian h = full.GptqHessian();
  for (int64_t blk = 0; blk < a.num_blocks; ++blk) {
    for (int64_t i = 0; i < 16; ++i) {
      for (int64_t j = 0; j < 16; ++j) {
        const int64_t r = blk * 16 + i, c = blk * 16 + j;
        // H = (2 S) / n and H_b = S / n: H / 2 is exact, then one rounding to float.
        const float expected = (r < dim && c < dim)
                                   ? static_cast<float>(h.matrix[r * dim + c] / 2.0)
                                   : 0.0f;  // zero-padded inputs past dim
        EXPECT_EQ(expected, a.Block(blk)[i * 16 + j]) << blk << " " << i << " " << j;
      }
    }
  }
  EXPECT_THROW(blocks.GptqHessian(), Error);
}

TEST(HessianAccumulatorTest, RejectsBadInput) {
  HessianAccumulator acc(4, HessianKind::kFull);
  EXPECT_THROW(acc.GptqHessian(), Error);  // no tokens
  const float bad[4] = {1.0f, std::numeric_limits<float>::infinity(), 0.0f, 0.0f};
  try {
    acc.Add(bad, 1, 4, nullptr, "model.layers.0.mlp.down_proj");
    FAIL() << "expected qf::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("down_proj"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("column 1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(HessianAccumulator(0, HessianKind::kFull), Error);
}

TEST(HessianCollectorTest, FusedModulesShareOneSiteAndReleaseFreesIt) {
  const std::vector<std::string> qkv = {"l0.q_proj", "l0.k_proj", "l0.v_proj"};
  const std::vector<std::string> down = {"l0.down_proj"};
  HessianCollector collector;
  std::vector<float> x = CorrelatedInputs(8, 32, 5), y = CorrelatedInputs(8, 48, 6);
  collector.OnActivation({ActivationKind::kLinearInput, 0, qkv}, x.data(), 8, 32, 32);
  collector.OnActivation({ActivationKind::kKey, 0, std::span(qkv).subspan(1, 1)}, x.data(), 8,
                         32, 32);  // keys are not Linear inputs: ignored
  collector.OnActivation({ActivationKind::kLinearInput, 0, down}, y.data(), 8, 48, 48);
  collector.OnActivation({ActivationKind::kLinearInput, 0, qkv}, x.data(), 4, 32, 32);
  ASSERT_NE(collector.Find("l0.k_proj"), nullptr);
  EXPECT_EQ(collector.Find("l0.k_proj"), collector.Find("l0.q_proj"));
  EXPECT_EQ(collector.Find("l0.v_proj")->num_tokens(), 12);
  EXPECT_EQ(collector.Find("l0.down_proj")->dim(), 48);
  EXPECT_EQ(collector.Sites().size(), 2u);
  // A wrong width for a known site is an error naming it.
  EXPECT_THROW(collector.OnActivation({ActivationKind::kLinearInput, 0, qkv}, y.data(), 8, 48, 48),
               Error);
  collector.Release("l0.v_proj");
  EXPECT_EQ(collector.Find("l0.q_proj"), nullptr);
  EXPECT_EQ(collector.Sites().size(), 1u);
}

TEST(HessianCollectorTest, FilterSelectsSites) {
  HessianCollectorOptions options;
  options.kind = HessianKind::kBlockDiagonal;
  options.filter = [](const ActivationSite& site) { return site.layer == 1; };
  HessianCollector collector(options);
  const std::vector<std::string> a = {"l0.o_proj"}, b = {"l1.o_proj"};
  std::vector<float> x = CorrelatedInputs(4, 16, 7);
  collector.OnActivation({ActivationKind::kLinearInput, 0, a}, x.data(), 4, 16, 16);
  collector.OnActivation({ActivationKind::kLinearInput, 1, b}, x.data(), 4, 16, 16);
  EXPECT_EQ(collector.Find("l0.o_proj"), nullptr);
  ASSERT_NE(collector.Find("l1.o_proj"), nullptr);
  EXPECT_EQ(collector.Find("l1.o_proj")->kind(), HessianKind::kBlockDiagonal);
}

// The collector on a real forward pass: every Linear input site of stories260K (per layer q|k|v,
// o, gate|up, down; then lm_head) gets a Hessian whose token count is the batch's.
TEST(HessianCollectorTest, CollectsEverySiteOfARealModel) {
  const std::filesystem::path dir =
      std::filesystem::path(QF_SHARED_DIR) / "models/stories260K/hf";
  if (!std::filesystem::exists(dir / "config.json")) {
    GTEST_SKIP() << "stories260K not found under " << dir;
  }
  ThreadPool pool(2);
  const std::unique_ptr<Model> model = Model::LoadDir(dir, &pool);
  const std::vector<int32_t> tokens = {1, 403, 407, 261, 378, 429, 270, 259, 311, 354, 289, 46};
  TokenBatch batch;
  batch.sequences.push_back(tokens);
  HessianCollector collector({}, &pool);
  std::vector<float> hidden;
  model->Forward(batch, hidden, &collector);
  const ModelConfig& config = model->config();
  EXPECT_EQ(static_cast<int64_t>(collector.Sites().size()), 4 * config.num_hidden_layers);
  const HessianAccumulator* qkv = collector.Find("model.layers.0.self_attn.k_proj");
  ASSERT_NE(qkv, nullptr);
  EXPECT_EQ(qkv->num_tokens(), static_cast<int64_t>(tokens.size()));
  EXPECT_EQ(qkv->dim(), config.hidden_size);
  const HessianAccumulator* down = collector.Find("model.layers.0.mlp.down_proj");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->dim(), config.intermediate_size);
  const Hessian h = down->GptqHessian();
  for (int64_t i = 0; i < h.dim; ++i) EXPECT_GE(h.matrix[i * h.dim + i], 0.0);
}

}  // namespace
}  // namespace qf
