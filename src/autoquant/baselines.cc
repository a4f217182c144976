// Assignments around the solver: the band fallback of the CLI (SolveNearBudget), the uniform
// references, and a seeded random assignment within the budget, the baseline AutoQuantize must
// beat (issue 5: "at the same BPE, beats ... a random assignment"). The random one is made to
// spend about as much of the budget as the solver does, so the comparison is at (nearly) the
// same BPE.
//
// Pass 1 visits the groups in a random order and gives each a uniformly random candidate among
// those that leave the rest feasible at their cheapest formats. Pass 2 visits them in a new
// random order and raises each to the dearest candidate the remaining budget allows. The
// generator is std::mt19937_64 (its sequence is fixed by the standard) reduced by modulo, so the
// assignment is the same on every platform.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "fmt/core.h"
#include "quantforge/autoquant.h"
#include "quantforge/error.h"

namespace qf {

Assignment RandomAssignment(std::span<const DecisionGroup> groups, const ScoreTable& scores,
                            double budget_bpe, uint64_t seed) {
  const int64_t total = TotalElements(groups);
  const int64_t budget =
      static_cast<int64_t>(std::floor(static_cast<long double>(budget_bpe) * 4.0L *
                                      static_cast<long double>(total) * (1.0L + 1e-12L)));
  const auto cost = [&](size_t g, size_t c) {
    return groups[g].num_elements * QuarterBitsPerElement(groups[g].candidates[c]);
  };
  int64_t committed = 0;  // every group at its cheapest candidate
  for (size_t g = 0; g < groups.size(); ++g) committed += cost(g, 0);
  if (committed > budget) {
    throw Error(fmt::format("budget {:.4f} bits/element is infeasible: the minimum is {:.4f}",
                            budget_bpe, MinimumBpe(groups)));
  }
  std::mt19937_64 rng(seed);
  const auto shuffle = [&](std::vector<size_t>& v) {  // Fisher-Yates with a portable draw
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng() % i]);
  };
  Assignment result;
  result.choice.assign(groups.size(), 0);
  std::vector<size_t> order(groups.size());
  std::iota(order.begin(), order.end(), 0);
  shuffle(order);
  for (size_t g : order) {
    std::vector<size_t> fitting;
    for (size_t c = 0; c < groups[g].candidates.size(); ++c) {
      if (committed - cost(g, 0) + cost(g, c) <= budget) fitting.push_back(c);
    }
    const size_t c = fitting[rng() % fitting.size()];
    committed += cost(g, c) - cost(g, 0);
    result.choice[g] = c;
  }
  shuffle(order);
  for (size_t g : order) {
    for (size_t c = groups[g].candidates.size(); c-- > result.choice[g] + 1;) {
      const int64_t delta = cost(g, c) - cost(g, result.choice[g]);
      if (committed + delta <= budget) {
        committed += delta;
        result.choice[g] = c;
        break;
      }
    }
  }
  EvaluateAssignment(groups, scores, result);
  return result;
}

Assignment SolveNearBudget(std::span<const DecisionGroup> groups, const ScoreTable& scores,
                           double budget_bpe, double tolerance, SolverOptions options,
                           std::string* note) {
  if (note) note->clear();
  if (tolerance > 0.0) {
    // The plain optimum first: when it already lands in the band it is the band's optimum too.
    options.min_bpe = 0.0;
    const Assignment plain = SolveAutoQuant(groups, scores, budget_bpe, options);
    if (plain.bpe >= budget_bpe - tolerance) return plain;
    options.min_bpe = budget_bpe - tolerance;
    try {
      return SolveAutoQuant(groups, scores, budget_bpe, options);
    } catch (const Error&) {
      if (note) {
        *note = fmt::format(
            "no assignment lands in [{:.4f}, {:.4f}] bits/element; the least-score one under "
            "the budget is used",
            budget_bpe - tolerance, budget_bpe);
      }
      return plain;
    }
  }
  options.min_bpe = 0.0;
  return SolveAutoQuant(groups, scores, budget_bpe, options);
}

Assignment UniformAssignment(std::span<const DecisionGroup> groups, const ScoreTable& scores,
                             AutoFormat format) {
  Assignment result;
  for (const DecisionGroup& g : groups) {
    const auto it = std::find(g.candidates.begin(), g.candidates.end(), format);
    result.choice.push_back(it == g.candidates.end()
                                ? g.candidates.size() - 1
                                : static_cast<size_t>(it - g.candidates.begin()));
  }
  EvaluateAssignment(groups, scores, result);
  return result;
}

}  // namespace qf
