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

bool MatchSet(std::string_view pattern, size_t& p, char c) {
  // pattern[p] == '['; on return p is past the closing ']'. An unclosed '[' is a literal.
  size_t i = p + 1;
  bool negate = false;
  if (i < pattern.size() && pattern[i] == '!') {
    negate = true;
    ++i;
  }
  bool matched = false;
  bool first = true;
  while (i < pattern.size() && (first || pattern[i] != ']')) {
    first = false;
    if (i + 2 < pattern.size() && pattern[i + 1] == '-' && pattern[i + 2] != ']') {
      matched |= pattern[i] <= c && c <= pattern[i + 2];
      i += 3;
    } else {
      matched |= pattern[i] == c;
      ++i;
    }
  }
  if (i >= pattern.size()) {  // no ']': '[' matches itself
    ++p;
    return c == '[';
  }
  p = i + 1;
  return matched != negate;
}

}  // namespace

bool WildcardMatch(std::string_view pattern, std::string_view name) {
  // Iterative glob with single-star backtracking: '*' matches any run, dots included.
  size_t p = 0, n = 0;
  size_t star_p = std::string_view::npos, star_n = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star_p = p++;
      star_n = n;
      continue;
    }
    if (p < pattern.size()) {
      size_t next_p = p;
      bool ok;
      if (pattern[p] == '?') {
        ok = true;
        next_p = p + 1;
      } else if (pattern[p] == '[') {
        ok = MatchSet(pattern, next_p, name[n]);
      } else {
        ok = pattern[p] == name[n];
        next_p = p + 1;
      }
      if (ok) {
        p = next_p;
        ++n;
        continue;
      }
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p + 1;
    n = ++star_n;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

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
      if (WildcardMatch(pattern, q)) {
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
