// Rule resolution: ModelOpt conversion.py::set_quantizer_by_cfg, evaluated for one quantizer
// name instead of walking a torch model.
//
// Worked example (NVFP4_DEFAULT_CFG, name "model.layers.0.mlp.gate.weight_quantizer"):
//   rule 0 '*' enable:false                  -> disabled (attributes still the INT8 default)
//   rule 1 '*weight_quantizer' cfg:nvfp4      -> NVFP4 attributes, enabled
//   rule 2 '*input_quantizer' cfg:nvfp4       -> no match
//   rule 9 '*mlp.gate.*' enable:false         -> disabled, NVFP4 attributes kept
// so the router stays unquantized and decided_by = 9 names the rule in messages.
#include <string>

#include "quantforge/recipe.h"
#include "src/recipe/recipe_internal.h"

namespace qf {

ResolvedQuantizer Recipe::ResolveWithSource(std::string_view quantizer_name,
                                            std::string_view parent_class) const {
  const std::optional<std::string> normalized =
      recipe_internal::NormalizeFusedExpertsName(quantizer_name);
  // Only the last matching cfg rule's attributes survive, so remember its index and copy once.
  int cfg_rule = -1;
  bool enabled = true;  // the default TensorQuantizer: enabled, INT8, per-tensor
  ResolvedQuantizer result;
  for (size_t i = 0; i < rules.size(); ++i) {
    const QuantizerRule& rule = rules[i];
    if (rule.parent_class && *rule.parent_class != parent_class) continue;
    const bool matches =
        recipe_internal::GlobMatchUnchecked(rule.quantizer_name, quantizer_name) ||
        (normalized && recipe_internal::GlobMatchUnchecked(rule.quantizer_name, *normalized));
    if (!matches) continue;
    if (rule.cfg) {
      // Full replacement: unspecified attributes revert to their defaults.
      cfg_rule = static_cast<int>(i);
      enabled = rule.enable.value_or(true);
    } else if (rule.enable) {
      enabled = *rule.enable;
    }
    result.decided_by = static_cast<int>(i);
  }
  if (cfg_rule >= 0) result.config = *rules[static_cast<size_t>(cfg_rule)].cfg;
  result.config.enabled = enabled;
  return result;
}

QuantizerConfig Recipe::Resolve(std::string_view quantizer_name,
                                std::string_view parent_class) const {
  return ResolveWithSource(quantizer_name, parent_class).config;
}

Recipe WithKvCache(Recipe body, const Recipe& kv_fragment) {
  body.name += "+" + kv_fragment.name;
  body.rules.insert(body.rules.end(), kv_fragment.rules.begin(), kv_fragment.rules.end());
  return body;
}

}  // namespace qf
