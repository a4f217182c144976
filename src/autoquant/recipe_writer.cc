// The AutoQuantize assignment as a recipe in Model Optimizer's schema, readable and editable by a
// person and loaded back by LoadRecipe: disable every quantizer, then one rule per quantized
// module naming its weight_quantizer exactly, with the format's numerics unit imported from the
// built-in library. Modules left at kNone get no rule (disabled by the first one). Activations and
// KV cache stay unquantized: the scores measure weight quantization only, so the recipe is
// weight-only (W4A16 NVFP4 / W8A16 FP8 / MX weights), which needs no calibration at export.
#include <set>
#include <string>

#include "fmt/core.h"
#include "quantforge/autoquant.h"
#include "quantforge/error.h"
#include "src/autoquant/format_table.h"

namespace qf {
namespace {

// An exact name as an fnmatch pattern: the three glob metacharacters become one-element sets.
std::string GlobLiteral(const std::string& name) {
  std::string out;
  for (char c : name) {
    if (c == '*' || c == '?' || c == '[') {
      out += '[';
      out += c;
      out += ']';
    } else {
      out += c;
    }
  }
  return out;
}

std::string SingleQuoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::string ImportAlias(AutoFormat format) {
  std::string alias(AutoFormatName(format));
  for (char& c : alias) {
    if (c == '-') c = '_';
  }
  return alias;
}

std::string GapText(const Assignment& a) {
  if (a.proved_optimal)
    return fmt::format("0 (proved optimal, {} branch-and-bound nodes)", a.nodes);
  if (a.nodes == 0) return "n/a (not solved: a fixed assignment)";
  return fmt::format("{:.6g} (node limit reached after {} nodes; lower bound {:.6g})", a.gap,
                     a.nodes, a.lower_bound);
}

}  // namespace

std::string AssignmentTable(std::span<const DecisionGroup> groups, const ScoreTable& scores,
                            const Assignment& assignment) {
  size_t width = 5;
  for (const DecisionGroup& g : groups) width = std::max(width, g.name.size());
  std::string out = fmt::format("{:<{}}  {:<9}  {:>12}  {:>5}  {:>10}\n", "group", width, "format",
                                "score", "bits", "elements");
  for (size_t g = 0; g < groups.size(); ++g) {
    const size_t c = assignment.choice.at(g);
    const AutoFormat format = groups[g].candidates.at(c);
    out += fmt::format("{:<{}}  {:<9}  {:>12.5g}  {:>5.2f}  {:>10}\n", groups[g].name, width,
                       AutoFormatName(format), scores.empty() ? 0.0 : scores[g][c],
                       BitsPerElement(format), groups[g].num_elements);
  }
  return out;
}

std::string AssignmentRecipeYaml(std::span<const DecisionGroup> groups, const ScoreTable& scores,
                                 const Assignment& assignment, const RecipeHeader& header) {
  if (assignment.choice.size() != groups.size()) {
    throw Error(fmt::format("assignment has {} choices for {} decision groups",
                            assignment.choice.size(), groups.size()));
  }
  std::string out =
      "# AutoQuantize assignment written by quantforge (Model Optimizer recipe schema).\n"
      "# Weight-only: each decision group's weights take one format; no input or KV-cache\n"
      "# quantizers (no calibration needed). A modelopt-layout export of FP8 / MX layers is\n"
      "# served with dynamic per-token FP8 / per-32 MX inputs, which the scores include.\n"
      "# Bits per element include the block scales (NVFP4 4.5, MXFP4 4.25,\n"
      "# FP8 8, MXFP8 8.25, unquantized counted as BF16 16) and count the decoder Linear weights\n"
      "# only (embeddings and lm_head are not in the budget).\n";
  if (!header.model.empty()) out += "# model:          " + header.model + "\n";
  if (header.budget_bpe > 0) {
    out += fmt::format("# budget:         {:.4f} bits/element\n", header.budget_bpe);
  }
  out += fmt::format("# achieved:       {:.4f} bits/element over {} elements\n", assignment.bpe,
                     TotalElements(groups));
  out += fmt::format("# total score:    {:.6g} (summed gradient sensitivity, lower is better)\n",
                     assignment.total_score);
  out += "# optimality gap: " + GapText(assignment) + "\n#\n";
  const std::string table = AssignmentTable(groups, scores, assignment);
  size_t begin = 0;
  while (begin < table.size()) {
    const size_t end = table.find('\n', begin);
    out += "# " + table.substr(begin, end - begin) + "\n";
    begin = end + 1;
  }

  std::set<AutoFormat> used;
  for (size_t g = 0; g < groups.size(); ++g) {
    const AutoFormat f = groups[g].candidates.at(assignment.choice[g]);
    if (f != AutoFormat::kNone) used.insert(f);
  }
  out += "metadata:\n  recipe_type: ptq\n";
  out += fmt::format(
      "  description: {}\n",
      SingleQuoted(fmt::format("AutoQuantize {:.4f} bits/element, weight-only", assignment.bpe)));
  if (!used.empty()) {
    out += "imports:\n";
    for (AutoFormat f : used) {
      out += fmt::format("  {}: {}\n", ImportAlias(f), autoquant::NumericsConfigPath(f));
    }
  }
  out += "quantize:\n";
  out += fmt::format("  algorithm: {}\n",
                     autoquant::AlgorithmYaml(used.count(AutoFormat::kNvfp4FourOverSix) != 0));
  out += "  quant_cfg:\n    - {quantizer_name: '*', enable: false}\n";
  for (size_t g = 0; g < groups.size(); ++g) {
    const AutoFormat f = groups[g].candidates[assignment.choice[g]];
    out += fmt::format("    # {}: {}\n", groups[g].name, AutoFormatName(f));
    if (f == AutoFormat::kNone) continue;
    for (const std::string& module : groups[g].modules) {
      out += fmt::format("    - {{quantizer_name: {}, cfg: {{$import: {}}}}}\n",
                         SingleQuoted(GlobLiteral(module + ".weight_quantizer")), ImportAlias(f));
    }
  }
  return out;
}

}  // namespace qf
