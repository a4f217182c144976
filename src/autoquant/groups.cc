// Decision groups and the cost model of AutoQuantize.
//
// Which modules count: the linear weights that a uniform recipe of each candidate format would
// quantize, found by PlanCheckpoint itself (disable-all, `*weight_quantizer` in the format, then
// ModelOpt's default_disabled_quantizers), so lm_head, embeddings, routers and norms stay out
// exactly as in the presets, and a module whose last dimension is not a multiple of a block
// format's block loses that candidate (stories260K's down_proj, 172 columns, cannot be NVFP4).
//
// Grouping (ModelOpt quant_grouping_rules): the planner's fusion_group (q/k/v, gate/up, w1/w3,
// ...) and, for MoE, every module under `<layer>.experts.<N>.` of one layer in one group.
#include <algorithm>
#include <cctype>
#include <map>
#include <string>

#include "quantforge/autoquant.h"
#include "quantforge/checkpoint.h"
#include "quantforge/error.h"
#include "src/autoquant/format_table.h"

namespace qf {
namespace {

std::string UniformRecipeYaml(AutoFormat format) {
  return "imports:\n  numerics: " + std::string(autoquant::NumericsConfigPath(format)) +
         "\n  default_disabled_quantizers: configs/ptq/units/default_disabled_quantizers\n"
         "algorithm: " +
         std::string(autoquant::AlgorithmYaml(format == AutoFormat::kNvfp4FourOverSix)) +
         "\nquant_cfg:\n"
         "  - {quantizer_name: '*', enable: false}\n"
         "  - {quantizer_name: '*weight_quantizer', cfg: {$import: numerics}}\n"
         "  - $import: default_disabled_quantizers\n";
}

// "model.layers.3.mlp.experts.17.up_proj" -> "model.layers.3.mlp.experts.*"; "" when the module
// is not a routed expert.
std::string ExpertGroupKey(const std::string& module) {
  const std::string marker = ".experts.";
  const size_t at = module.find(marker);
  if (at == std::string::npos) return {};
  size_t pos = at + marker.size();
  const size_t digits_begin = pos;
  while (pos < module.size() && module[pos] >= '0' && module[pos] <= '9') ++pos;
  if (pos == digits_begin || pos >= module.size() || module[pos] != '.') return {};
  return module.substr(0, at) + ".experts.*";
}

// Compares runs of digits by value and everything else by character.
bool NaturalLess(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) &&
        std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t i_end = i, j_end = j;
      while (i_end < a.size() && std::isdigit(static_cast<unsigned char>(a[i_end]))) ++i_end;
      while (j_end < b.size() && std::isdigit(static_cast<unsigned char>(b[j_end]))) ++j_end;
      // Without leading zeros a longer run is a larger number.
      const std::string_view x = std::string_view(a).substr(i, i_end - i);
      const std::string_view y = std::string_view(b).substr(j, j_end - j);
      if (x.size() != y.size()) return x.size() < y.size();
      if (x != y) return x < y;
      i = i_end;
      j = j_end;
      continue;
    }
    if (a[i] != b[j]) return a[i] < b[j];
    ++i;
    ++j;
  }
  return a.size() - i < b.size() - j;
}

}  // namespace

std::vector<DecisionGroup> BuildDecisionGroups(const std::vector<TensorDesc>& tensors,
                                               std::span<const AutoFormat> formats) {
  struct ModuleInfo {
    int64_t elements = 0;
    std::string fusion_key;
    std::vector<AutoFormat> formats;
  };
  std::map<std::string, ModuleInfo> modules;
  std::vector<std::string> module_order;  // first appearance in `tensors`
  // FP8 per tensor has no block constraint, so its plan names every module the default
  // exclusions leave in: the counted elements do not depend on the candidate list (a module no
  // candidate fits stays in the budget at 16 bits).
  std::vector<AutoFormat> probes = {AutoFormat::kFp8};
  probes.insert(probes.end(), formats.begin(), formats.end());
  for (size_t p = 0; p < probes.size(); ++p) {
    const AutoFormat format = probes[p];
    if (format == AutoFormat::kNone || (p > 0 && format == AutoFormat::kFp8)) continue;
    const bool is_candidate =
        p > 0 || std::find(formats.begin(), formats.end(), AutoFormat::kFp8) != formats.end();
    const Recipe recipe = ParseRecipe(UniformRecipeYaml(format), "autoquant uniform recipe");
    for (const TensorPlan& plan : PlanCheckpoint(recipe, tensors)) {
      if (!plan.is_linear_weight || !autoquant::PlannedAs(plan.weight, format)) continue;
      auto [it, inserted] = modules.try_emplace(plan.module);
      if (inserted) module_order.push_back(plan.module);
      it->second.fusion_key = plan.fusion_group;
      if (is_candidate) it->second.formats.push_back(format);
    }
  }
  if (modules.empty()) {
    std::string names;
    for (AutoFormat f : formats) {
      if (!names.empty()) names += ',';
      names += AutoFormatName(f);
    }
    throw Error("no linear weight of the checkpoint can be quantized (formats " + names +
                "; AutoQuantize needs decoder Linear weights)");
  }
  for (const TensorDesc& desc : tensors) {
    const std::string suffix = ".weight";
    if (desc.name.size() <= suffix.size() ||
        desc.name.compare(desc.name.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    auto it = modules.find(desc.name.substr(0, desc.name.size() - suffix.size()));
    if (it != modules.end()) it->second.elements = NumElements(desc.shape);
  }
  // Natural order (layer 2 before layer 10): stable whatever the shard layout, and the order a
  // person reads the table in.
  std::sort(module_order.begin(), module_order.end(), NaturalLess);

  std::map<std::string, size_t> group_index;
  std::vector<DecisionGroup> groups;
  for (const std::string& module : module_order) {
    const ModuleInfo& info = modules.at(module);
    std::string key = ExpertGroupKey(module);
    if (key.empty()) key = info.fusion_key.empty() ? module : info.fusion_key;
    auto [it, inserted] = group_index.try_emplace(key, groups.size());
    if (inserted) {
      DecisionGroup group;
      group.name = key;
      group.candidates = info.formats;
      groups.push_back(std::move(group));
    }
    DecisionGroup& group = groups[it->second];
    group.modules.push_back(module);
    group.module_elements.push_back(info.elements);
    group.fusion_keys.push_back(info.fusion_key);
    group.num_elements += info.elements;
    // A group takes only the formats every member can take.
    std::vector<AutoFormat> common;
    for (AutoFormat f : group.candidates) {
      if (std::find(info.formats.begin(), info.formats.end(), f) != info.formats.end()) {
        common.push_back(f);
      }
    }
    group.candidates = std::move(common);
  }
  for (DecisionGroup& group : groups) {
    std::sort(group.candidates.begin(), group.candidates.end());
    group.candidates.push_back(AutoFormat::kNone);
  }
  return groups;
}

std::vector<TensorDesc> CheckpointTensorDescs(const std::filesystem::path& path) {
  const Checkpoint checkpoint = Checkpoint::Open(path);
  std::vector<TensorDesc> descs;
  for (const TensorInfo& info : checkpoint.Tensors()) {
    descs.push_back({info.name, info.dtype, info.shape});
  }
  return descs;
}

int64_t TotalElements(std::span<const DecisionGroup> groups) {
  int64_t total = 0;
  for (const DecisionGroup& g : groups) total += g.num_elements;
  return total;
}

double MinimumBpe(std::span<const DecisionGroup> groups) {
  int64_t quarter_bits = 0;
  for (const DecisionGroup& g : groups) {
    quarter_bits += g.num_elements * QuarterBitsPerElement(g.candidates.front());
  }
  return static_cast<double>(quarter_bits) / (4.0 * static_cast<double>(TotalElements(groups)));
}

double MaximumBpe(std::span<const DecisionGroup> groups) {
  int64_t quarter_bits = 0;
  for (const DecisionGroup& g : groups) {
    quarter_bits += g.num_elements * QuarterBitsPerElement(g.candidates.back());
  }
  return static_cast<double>(quarter_bits) / (4.0 * static_cast<double>(TotalElements(groups)));
}

}  // namespace qf
