// compare: rows per weight and variant, medians, and the NVFP4 reductions against max.
#include "quantforge/compare.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "quantforge/error.h"
#include "tests/pipeline/test_checkpoints.h"

namespace qf {
namespace {

TEST(CompareTest, EveryWeightUnderEveryVariant) {
  const auto root = testing::FreshDir("compare");
  testing::WriteCheckpoint(root / "m", testing::TinyLlamaTensors(3));
  CompareOptions o;
  o.model = root / "m";
  ThreadPool pool(2);
  const CompareReport r = RunCompare(o, &pool);
  // 7 projections + lm_head; nvfp4 x 3 algorithms + mxfp4 + mxfp8 + fp8.
  EXPECT_EQ(r.num_tensors, 8);
  EXPECT_EQ(r.rows.size(), 8u * 6u);
  ASSERT_EQ(r.nvfp4_reductions_vs_max.size(), 2u);
  for (const CompareRow& row : r.rows) {
    EXPECT_GT(row.error.mse, 0.0) << row.tensor << " " << row.format;
    EXPECT_LT(row.error.rel_rms, 0.5) << row.tensor << " " << row.format;
  }
  const auto j = nlohmann::json::parse(CompareReportJson(r));
  EXPECT_EQ(j["rows"].size(), r.rows.size());

  o.tensor_glob = "*mlp*";
  EXPECT_EQ(RunCompare(o, &pool).num_tensors, 3);
  o.formats = {"int3"};
  EXPECT_THROW(RunCompare(o, &pool), Error);
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace qf
