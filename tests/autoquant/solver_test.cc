// The AutoQuantize solver against exhaustive enumeration on seeded random instances (exact
// equality of the optimum), its budget guarantees, infeasible budgets, monotone scores, the gap
// after a node-limit stop, and the random baseline.
#include <gtest/gtest.h>

#include <random>

#include "quantforge/autoquant.h"
#include "quantforge/error.h"

namespace qf {
namespace {

// Groups of random sizes (multiples of 32) with random candidate subsets; scores random, made
// monotone. `tie_prone` draws small integer scores so equal totals happen often.
struct Instance {
  std::vector<DecisionGroup> groups;
  ScoreTable scores;
};

Instance RandomInstance(std::mt19937_64& rng, int num_groups, bool tie_prone) {
  const std::vector<AutoFormat> all = {AutoFormat::kMxfp4, AutoFormat::kNvfp4, AutoFormat::kFp8,
                                       AutoFormat::kMxfp8};
  Instance inst;
  for (int g = 0; g < num_groups; ++g) {
    DecisionGroup group;
    group.name = "g" + std::to_string(g);
    group.num_elements = 32 * static_cast<int64_t>(1 + rng() % 128);
    group.modules = {group.name};
    group.module_elements = {group.num_elements};
    group.fusion_keys = {""};
    for (AutoFormat f : all) {
      if (rng() % 2) group.candidates.push_back(f);
    }
    group.candidates.push_back(AutoFormat::kNone);
    std::vector<double> row;
    double scale = tie_prone ? 1.0 : std::ldexp(1.0, static_cast<int>(rng() % 20) - 10);
    for (size_t c = 0; c + 1 < group.candidates.size(); ++c) {
      row.push_back(tie_prone ? static_cast<double>(rng() % 4)
                              : scale * static_cast<double>(rng() % 1000000) / 1e6);
    }
    row.push_back(0.0);
    inst.scores.push_back(row);
    inst.groups.push_back(std::move(group));
  }
  MakeScoresMonotone(inst.groups, inst.scores);
  return inst;
}

TEST(Solver, MatchesBruteForceOnRandomInstances) {
  std::mt19937_64 rng(20261123);
  int num_checked = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const int num_groups = 1 + static_cast<int>(rng() % 7);
    const Instance inst = RandomInstance(rng, num_groups, trial % 3 == 0);
    const double lo = MinimumBpe(inst.groups);
    const double hi = MaximumBpe(inst.groups);
    for (int b = 0; b < 4; ++b) {
      const double budget = lo + (hi - lo) * static_cast<double>(rng() % 1001) / 1000.0;
      const Assignment solved = SolveAutoQuant(inst.groups, inst.scores, budget);
      const Assignment brute = BruteForceAutoQuant(inst.groups, inst.scores, budget);
      ASSERT_TRUE(solved.proved_optimal);
      ASSERT_EQ(solved.gap, 0.0);
      ASSERT_EQ(solved.total_score, brute.total_score)
          << "trial " << trial << " budget " << budget << " groups " << num_groups << " solver bpe "
          << solved.bpe << " brute bpe " << brute.bpe;
      ASSERT_LE(solved.bpe, budget);
      ++num_checked;
    }
  }
  EXPECT_EQ(num_checked, 1200);
}

TEST(Solver, BandMatchesBruteForce) {
  // With a lower bound on the bits the search also branches over dominated formats.
  std::mt19937_64 rng(424242);
  int num_solved = 0, num_empty = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const Instance inst = RandomInstance(rng, 1 + static_cast<int>(rng() % 6), trial % 2 == 0);
    const double lo = MinimumBpe(inst.groups);
    const double hi = MaximumBpe(inst.groups);
    const double budget = lo + (hi - lo) * static_cast<double>(rng() % 1001) / 1000.0;
    const double min_bpe = budget - 0.05 * static_cast<double>(rng() % 20);
    bool brute_found = true;
    Assignment brute;
    try {
      brute = BruteForceAutoQuant(inst.groups, inst.scores, budget, min_bpe);
    } catch (const Error&) {
      brute_found = false;
    }
    if (!brute_found) {
      EXPECT_THROW(SolveAutoQuant(inst.groups, inst.scores, budget, {.min_bpe = min_bpe}), Error);
      ++num_empty;
      continue;
    }
    const Assignment solved =
        SolveAutoQuant(inst.groups, inst.scores, budget, {.min_bpe = min_bpe});
    ASSERT_EQ(solved.total_score, brute.total_score) << "trial " << trial;
    ASSERT_LE(solved.bpe, budget);
    ASSERT_GE(solved.bpe, min_bpe - 1e-12);
    ++num_solved;
  }
  EXPECT_GT(num_solved, 100);
  EXPECT_GT(num_empty, 10);
}

TEST(Solver, ExactBudgetIsFeasible) {
  // Two groups of 64: NVFP4 + BF16 = (4.5 + 16) / 2 = 10.25 exactly.
  std::vector<DecisionGroup> groups(2);
  for (int g = 0; g < 2; ++g) {
    groups[g].name = "g" + std::to_string(g);
    groups[g].num_elements = 64;
    groups[g].candidates = {AutoFormat::kNvfp4, AutoFormat::kNone};
  }
  const ScoreTable scores = {{5.0, 0.0}, {1.0, 0.0}};
  const Assignment a = SolveAutoQuant(groups, scores, 10.25);
  EXPECT_EQ(a.bpe, 10.25);
  EXPECT_EQ(a.total_score, 1.0);
  EXPECT_EQ(a.choice, (std::vector<size_t>{1, 0}));
}

TEST(Solver, InfeasibleBudgetNamesTheMinimum) {
  std::vector<DecisionGroup> groups(2);
  groups[0] = {"a", {"a"}, {1024}, {""}, 1024, {AutoFormat::kNvfp4, AutoFormat::kNone}};
  groups[1] = {"b", {"b"}, {1024}, {""}, 1024, {AutoFormat::kFp8, AutoFormat::kNone}};
  const ScoreTable scores = {{1.0, 0.0}, {1.0, 0.0}};
  EXPECT_DOUBLE_EQ(MinimumBpe(groups), 6.25);
  try {
    SolveAutoQuant(groups, scores, 6.0);
    FAIL() << "expected an infeasible-budget error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("minimum these formats reach is 6.2500"),
              std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(SolveAutoQuant(groups, scores, 6.25));
  EXPECT_THROW(SolveAutoQuant(groups, scores, -1.0), Error);
  EXPECT_THROW(RandomAssignment(groups, scores, 6.0, 1), Error);
}

TEST(Solver, SpendsTheBudgetWithinTwoHundredthsWhenTheGridAllows) {
  // 60 groups of 4096 and 20 of 256 elements: the small groups' steps are at most
  // 11.5 x 256 / 250,880 = 0.0117 bits/element, so an optimum leaving 0.02 unspent could still
  // raise one of them (scores strictly decrease with bits) unless all of them are at BF16.
  std::mt19937_64 rng(7);
  std::vector<DecisionGroup> groups;
  ScoreTable scores;
  for (int g = 0; g < 80; ++g) {
    const int64_t n = g < 60 ? 4096 : 256;
    groups.push_back({std::string("g").append(std::to_string(g)),
                      {"m"},
                      {n},
                      {""},
                      n,
                      {AutoFormat::kNvfp4, AutoFormat::kFp8, AutoFormat::kNone}});
    const double fp8 = 1.0 + static_cast<double>(rng() % 1000);
    scores.push_back({fp8 * (2.0 + static_cast<double>(rng() % 1000) / 100.0), fp8, 0.0});
  }
  for (double budget : {4.8, 5.0, 5.5, 6.0, 7.0, 8.0, 10.0}) {
    const Assignment a = SolveAutoQuant(groups, scores, budget);
    EXPECT_TRUE(a.proved_optimal) << budget;
    EXPECT_LE(a.bpe, budget);
    EXPECT_GE(a.bpe, budget - 0.02) << budget;
    const Assignment r = RandomAssignment(groups, scores, budget, 42);
    EXPECT_LE(r.bpe, budget);
    EXPECT_LE(a.total_score, r.total_score);
  }
}

TEST(Solver, SeventyBShapedInstancesAreProvedOptimal) {
  // 80 layers x (qkv, o, gate_up, down) of Llama-3-70B's sizes (hidden 8192, 8 KV heads of 128,
  // intermediate 28672: 6.8e10 elements, 4.4e12 quarter-bits at most, far inside int64), random
  // scores.
  std::mt19937_64 rng(80);
  const int64_t sizes[4] = {10240LL * 8192, 8192LL * 8192, 2LL * 28672 * 8192, 8192LL * 28672};
  std::vector<DecisionGroup> groups;
  ScoreTable scores;
  for (int l = 0; l < 80; ++l) {
    for (int64_t n : sizes) {
      groups.push_back({"g", {"m"}, {n}, {""}, n,
                        {AutoFormat::kNvfp4, AutoFormat::kFp8, AutoFormat::kNone}});
      const double fp8 = 1.0 + static_cast<double>(rng() % 1000);
      scores.push_back({fp8 * static_cast<double>(5 + rng() % 100), fp8, 0.0});
    }
  }
  for (double budget : {4.8, 6.0}) {
    const Assignment a = SolveAutoQuant(groups, scores, budget);
    EXPECT_TRUE(a.proved_optimal) << budget;
    EXPECT_LT(a.nodes, 100'000) << budget;
    EXPECT_LE(a.bpe, budget);
    EXPECT_GE(a.bpe, budget - 0.02);
  }
}

TEST(Solver, NodeLimitReportsAGap) {
  std::mt19937_64 rng(99);
  const Instance inst = RandomInstance(rng, 12, false);
  const double budget = 0.5 * (MinimumBpe(inst.groups) + MaximumBpe(inst.groups));
  const Assignment full = SolveAutoQuant(inst.groups, inst.scores, budget);
  const Assignment cut = SolveAutoQuant(inst.groups, inst.scores, budget, {.max_nodes = 2});
  EXPECT_FALSE(cut.proved_optimal);
  EXPECT_LE(cut.bpe, budget);
  EXPECT_GE(cut.total_score, full.total_score);
  EXPECT_LE(cut.lower_bound, full.total_score + 1e-12 * full.total_score);
  EXPECT_GE(cut.gap, 0.0);
  EXPECT_EQ(cut.gap, cut.total_score - cut.lower_bound);
}

TEST(Scores, MadeMonotoneAlongBits) {
  std::vector<DecisionGroup> groups(1);
  groups[0].candidates = {AutoFormat::kNvfp4, AutoFormat::kFp8, AutoFormat::kMxfp8,
                          AutoFormat::kNone};
  ScoreTable scores = {{3.0, 5.0, 1.0, 0.0}};
  MakeScoresMonotone(groups, scores);
  EXPECT_EQ(scores[0], (std::vector<double>{3.0, 3.0, 1.0, 0.0}));
  ScoreTable bad = {{1.0, -1.0, 0.0, 0.0}};
  EXPECT_THROW(MakeScoresMonotone(groups, bad), Error);
  ScoreTable short_row = {{1.0, 0.0}};
  EXPECT_THROW(MakeScoresMonotone(groups, short_row), Error);
}

TEST(RandomBaseline, SeededAndWithinBudget) {
  std::mt19937_64 rng(5);
  const Instance inst = RandomInstance(rng, 30, false);
  const double budget = MinimumBpe(inst.groups) + 2.0;
  const Assignment a = RandomAssignment(inst.groups, inst.scores, budget, 1234);
  const Assignment b = RandomAssignment(inst.groups, inst.scores, budget, 1234);
  const Assignment c = RandomAssignment(inst.groups, inst.scores, budget, 1235);
  EXPECT_EQ(a.choice, b.choice);
  EXPECT_NE(a.choice, c.choice);
  EXPECT_LE(a.bpe, budget);
  EXPECT_GE(a.bpe, SolveAutoQuant(inst.groups, inst.scores, budget).bpe - 1.0);
}

TEST(Uniform, FallsBackToNoneWhereTheFormatIsMissing) {
  std::vector<DecisionGroup> groups(2);
  groups[0] = {"a",  {"a"}, {64},
               {""}, 64,    {AutoFormat::kNvfp4, AutoFormat::kFp8, AutoFormat::kNone}};
  groups[1] = {"b", {"b"}, {64}, {""}, 64, {AutoFormat::kFp8, AutoFormat::kNone}};
  const Assignment a = UniformAssignment(groups, {}, AutoFormat::kNvfp4);
  EXPECT_EQ(a.choice, (std::vector<size_t>{0, 1}));
  EXPECT_EQ(a.bpe, (4.5 + 16.0) / 2);
  EXPECT_FALSE(a.proved_optimal);
}

}  // namespace
}  // namespace qf
