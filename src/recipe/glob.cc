// Recipe globs: Python fnmatch semantics (qf::FnMatch, what ModelOpt matches quantizer names
// with) and the fused-experts name normalisation applied before matching. One deliberate
// difference: Python treats an unclosed `[` as a literal character; here it is an error, since in
// a recipe it is far likelier a typo than a module name containing '['.
#include <string>
#include <string_view>

#include "quantforge/error.h"
#include "quantforge/recipe.h"
#include "src/recipe/recipe_internal.h"
#include "src/util/fnmatch.h"

namespace qf {

void ValidateGlob(std::string_view pattern) {
  if (pattern.empty()) throw Error("empty quantizer_name pattern");
  const size_t unclosed = FindUnclosedBracket(pattern);
  if (unclosed != std::string_view::npos) {
    throw Error("pattern '" + std::string(pattern) + "': '[' at column " +
                std::to_string(unclosed + 1) + " is never closed by ']'");
  }
}

bool GlobMatch(std::string_view pattern, std::string_view name) {
  ValidateGlob(pattern);
  return FnMatch(pattern, name);
}

namespace recipe_internal {

bool GlobMatchUnchecked(std::string_view pattern, std::string_view name) {
  return FnMatch(pattern, name);
}

// Regex (weight_quantizers?|input_quantizers?)\.\d+(?=$|\.) replaced by the singular base.
std::optional<std::string> NormalizeFusedExpertsName(std::string_view name) {
  static constexpr std::string_view kBases[] = {"weight_quantizer", "input_quantizer"};
  // Fast path: ordinary names (`...weight_quantizer` at the end) never change.
  if (name.find("quantizers.") == std::string_view::npos &&
      name.find("quantizer.") == std::string_view::npos) {
    return std::nullopt;
  }
  std::string out;
  bool changed = false;
  size_t i = 0;
  while (i < name.size()) {
    bool replaced = false;
    for (std::string_view base : kBases) {
      if (name.substr(i, base.size()) != base) continue;
      size_t j = i + base.size();
      if (j < name.size() && name[j] == 's') ++j;
      if (j >= name.size() || name[j] != '.') continue;
      size_t k = j + 1;
      while (k < name.size() && name[k] >= '0' && name[k] <= '9') ++k;
      if (k == j + 1 || (k < name.size() && name[k] != '.')) continue;
      out.append(base);
      i = k;
      replaced = changed = true;
      break;
    }
    if (!replaced) out.push_back(name[i++]);
  }
  if (!changed) return std::nullopt;
  return out;
}

}  // namespace recipe_internal
}  // namespace qf
