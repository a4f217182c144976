// exclude_modules compression and the wildcard match that loaders apply to it.
//
// Model Optimizer (quant_utils._prefix_wildcard_summarize_exclude_modules) summarises the
// unquantized modules with prefix wildcards cut at '.' boundaries: for an unquantized
// "model.layers.3.mlp.gate" it tries "model*", then the pair {"model", "model.*"}, then
// "model.layers*", {"model.layers", "model.layers.*"}, ... and finally the name itself, taking the
// first candidate that matches no quantized module (a pair is written as its "prefix.*" member).
// vLLM then applies each entry with fnmatch (after rewriting "foo*" into "foo" and "foo.*", vllm
// #28072), so a wildcard that matched a quantized module would silently leave it unquantized:
// every result is checked against the quantized names before it is returned.
#include <algorithm>
#include <set>
#include <string>

#include "quantforge/export.h"
#include "src/util/fnmatch.h"

namespace qf {
namespace {

// Sorted quantized names; answers "does any quantized name start with p" in O(log n) instead of
// materialising every prefix of every name (Model Optimizer's set would hold millions of strings
// for a large MoE model).
class QuantizedIndex {
 public:
  explicit QuantizedIndex(std::span<const std::string> names) : names_(names.begin(), names.end()) {
    std::sort(names_.begin(), names_.end());
  }
  bool AnyStartsWith(std::string_view prefix) const {
    auto it = std::lower_bound(names_.begin(), names_.end(), prefix,
                               [](const std::string& a, std::string_view b) { return a < b; });
    return it != names_.end() && std::string_view(*it).substr(0, prefix.size()) == prefix;
  }
  bool Contains(std::string_view name) const {
    return std::binary_search(names_.begin(), names_.end(), name,
                              [](std::string_view a, std::string_view b) { return a < b; });
  }
  // A candidate is invalid when it would match a quantized module.
  bool Forbidden(std::string_view wildcard) const {
    if (!wildcard.empty() && wildcard.back() == '*') {
      return AnyStartsWith(wildcard.substr(0, wildcard.size() - 1));
    }
    return Contains(wildcard);
  }
  const std::vector<std::string>& Names() const { return names_; }

 private:
  std::vector<std::string> names_;
};

}  // namespace

std::vector<std::string> CompressExcludeModules(std::span<const std::string> unquantized,
                                                std::span<const std::string> quantized) {
  const QuantizedIndex index(quantized);
  std::set<std::string> summary;
  for (const std::string& name : unquantized) {
    std::vector<std::string> chosen;
    const auto try_candidate = [&](std::vector<std::string> wildcards) {
      for (const std::string& w : wildcards) {
        if (index.Forbidden(w)) return false;  // need a more specific one
      }
      const bool covered = std::all_of(wildcards.begin(), wildcards.end(),
                                       [&](const std::string& w) { return summary.count(w) > 0; });
      chosen = covered ? std::vector<std::string>{} : std::move(wildcards);
      return true;
    };
    bool done = false;
    for (size_t i = 0; i < name.size() && !done; ++i) {
      if (name[i] != '.') continue;
      const std::string prefix = name.substr(0, i);
      done = try_candidate({prefix + "*"}) || try_candidate({prefix, prefix + ".*"});
    }
    if (!done) try_candidate({name});
    // The pair {prefix, prefix.*} is written as "prefix.*" alone: "prefix" is a parent module,
    // never a linear.
    if (chosen.size() == 2) {
      summary.insert(chosen[1]);
    } else {
      summary.insert(chosen.begin(), chosen.end());
    }
  }
  std::vector<std::string> result(summary.begin(), summary.end());
  // Proof obligation: no entry may match a quantized module under the loader's fnmatch. Names with
  // glob metacharacters could break the prefix reasoning; fall back to the exact names then.
  for (const std::string& pattern : result) {
    for (const std::string& q : index.Names()) {
      if (FnMatch(pattern, q)) {
        std::vector<std::string> exact(unquantized.begin(), unquantized.end());
        std::sort(exact.begin(), exact.end());
        exact.erase(std::unique(exact.begin(), exact.end()), exact.end());
        return exact;
      }
    }
  }
  return result;
}

}  // namespace qf
