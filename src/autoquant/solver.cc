// The AutoQuantize solver: a multiple-choice knapsack (one format per group, total bits within the
// budget, least total sensitivity), solved exactly by depth-first branch and bound.
//
// Bound: the LP relaxation. Per group, the candidates that are not dominated (a dearer format
// with a score no lower is never worth taking) are reduced to their lower convex hull in the
// (cost, score) plane; the LP optimum of the remaining groups starts every group at its cheapest
// candidate and buys hull steps in descending order of score saved per bit, the last one
// fractionally (Sinha and Zoltners 1979). The bound is below every integer completion, so a node
// whose bound cannot beat the incumbent is pruned, and a search that ends within the node limit
// has proved its incumbent optimal (gap 0). On a node-limit stop the gap is measured against the
// root LP bound.
//
// Floating point: the bound is a sum of doubles, so a node is pruned only when its bound exceeds
// the incumbent by more than a rounding margin (1e-12 of the summed score range); ties are
// explored, never cut. Costs are integers (quarter-bits), so feasibility is exact.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "fmt/core.h"
#include "quantforge/autoquant.h"
#include "quantforge/error.h"

namespace qf {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

struct Item {
  int64_t cost = 0;  // quarter-bits
  double score = 0.0;
  size_t candidate = 0;
};

struct Segment {
  size_t position = 0;  // search position of the group
  int64_t cost = 0;     // > 0
  double score = 0.0;   // < 0 (the score saved is -score)
  double efficiency = 0.0;
};

void CheckScores(std::span<const DecisionGroup> groups, const ScoreTable& scores) {
  if (scores.size() != groups.size()) {
    throw Error(fmt::format("score table has {} rows, expected one per decision group ({})",
                            scores.size(), groups.size()));
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    if (scores[g].size() != groups[g].candidates.size()) {
      throw Error(fmt::format("group {} has {} candidate formats but {} scores", groups[g].name,
                              groups[g].candidates.size(), scores[g].size()));
    }
    for (size_t c = 0; c < scores[g].size(); ++c) {
      if (!(scores[g][c] >= 0.0) || !std::isfinite(scores[g][c])) {
        throw Error(fmt::format("group {} format {}: score {} is not a finite non-negative number",
                                groups[g].name, AutoFormatName(groups[g].candidates[c]),
                                scores[g][c]));
      }
    }
  }
}

int64_t BudgetQuarterBits(std::span<const DecisionGroup> groups, double budget_bpe) {
  if (!(budget_bpe > 0.0) || !std::isfinite(budget_bpe)) {
    throw Error(fmt::format("budget {} bits/element must be a positive number", budget_bpe));
  }
  const long double total = static_cast<long double>(TotalElements(groups));
  // The relative slack keeps a budget such as 5.35 from falling a rounding error short of an
  // assignment whose exact BPE it names.
  return static_cast<int64_t>(
      std::floor(static_cast<long double>(budget_bpe) * 4.0L * total * (1.0L + 1e-12L)));
}

// The lower end of the band, rounded up: cost >= min_bpe x elements.
int64_t MinCostQuarterBits(std::span<const DecisionGroup> groups, double min_bpe) {
  if (!(min_bpe > 0.0)) return 0;
  const long double total = static_cast<long double>(TotalElements(groups));
  return static_cast<int64_t>(
      std::ceil(static_cast<long double>(min_bpe) * 4.0L * total * (1.0L - 1e-12L)));
}

void CheckFeasible(std::span<const DecisionGroup> groups, int64_t budget, double budget_bpe) {
  int64_t min_cost = 0;
  for (const DecisionGroup& g : groups) {
    min_cost += g.num_elements * QuarterBitsPerElement(g.candidates.front());
  }
  if (min_cost <= budget) return;
  std::string limited;
  int num_limited = 0;
  for (const DecisionGroup& g : groups) {
    if (g.candidates.front() == AutoFormat::kNone || g.candidates.size() < 2 ||
        BitsPerElement(g.candidates.front()) > 4.5) {
      if (num_limited++ < 3) {
        limited += fmt::format("{}{} (cheapest {})", limited.empty() ? "" : ", ", g.name,
                               AutoFormatName(g.candidates.front()));
      }
    }
  }
  throw Error(fmt::format(
      "budget {:.4f} bits/element is infeasible: the minimum these formats reach is {:.4f} "
      "({} decoder Linear weight elements){}",
      budget_bpe, MinimumBpe(groups), TotalElements(groups),
      limited.empty()
          ? ""
          : fmt::format("; {} groups cannot take a 4-bit format, e.g. {}", num_limited, limited)));
}

class BranchAndBound {
 public:
  // `min_cost` > 0 also requires total cost >= min_cost (the band of SolverOptions::min_bpe).
  BranchAndBound(std::span<const DecisionGroup> groups, const ScoreTable& scores, int64_t budget,
                 int64_t min_cost, int64_t max_nodes)
      : budget_(budget), min_cost_(min_cost), max_nodes_(max_nodes) {
    const size_t n = groups.size();
    std::vector<std::vector<Item>> items(n);
    std::vector<std::vector<Item>> all_items(n);
    double range_sum = 0.0;
    for (size_t g = 0; g < n; ++g) {
      std::vector<Item> all;
      for (size_t c = 0; c < groups[g].candidates.size(); ++c) {
        all.push_back({groups[g].num_elements * QuarterBitsPerElement(groups[g].candidates[c]),
                       scores[g][c], c});
      }
      std::stable_sort(all.begin(), all.end(), [](const Item& a, const Item& b) {
        return a.cost < b.cost || (a.cost == b.cost && a.score < b.score);
      });
      for (const Item& item : all) {  // keep strictly better scores along ascending cost
        if (items[g].empty() || item.score < items[g].back().score) items[g].push_back(item);
      }
      // With a lower cost bound a dominated (dearer, no better) format can be what reaches it,
      // so the search then branches over every candidate; the LP bound uses the hull either way.
      all_items[g] = min_cost_ > 0 ? all : items[g];
      range_sum += items[g].front().score;
    }
    margin_ = 1e-12 * (range_sum + 1e-300);
    // Decide the groups with the most at stake first: their choice moves the bound most.
    order_.resize(n);
    std::iota(order_.begin(), order_.end(), 0);
    std::stable_sort(order_.begin(), order_.end(), [&](size_t a, size_t b) {
      return items[a].front().score - items[a].back().score >
             items[b].front().score - items[b].back().score;
    });
    for (size_t p = 0; p < n; ++p) {
      items_.push_back(std::move(items[order_[p]]));
      dfs_items_.push_back(std::move(all_items[order_[p]]));
    }
    suffix_cost_.assign(n + 1, 0);
    suffix_max_cost_.assign(n + 1, 0);
    suffix_score_.assign(n + 1, 0.0);
    for (size_t p = n; p-- > 0;) {
      suffix_cost_[p] = suffix_cost_[p + 1] + items_[p].front().cost;
      suffix_max_cost_[p] = suffix_max_cost_[p + 1] + dfs_items_[p].back().cost;
      suffix_score_[p] = suffix_score_[p + 1] + items_[p].front().score;
    }
    BuildSegments();
  }

  void Run() {
    current_.assign(items_.size(), 0);
    best_.assign(items_.size(), 0);
    root_bound_ = LpBound(0, budget_);
    GreedyIncumbent();
    Dfs(0, 0, 0.0);
  }

  bool aborted() const { return aborted_; }
  bool found() const { return best_score_ < kInfinity; }
  int64_t nodes() const { return nodes_; }
  double root_bound() const { return root_bound_; }
  // Per original group: the chosen candidate index.
  std::vector<size_t> Choice() const {
    std::vector<size_t> choice(items_.size());
    for (size_t p = 0; p < items_.size(); ++p) {
      choice[order_[p]] = dfs_items_[p][best_[p]].candidate;
    }
    return choice;
  }

 private:
  void BuildSegments() {
    for (size_t p = 0; p < items_.size(); ++p) {
      // Lower convex hull of the non-dominated items (ascending cost, descending score).
      std::vector<size_t> hull;
      for (size_t i = 0; i < items_[p].size(); ++i) {
        while (hull.size() >= 2) {
          const Item& a = items_[p][hull[hull.size() - 2]];
          const Item& b = items_[p][hull.back()];
          const Item& c = items_[p][i];
          // b is on or above the chord a-c: drop it (compare slopes by cross-multiplication).
          const double lhs = (b.score - a.score) * static_cast<double>(c.cost - a.cost);
          const double rhs = (c.score - a.score) * static_cast<double>(b.cost - a.cost);
          if (lhs >= rhs) {
            hull.pop_back();
          } else {
            break;
          }
        }
        hull.push_back(i);
      }
      for (size_t h = 1; h < hull.size(); ++h) {
        const Item& a = items_[p][hull[h - 1]];
        const Item& b = items_[p][hull[h]];
        segments_.push_back({p, b.cost - a.cost, b.score - a.score,
                             (a.score - b.score) / static_cast<double>(b.cost - a.cost)});
      }
    }
    // Within a group the hull's efficiencies strictly decrease, so a stable sort keeps each
    // group's steps in order.
    std::stable_sort(segments_.begin(), segments_.end(), [](const Segment& a, const Segment& b) {
      return a.efficiency > b.efficiency;
    });
  }

  // The LP optimum of groups at positions >= first with `remaining` quarter-bits.
  double LpBound(size_t first, int64_t remaining) const {
    int64_t slack = remaining - suffix_cost_[first];
    if (slack < 0) return kInfinity;
    double bound = suffix_score_[first];
    for (const Segment& s : segments_) {
      if (s.position < first) continue;
      if (s.cost <= slack) {
        bound += s.score;
        slack -= s.cost;
      } else {
        bound += s.score * (static_cast<double>(slack) / static_cast<double>(s.cost));
        break;
      }
    }
    return bound;
  }

  // Rounds the LP down: take whole hull steps in efficiency order while they fit.
  void GreedyIncumbent() {
    std::vector<size_t> at(items_.size(), 0);
    std::vector<bool> frozen(items_.size(), false);
    int64_t slack = budget_ - suffix_cost_[0];
    for (const Segment& s : segments_) {
      if (frozen[s.position]) continue;
      if (s.cost > slack) {
        frozen[s.position] = true;
        continue;
      }
      slack -= s.cost;
      // Advance to the item this step ends on.
      const int64_t target = items_[s.position][at[s.position]].cost + s.cost;
      while (items_[s.position][at[s.position]].cost != target) ++at[s.position];
    }
    double score = 0.0;
    int64_t cost = 0;
    for (size_t p = 0; p < items_.size(); ++p) {
      score += items_[p][at[p]].score;
      cost += items_[p][at[p]].cost;
      // The same item in the search's list (which may hold dominated ones too).
      size_t j = 0;
      while (dfs_items_[p][j].candidate != items_[p][at[p]].candidate) ++j;
      best_[p] = j;
    }
    if (cost >= min_cost_) best_score_ = score;  // else no incumbent yet
  }

  void Dfs(size_t position, int64_t used, double score) {
    if (aborted_) return;
    if (++nodes_ > max_nodes_) {
      aborted_ = true;
      return;
    }
    if (position == items_.size()) {
      if (score < best_score_) {
        best_score_ = score;
        best_ = current_;
      }
      return;
    }
    const std::vector<Item>& items = dfs_items_[position];
    for (size_t i = items.size(); i-- > 0;) {  // dearest (lowest score) first
      const int64_t cost = used + items[i].cost;
      if (cost + suffix_cost_[position + 1] > budget_) continue;
      if (cost + suffix_max_cost_[position + 1] < min_cost_) break;  // cheaper ones cannot either
      const double next_score = score + items[i].score;
      const double bound = next_score + LpBound(position + 1, budget_ - cost);
      if (bound >= best_score_ + margin_) continue;
      current_[position] = i;
      Dfs(position + 1, cost, next_score);
      if (aborted_) return;
    }
  }

  int64_t budget_;
  int64_t min_cost_;
  int64_t max_nodes_;
  std::vector<size_t> order_;                 // search position -> group
  std::vector<std::vector<Item>> items_;      // per position: non-dominated, ascending cost
  std::vector<std::vector<Item>> dfs_items_;  // what the search branches over (ascending cost)
  std::vector<int64_t> suffix_cost_;          // cheapest cost of positions >= p
  std::vector<int64_t> suffix_max_cost_;      // dearest cost of positions >= p
  std::vector<double> suffix_score_;          // their scores
  std::vector<Segment> segments_;             // all hull steps, descending efficiency
  std::vector<size_t> current_, best_;        // per position: item index
  double best_score_ = kInfinity;
  double root_bound_ = 0.0;
  double margin_ = 0.0;
  int64_t nodes_ = 0;
  bool aborted_ = false;
};

}  // namespace

void MakeScoresMonotone(std::span<const DecisionGroup> groups, ScoreTable& scores) {
  CheckScores(groups, scores);
  for (std::vector<double>& row : scores) {
    for (size_t c = 1; c < row.size(); ++c) row[c] = std::min(row[c], row[c - 1]);
  }
}

void EvaluateAssignment(std::span<const DecisionGroup> groups, const ScoreTable& scores,
                        Assignment& assignment) {
  QF_CHECK(assignment.choice.size() == groups.size());
  assignment.total_score = 0.0;
  assignment.total_quarter_bits = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    const size_t c = assignment.choice[g];
    QF_CHECK(c < groups[g].candidates.size());
    if (!scores.empty()) assignment.total_score += scores[g][c];
    assignment.total_quarter_bits +=
        groups[g].num_elements * QuarterBitsPerElement(groups[g].candidates[c]);
  }
  assignment.bpe = static_cast<double>(assignment.total_quarter_bits) /
                   (4.0 * static_cast<double>(TotalElements(groups)));
}

Assignment SolveAutoQuant(std::span<const DecisionGroup> groups, const ScoreTable& scores,
                          double budget_bpe, const SolverOptions& options) {
  CheckScores(groups, scores);
  const int64_t budget = BudgetQuarterBits(groups, budget_bpe);
  CheckFeasible(groups, budget, budget_bpe);
  const int64_t min_cost = MinCostQuarterBits(groups, options.min_bpe);
  BranchAndBound search(groups, scores, budget, min_cost, options.max_nodes);
  search.Run();
  if (!search.found()) {
    throw Error(fmt::format(
        "no assignment lands between {:.4f} and {:.4f} bits/element{}", options.min_bpe, budget_bpe,
        search.aborted() ? fmt::format(" within {} branch-and-bound nodes", options.max_nodes)
                         : std::string(" (the formats' bit steps are coarser than the band)")));
  }
  Assignment result;
  result.choice = search.Choice();
  result.nodes = search.nodes();
  EvaluateAssignment(groups, scores, result);
  result.proved_optimal = !search.aborted();
  result.lower_bound = result.proved_optimal ? result.total_score
                                             : std::min(search.root_bound(), result.total_score);
  result.gap = result.total_score - result.lower_bound;
  return result;
}

Assignment BruteForceAutoQuant(std::span<const DecisionGroup> groups, const ScoreTable& scores,
                               double budget_bpe, double min_bpe) {
  CheckScores(groups, scores);
  const int64_t budget = BudgetQuarterBits(groups, budget_bpe);
  const int64_t min_cost = MinCostQuarterBits(groups, min_bpe);
  CheckFeasible(groups, budget, budget_bpe);
  double combinations = 1.0;
  for (const DecisionGroup& g : groups) combinations *= static_cast<double>(g.candidates.size());
  if (combinations > 1e7) {
    throw Error(fmt::format("brute force over {:.3g} assignments is too large", combinations));
  }
  Assignment trial;
  trial.choice.assign(groups.size(), 0);
  Assignment best;
  best.total_score = kInfinity;
  while (true) {
    EvaluateAssignment(groups, scores, trial);
    if (trial.total_quarter_bits <= budget && trial.total_quarter_bits >= min_cost &&
        trial.total_score < best.total_score) {
      best = trial;
    }
    size_t g = 0;
    while (g < groups.size() && ++trial.choice[g] == groups[g].candidates.size()) {
      trial.choice[g++] = 0;
    }
    if (g == groups.size()) break;
  }
  if (best.choice.empty()) throw Error("no assignment lands in the band");
  best.proved_optimal = true;
  best.lower_bound = best.total_score;
  return best;
}

}  // namespace qf
