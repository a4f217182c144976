// The assignment recipe round trip: written YAML loads with LoadRecipe, and PlanCheckpoint gives
// every module exactly the format its group was assigned (and leaves the rest unquantized).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "quantforge/autoquant.h"
#include "src/autoquant/format_table.h"
#include "tests/autoquant/test_models.h"

namespace qf {
namespace {

std::filesystem::path WriteTemp(const std::string& name, const std::string& text) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("qf_autoquant_test_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::filesystem::path path = dir / name;
  std::ofstream(path) << text;
  return path;
}

void ExpectPlanMatches(const std::vector<TensorDesc>& tensors,
                       const std::vector<DecisionGroup>& groups, const Assignment& assignment,
                       const std::filesystem::path& recipe_path) {
  const Recipe recipe = LoadRecipe(recipe_path.string());
  std::map<std::string, AutoFormat> expected;
  for (size_t g = 0; g < groups.size(); ++g) {
    for (const std::string& m : groups[g].modules) {
      expected[m] = groups[g].candidates[assignment.choice[g]];
    }
  }
  int num_checked = 0;
  for (const TensorPlan& plan : PlanCheckpoint(recipe, tensors)) {
    EXPECT_FALSE(plan.input.enabled()) << plan.tensor;  // weight-only
    if (plan.module.empty()) continue;
    const auto it = expected.find(plan.module);
    if (it == expected.end()) {
      EXPECT_FALSE(plan.weight.enabled()) << plan.tensor;
      continue;
    }
    EXPECT_TRUE(autoquant::PlannedAs(plan.weight, it->second))
        << plan.tensor << ": planned " << FormatToString(plan.weight) << ", assigned "
        << AutoFormatName(it->second);
    ++num_checked;
  }
  EXPECT_EQ(num_checked, static_cast<int>(expected.size()));
}

TEST(RecipeWriter, RoundTripsThroughLoadRecipeAndPlan) {
  const auto tensors = testing::LlamaTensors(4, 64, 32, 172);
  const std::vector<DecisionGroup> groups =
      BuildDecisionGroups(tensors, ParseAutoFormatList("nvfp4,fp8,none"));
  std::mt19937_64 rng(3);
  ScoreTable scores;
  for (const DecisionGroup& g : groups) {
    std::vector<double> row;
    for (size_t c = 0; c + 1 < g.candidates.size(); ++c) row.push_back(1.0 + rng() % 100);
    row.push_back(0.0);
    scores.push_back(row);
  }
  MakeScoresMonotone(groups, scores);
  const Assignment a = SolveAutoQuant(groups, scores, 7.0);
  const std::string yaml = AssignmentRecipeYaml(groups, scores, a, {"test-model", 7.0});
  EXPECT_NE(yaml.find("# budget:         7.0000 bits/element"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("# optimality gap: 0 (proved optimal"), std::string::npos) << yaml;
  ExpectPlanMatches(tensors, groups, a, WriteTemp("solved.yaml", yaml));
}

TEST(RecipeWriter, EveryFormatRoundTrips) {
  const auto tensors = testing::MoeTensors(2);
  const std::vector<DecisionGroup> groups =
      BuildDecisionGroups(tensors, ParseAutoFormatList("mxfp4,nvfp4,nvfp4-4o6,fp8,mxfp8,none"));
  // Give group g the candidate g mod (count): every format appears on some group.
  Assignment a;
  for (size_t g = 0; g < groups.size(); ++g) a.choice.push_back(g % groups[g].candidates.size());
  EvaluateAssignment(groups, {}, a);
  const std::string yaml = AssignmentRecipeYaml(groups, {}, a, {});
  EXPECT_NE(yaml.find("method: mse"), std::string::npos) << yaml;  // four-over-six present
  ExpectPlanMatches(tensors, groups, a, WriteTemp("every_format.yaml", yaml));
  // Uniform assignments, one per format, also load.
  for (AutoFormat f : {AutoFormat::kMxfp4, AutoFormat::kNvfp4, AutoFormat::kNvfp4FourOverSix,
                       AutoFormat::kFp8, AutoFormat::kMxfp8, AutoFormat::kNone}) {
    const Assignment u = UniformAssignment(groups, {}, f);
    ExpectPlanMatches(tensors, groups, u,
                      WriteTemp(std::string(AutoFormatName(f)) + ".yaml",
                                AssignmentRecipeYaml(groups, {}, u, {})));
  }
}

}  // namespace
}  // namespace qf
