// Shared global scales of the layers an engine fuses.
//
// vLLM keeps one weight_scale_2 / input_scale slot per shard of a fused linear (qkv_proj,
// gate_up_proj, an expert's w13) and uses the max, without rescaling the E4M3 block scales; a shard
// whose blocks were computed against a smaller global then dequantizes too large by the ratio.
// Model Optimizer therefore unifies the amax before export (preprocess_linear_fusion: weight amax /
// global_amax and input amax = max over the group, for every format except FP8) and gives every
// routed expert of a MoE layer the same input amax (sync_moe_expert_amax). This file computes
// those maxima; the pipeline passes weight_global_amax as Nvfp4Options::global_amax.
#include <algorithm>
#include <array>
#include <map>
#include <numeric>
#include <string>

#include "fmt/core.h"
#include "quantforge/error.h"
#include "quantforge/export.h"

namespace qf {
namespace {

// Sibling sets that read the same input and are fused into one GEMM (llm-compressor's
// FUSED_LAYER_NAMES, vLLM's packed_modules_mapping).
const std::vector<std::vector<std::string_view>>& FusedSiblings() {
  static const std::vector<std::vector<std::string_view>> kSets = {
      {"q_proj", "k_proj", "v_proj"},
      {"gate_proj", "up_proj"},
      {"w1", "w3"},
      {"q_a_proj", "kv_a_proj_with_mqa"},
  };
  return kSets;
}

class DisjointSets {
 public:
  explicit DisjointSets(size_t n) : parent_(n) { std::iota(parent_.begin(), parent_.end(), 0); }
  size_t Find(size_t i) {
    while (parent_[i] != i) i = parent_[i] = parent_[parent_[i]];
    return i;
  }
  void Union(size_t a, size_t b) { parent_[Find(a)] = Find(b); }

 private:
  std::vector<size_t> parent_;
};

bool IsNvfp4(QuantAlgo algo) { return algo == QuantAlgo::kNvfp4 || algo == QuantAlgo::kW4A16Nvfp4; }
bool IsFp8(QuantAlgo algo) { return algo == QuantAlgo::kFp8 || algo == QuantAlgo::kFp8PerChannel; }

void CheckIndices(std::span<const AmaxEntry> entries, const std::vector<size_t>& group) {
  for (size_t idx : group) {
    if (idx >= entries.size()) {
      throw Error(
          fmt::format("fusion group index {} is out of range ({} entries)", idx, entries.size()));
    }
  }
}

}  // namespace

FusionGroups FusionGroupsFromNames(std::span<const std::string> names) {
  FusionGroups groups;
  // parent -> (sibling set index -> members)
  std::map<std::pair<std::string, size_t>, std::vector<size_t>> fused;
  // (moe prefix, projection after the expert index) -> members
  std::map<std::pair<std::string, std::string>, std::vector<size_t>> experts;
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    const size_t dot = name.rfind('.');
    const std::string parent = dot == std::string::npos ? std::string() : name.substr(0, dot);
    const std::string_view leaf =
        dot == std::string::npos ? std::string_view(name) : std::string_view(name).substr(dot + 1);
    const auto& sets = FusedSiblings();
    for (size_t s = 0; s < sets.size(); ++s) {
      if (std::find(sets[s].begin(), sets[s].end(), leaf) != sets[s].end()) {
        fused[{parent, s}].push_back(i);
      }
    }
    // "<moe>.experts.<N>.<rest>": a routed expert ("shared_experts" has no '.' before "experts").
    constexpr std::string_view kExperts = ".experts.";
    const size_t pos = name.find(kExperts);
    if (pos != std::string::npos) {
      size_t digits_end = pos + kExperts.size();
      while (digits_end < name.size() && name[digits_end] >= '0' && name[digits_end] <= '9') {
        ++digits_end;
      }
      if (digits_end > pos + kExperts.size() && digits_end < name.size() &&
          name[digits_end] == '.') {
        experts[{name.substr(0, pos), name.substr(digits_end + 1)}].push_back(i);
      }
    }
  }
  for (auto& [key, members] : fused) {
    if (members.size() > 1) groups.fused.push_back(std::move(members));
  }
  for (auto& [key, members] : experts) {
    if (members.size() > 1) groups.experts.push_back(std::move(members));
  }
  return groups;
}

FusionGroups FusionGroupsFromKeys(std::span<const std::string> fusion_keys,
                                  std::span<const std::string> moe_input_keys) {
  const auto collect = [](std::span<const std::string> keys) {
    std::map<std::string, std::vector<size_t>> by_key;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (!keys[i].empty()) by_key[keys[i]].push_back(i);
    }
    std::vector<std::vector<size_t>> sets;
    for (auto& [key, members] : by_key) {
      if (members.size() > 1) sets.push_back(std::move(members));
    }
    return sets;
  };
  return {collect(fusion_keys), collect(moe_input_keys)};
}

FusedAmax UnifyFusedAmax(std::span<const AmaxEntry> entries, const FusionGroups& groups) {
  const size_t n = entries.size();
  DisjointSets weight_sets(n), input_sets(n);
  for (const std::vector<size_t>& group : groups.fused) {
    CheckIndices(entries, group);
    if (group.empty()) continue;
    const QuantAlgo algo = entries[group[0]].algo;
    for (size_t idx : group) {
      if (entries[idx].algo != algo) {
        throw Error(
            fmt::format("fused layers {} ({}) and {} ({}) have different formats; the "
                        "engine fuses them into one GEMM with one format (vLLM: \"Mixed "
                        "quant_algo within fused layer\"), so give them the same recipe",
                        entries[group[0]].name, QuantAlgoName(algo), entries[idx].name,
                        QuantAlgoName(entries[idx].algo)));
      }
    }
    // FP8 shards keep their own scales; loaders requantize them to the max.
    if (IsFp8(algo)) continue;
    for (size_t idx : group) {
      if (IsNvfp4(algo)) weight_sets.Union(idx, group[0]);
      input_sets.Union(idx, group[0]);
    }
  }
  for (const std::vector<size_t>& group : groups.experts) {
    CheckIndices(entries, group);
    for (size_t idx : group) input_sets.Union(idx, group[0]);
  }

  std::vector<float> weight_max(n, 0.0f);
  std::vector<std::optional<float>> input_max(n);
  for (size_t i = 0; i < n; ++i) {
    const size_t w = weight_sets.Find(i);
    weight_max[w] = std::max(weight_max[w], entries[i].weight_amax);
    if (entries[i].input_amax) {
      const size_t r = input_sets.Find(i);
      input_max[r] = std::max(input_max[r].value_or(0.0f), *entries[i].input_amax);
    }
  }
  FusedAmax result;
  result.weight_global_amax.resize(n);
  result.input_amax.resize(n);
  for (size_t i = 0; i < n; ++i) {
    result.weight_global_amax[i] = weight_max[weight_sets.Find(i)];
    // An expert that saw no calibration tokens has no amax; it takes the max of its layer's
    // experts so that every expert has a finite input_scale (vLLM stacks them all).
    result.input_amax[i] = input_max[input_sets.Find(i)];
  }
  return result;
}

}  // namespace qf
