// PlanCheckpoint: from a recipe and a checkpoint's tensor list to a decision per tensor.
//
// What is a quantizable linear weight is decided by shape and by small name tables (the tables
// below), never by per-model code: a 2-D floating `<module>.weight` is a linear unless its module
// is an embedding, a norm, or an MoE router (a `gate` / `router` next to an `experts` list). Its
// quantizer names are the ones ModelOpt gives: `<module>.weight_quantizer` and
// `<module>.input_quantizer`; attention modules with k_proj and v_proj also carry
// `<attn>.k_bmm_quantizer` / `<attn>.v_bmm_quantizer` (ModelOpt's _QuantAttention).
#include <algorithm>
#include <array>
#include <string>
#include <unordered_set>

#include "quantforge/error.h"
#include "quantforge/recipe.h"

namespace qf {
namespace {

// Last name component of modules that look like linears by shape but are embedding tables.
constexpr std::string_view kEmbeddingModules[] = {"embed_tokens",
                                                  "embeddings",
                                                  "embedding",
                                                  "wte",
                                                  "wpe",
                                                  "word_embeddings",
                                                  "tok_embeddings",
                                                  "embed_positions",
                                                  "position_embeddings",
                                                  "token_type_embeddings"};
// Last component of an MoE router when an `experts` module sits next to it.
constexpr std::string_view kRouterModules[] = {"gate", "router"};

// Modules a serving engine fuses into one GEMM (they read the same input), so they must share
// weight_scale_2 and input_scale. Matched as siblings under one parent module.
struct SiblingSet {
  std::string_view key;
  std::array<std::string_view, 3> members;  // "" pads
};
constexpr SiblingSet kFusedSiblings[] = {
    {"qkv", {"q_proj", "k_proj", "v_proj"}},             // attention
    {"gate_up", {"gate_proj", "up_proj", ""}},           // MLP, and each expert's MLP
    {"w13", {"w1", "w3", ""}},                           // Mixtral experts
    {"qkv_a", {"q_a_proj", "kv_a_proj_with_mqa", ""}},   // DeepSeek MLA
    {"in_proj_qkvz", {"in_proj_qkv", "in_proj_z", ""}},  // Qwen3.5 linear attention
    {"in_proj_ba", {"in_proj_b", "in_proj_a", ""}},
};

// KV-cache quantizers: the k/v projection, the bmm quantizer it feeds, and its partner.
struct KvProjection {
  std::string_view projection;
  std::string_view quantizer;
  std::string_view partner;
};
constexpr KvProjection kKvProjections[] = {
    {"k_proj", "k_bmm_quantizer", "v_proj"},
    {"v_proj", "v_bmm_quantizer", "k_proj"},
};

bool IsFloating(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16 ||
         dtype == DType::kF64;
}

std::pair<std::string_view, std::string_view> SplitLast(std::string_view name) {
  const size_t dot = name.rfind('.');
  if (dot == std::string_view::npos) return {{}, name};
  return {name.substr(0, dot), name.substr(dot + 1)};
}

template <size_t N>
bool In(std::string_view value, const std::string_view (&table)[N]) {
  for (std::string_view entry : table) {
    if (entry == value) return true;
  }
  return false;
}

std::string Join(std::string_view parent, std::string_view child) {
  return parent.empty() ? std::string(child) : std::string(parent) + "." + std::string(child);
}

// "<moe>.experts.<N>.<rest>" -> "<moe>.experts.*.<rest>"; "" when not a routed expert.
std::string MoeInputGroup(std::string_view module) {
  size_t pos = 0;
  while ((pos = module.find("experts.", pos)) != std::string_view::npos) {
    const bool at_boundary = pos == 0 || module[pos - 1] == '.';
    size_t i = pos + 8, digits = 0;
    while (i < module.size() && module[i] >= '0' && module[i] <= '9') ++i, ++digits;
    if (at_boundary && digits > 0 && i < module.size() && module[i] == '.') {
      return std::string(module.substr(0, pos + 8)) + "*" + std::string(module.substr(i));
    }
    pos += 8;
  }
  return {};
}

std::string DisabledReason(const Recipe& recipe, const ResolvedQuantizer& resolved,
                           std::string_view quantizer) {
  if (resolved.decided_by < 0) return std::string(quantizer) + " matched no rule";
  const QuantizerRule& rule = recipe.rules[static_cast<size_t>(resolved.decided_by)];
  return std::string(quantizer) + " disabled by rule " + std::to_string(resolved.decided_by) +
         " '" + rule.quantizer_name + "' (" + rule.source + ")";
}

QuantFormat UnsupportedFormat(std::string reason) {
  QuantFormat format;
  format.kind = QuantKind::kUnsupported;
  format.reason = std::move(reason);
  return format;
}

// Linear weights: resolve both quantizers, then apply the shape constraints.
void PlanLinear(const Recipe& recipe, const TensorDesc& tensor, TensorPlan* plan) {
  const std::string weight_q = plan->module + ".weight_quantizer";
  const std::string input_q = plan->module + ".input_quantizer";
  const ResolvedQuantizer weight = recipe.ResolveWithSource(weight_q, "nn.Linear");
  const ResolvedQuantizer input = recipe.ResolveWithSource(input_q, "nn.Linear");
  plan->weight = weight.config.Format(QuantizerRole::kWeight);
  plan->input = input.config.Format(QuantizerRole::kInput);
  std::string reason;
  if (!plan->weight.enabled()) reason = DisabledReason(recipe, weight, weight_q);

  const int64_t in_features = tensor.shape[1];
  for (QuantFormat* format : {&plan->weight, &plan->input}) {
    if (format->block_size > 0 && in_features % format->block_size != 0) {
      reason = "last dimension " + std::to_string(in_features) + " is not a multiple of the " +
               std::to_string(format->block_size) + "-element " +
               std::string(QuantKindName(format->kind)) + " block";
      plan->weight = {};
      plan->input = {};
    }
  }
  if (!plan->weight.enabled() && plan->input.enabled() &&
      plan->input.kind != QuantKind::kUnsupported) {
    plan->input = UnsupportedFormat(
        "input quantization of a module whose weight stays "
        "unquantized (" +
        reason + ")");
  }
  if (plan->weight.kind == QuantKind::kUnsupported) reason = "weight: " + plan->weight.reason;
  if (plan->input.kind == QuantKind::kUnsupported) {
    reason += (reason.empty() ? "" : "; ") + std::string("input: ") + plan->input.reason;
  }
  plan->excluded = !plan->weight.enabled() && !plan->input.enabled();
  plan->reason = std::move(reason);
}

}  // namespace

std::vector<TensorPlan> PlanCheckpoint(const Recipe& recipe,
                                       const std::vector<TensorDesc>& tensors) {
  for (const AlgorithmConfig& algorithm : recipe.algorithms) {
    if (!IsAlgorithmSupported(algorithm.method)) {
      throw Error("recipe '" + recipe.name + "': algorithm '" +
                  std::string(AlgorithmMethodName(algorithm.method)) +
                  "' is not supported yet (quantforge implements max, mse, local_hessian and gptq)");
    }
  }
  // Modules that hold an `experts` list ("<parent>" of "<parent>.experts.<...>"), for routers.
  std::unordered_set<std::string_view> has_experts;
  for (const TensorDesc& tensor : tensors) {
    const std::string_view name = tensor.name;
    for (size_t pos = name.find("experts."); pos != std::string_view::npos;
         pos = name.find("experts.", pos + 1)) {
      if (pos == 0) has_experts.insert(std::string_view());
      if (pos > 0 && name[pos - 1] == '.') has_experts.insert(name.substr(0, pos - 1));
    }
  }

  // Pass 1: classify, so pass 2 can see which sibling linears exist.
  std::vector<TensorPlan> plans(tensors.size());
  std::unordered_set<std::string> linear_modules;
  for (size_t t = 0; t < tensors.size(); ++t) {
    const TensorDesc& tensor = tensors[t];
    TensorPlan& plan = plans[t];
    plan.tensor = tensor.name;
    auto [module, leaf] = SplitLast(tensor.name);
    const auto [parent, module_leaf] = SplitLast(module);
    const bool experts_stack = tensor.shape.size() == 3 && IsFloating(tensor.dtype) &&
                               (module_leaf == "experts" || SplitLast(parent).second == "experts");
    if (experts_stack) {
      // Fused 3-D expert tensors ([E, out, in] or [E, in, out]): ModelOpt names their quantizers
      // `<experts>.<leaf>_weight_quantizers.N`, normalised to `<experts>.<leaf>_weight_quantizer`.
      const std::string stem = leaf == "weight" ? std::string(module) : std::string(tensor.name);
      plan.module = stem;
      plan.is_linear_weight = true;  // decided here; pass 2 handles 2-D weights only
      const std::string quantizer = stem + "_weight_quantizer";
      const ResolvedQuantizer resolved = recipe.ResolveWithSource(quantizer, "nn.Linear");
      if (resolved.config.enabled) {
        plan.weight = UnsupportedFormat("stacked 3-D expert weights are not supported yet");
        plan.reason = plan.weight.reason;
      } else {
        plan.excluded = true;
        plan.reason = DisabledReason(recipe, resolved, quantizer);
      }
      continue;
    }
    if (leaf != "weight" || module.empty()) {
      plan.reason = "not a weight";
      continue;
    }
    plan.module = std::string(module);
    if (!IsFloating(tensor.dtype)) {
      plan.reason = "dtype " + std::string(DTypeName(tensor.dtype)) + " is not floating point";
    } else if (tensor.shape.size() != 2) {
      plan.reason = std::to_string(tensor.shape.size()) + "-D weight (norm, conv or scalar)";
    } else if (In(module_leaf, kEmbeddingModules)) {
      plan.reason = "embedding table";
    } else if (module_leaf.find("norm") != std::string_view::npos) {
      plan.reason = "normalisation weight";
    } else if (In(module_leaf, kRouterModules) && has_experts.count(parent)) {
      plan.excluded = true;  // ModelOpt export lists routers in exclude_modules
      plan.reason = "MoE router: never quantized";
    } else {
      plan.is_linear_weight = true;
      linear_modules.insert(plan.module);
    }
  }

  // Pass 2: quantizers, KV cache and groups of the linear weights.
  for (size_t t = 0; t < tensors.size(); ++t) {
    TensorPlan& plan = plans[t];
    if (!plan.is_linear_weight || tensors[t].shape.size() != 2) continue;  // stacked: decided
    PlanLinear(recipe, tensors[t], &plan);
    const auto [parent, leaf] = SplitLast(plan.module);
    for (const KvProjection& kv : kKvProjections) {
      if (leaf != kv.projection || !linear_modules.count(Join(parent, kv.partner))) continue;
      const std::string quantizer = Join(parent, kv.quantizer);
      plan.kv_cache = recipe.Resolve(quantizer, "attention").Format(QuantizerRole::kKvCache);
    }
    for (const SiblingSet& set : kFusedSiblings) {
      if (std::find(set.members.begin(), set.members.end(), leaf) == set.members.end()) continue;
      int present = 0;
      for (std::string_view member : set.members) {
        if (!member.empty() && linear_modules.count(Join(parent, member))) ++present;
      }
      if (present >= 2) plan.fusion_group = Join(parent, set.key);
    }
    plan.moe_input_group = MoeInputGroup(plan.module);
  }
  return plans;
}

}  // namespace qf
