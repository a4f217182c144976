// AutoQuantize: per-layer choice among NVFP4 / FP8 / MX / BF16 weight formats under a
// bits-per-element budget, after NVIDIA Model Optimizer's mtq.auto_quantize (method `gradient`,
// docs/AUTOQUANT.md; MODELOPT-NOTES.md section 5).
//
//   groups     modules a serving engine fuses (q/k/v, gate/up, every expert of one MoE layer) form
//              one decision group and get one format (ModelOpt's quant_grouping_rules)
//   cost       bits per element with the scales included: NVFP4 4.5 = 4 + 8/16, MXFP4 4.25 =
//              4 + 8/32, FP8 8 (the one F32 per-tensor scale adds 32/numel, below 0.01 bits for
//              any weight over 3,200 elements, and ModelOpt ignores it too), MXFP8 8.25, BF16 16.
//              Counted elements: the decoder Linear weights the recipe can quantize (PlanCheckpoint
//              with the default exclusions), so embeddings, lm_head and MoE routers are not in
//              the budget, as in ModelOpt (its lm_head quantizer is disabled).
//   solver     minimise the summed sensitivity subject to total bits <= budget x elements, one
//              format per group: an exact branch and bound over the multiple-choice knapsack with
//              the LP-relaxation bound (solver.cc), reporting the optimality gap.
//   output     the assignment as a ModelOpt-schema recipe YAML (weight-only: activations stay
//              unquantized) that LoadRecipe reads back.
//
// Costs are kept in integer quarter-bits (every format's bits x 4 is an integer), so the budget
// test is exact.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quantforge/recipe.h"

namespace qf {

// Candidate weight formats, in ascending bits; kNone (BF16, unquantized) is always last.
enum class AutoFormat : uint8_t {
  kMxfp4,             // E2M1, 32-blocks, E8M0 scales: 4.25 bits
  kNvfp4,             // E2M1, 16-blocks, E4M3 scales, dynamic (max): 4.5 bits
  kNvfp4FourOverSix,  // NVFP4 with four-over-six static block scales: 4.5 bits
  kFp8,               // E4M3, one F32 scale per tensor: 8 bits
  kMxfp8,             // E4M3, 32-blocks, E8M0 scales: 8.25 bits
  kNone,              // unquantized, counted as BF16: 16 bits
};

std::string_view AutoFormatName(AutoFormat format);  // "nvfp4", "nvfp4-4o6", "fp8", "none", ...
std::optional<AutoFormat> ParseAutoFormat(std::string_view name);
// "nvfp4,fp8,none": throws qf::Error on an unknown or repeated name or an empty list. The result
// is sorted by ascending bits and always ends with kNone (added when missing: ModelOpt's
// allow_no_quant default).
std::vector<AutoFormat> ParseAutoFormatList(std::string_view csv);
double BitsPerElement(AutoFormat format);
int64_t QuarterBitsPerElement(AutoFormat format);  // BitsPerElement x 4, exact

// ---------------------------------------------------------------------------------------------
// Decision groups and cost

struct DecisionGroup {
  std::string name;                  // "model.layers.0.self_attn.qkv", "...mlp.experts.*", module
  std::vector<std::string> modules;  // "<module>" of "<module>.weight", in checkpoint order
  std::vector<int64_t> module_elements;
  // Per module: the plan's fusion_group key ("" when none); NVFP4 members of one key share
  // weight_scale_2 (max of their amax), as the exporter writes them.
  std::vector<std::string> fusion_keys;
  int64_t num_elements = 0;
  // Formats every member can take (a block format needs the last dim to be a multiple of its
  // block), ascending bits, kNone last.
  std::vector<AutoFormat> candidates;
};

// The decision groups of a checkpoint's tensors for the candidate formats (ParseAutoFormatList
// order). Every linear weight the default exclusions leave in is counted, whatever the
// candidates; one that no candidate fits has only kNone. Throws qf::Error when there is none.
std::vector<DecisionGroup> BuildDecisionGroups(const std::vector<TensorDesc>& tensors,
                                               std::span<const AutoFormat> formats);
int64_t TotalElements(std::span<const DecisionGroup> groups);
// Names, dtypes and shapes of a checkpoint's tensors (a directory or a .safetensors file).
std::vector<TensorDesc> CheckpointTensorDescs(const std::filesystem::path& path);
// Achievable range: every group at its cheapest / dearest candidate.
double MinimumBpe(std::span<const DecisionGroup> groups);
double MaximumBpe(std::span<const DecisionGroup> groups);

// ---------------------------------------------------------------------------------------------
// Scores and the solver

// scores[g][c]: sensitivity of group g under groups[g].candidates[c] (kNone scores 0).
using ScoreTable = std::vector<std::vector<double>>;

// ModelOpt's monotonicity: along ascending bits, score_c = min(score_c, score_{c-1}), so more
// bits never look worse. Throws qf::Error on a shape mismatch, a negative or NaN score.
void MakeScoresMonotone(std::span<const DecisionGroup> groups, ScoreTable& scores);

struct Assignment {
  std::vector<size_t> choice;  // per group: index into candidates
  double total_score = 0.0;    // summed in group order
  int64_t total_quarter_bits = 0;
  double bpe = 0.0;             // total bits / TotalElements
  double lower_bound = 0.0;     // proven lower bound on the optimal total score
  double gap = 0.0;             // total_score - lower_bound (0 when proved optimal)
  bool proved_optimal = false;  // false for uniform / random assignments and a node-limit stop
  int64_t nodes = 0;            // branch-and-bound nodes visited
};

struct SolverOptions {
  int64_t max_nodes = 20'000'000;  // past this the best assignment so far is returned with its gap
  // > 0: also require at least this many bits per element (a band [min_bpe, budget], as Model
  // Optimizer's retry with a lower bound of 0.99 x budget). The least-score assignment often
  // leaves part of the budget unspent when groups are few and large; the band trades a little
  // score for landing near the requested BPE. Throws qf::Error when no assignment lands in it.
  double min_bpe = 0.0;
};

// Minimises the total score with total bits <= budget_bpe x TotalElements. Throws qf::Error when
// the budget is below MinimumBpe (naming it) or the scores do not fit the groups.
Assignment SolveAutoQuant(std::span<const DecisionGroup> groups, const ScoreTable& scores,
                          double budget_bpe, const SolverOptions& options = {});
// The CLI's solve: with tolerance > 0, the least-score assignment in [budget - tolerance,
// budget] (the "meets the requested BPE within 0.02"); when no assignment lands there,
// the plain optimum under the budget, and `note` (may be null) says so. tolerance 0: plain.
Assignment SolveNearBudget(std::span<const DecisionGroup> groups, const ScoreTable& scores,
                           double budget_bpe, double tolerance, SolverOptions options,
                           std::string* note);
// Exhaustive enumeration for tests (at most ~1e7 assignments): the reference optimum.
Assignment BruteForceAutoQuant(std::span<const DecisionGroup> groups, const ScoreTable& scores,
                               double budget_bpe, double min_bpe = 0.0);

// Every group at `format`, or at kNone where it cannot take it (as the planner leaves a module
// unquantized).
Assignment UniformAssignment(std::span<const DecisionGroup> groups, const ScoreTable& scores,
                             AutoFormat format);
// A seeded random assignment within the budget: groups in random order each take a random
// candidate that keeps the rest feasible, then a second random pass raises groups to the dearest
// candidate still within budget, so it spends about as much as the solver.
Assignment RandomAssignment(std::span<const DecisionGroup> groups, const ScoreTable& scores,
                            double budget_bpe, uint64_t seed);
// Fills total_score, total_quarter_bits and bpe from `choice`.
void EvaluateAssignment(std::span<const DecisionGroup> groups, const ScoreTable& scores,
                        Assignment& assignment);

// ---------------------------------------------------------------------------------------------
// Recipe output

struct RecipeHeader {
  std::string model;        // shown in the header comment
  double budget_bpe = 0.0;  // 0: no budget line (uniform references)
};

// The assignment as a ModelOpt-schema recipe: disable all, then one weight_quantizer rule per
// quantized module (exact name), activations and KV cache unquantized. The header comment lists
// budget, achieved BPE, total score, gap and a per-group table. Algorithm: max, or mse with
// multipliers 1.0/1.5 (four-over-six) when a group takes kNvfp4FourOverSix.
std::string AssignmentRecipeYaml(std::span<const DecisionGroup> groups, const ScoreTable& scores,
                                 const Assignment& assignment, const RecipeHeader& header);

// Per group: name, format, score, bits (for the CLI).
std::string AssignmentTable(std::span<const DecisionGroup> groups, const ScoreTable& scores,
                            const Assignment& assignment);

}  // namespace qf
