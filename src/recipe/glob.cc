// Glob matching with Python fnmatch semantics (what ModelOpt matches quantizer names with), and
// the fused-experts name normalisation applied before matching.
//
// fnmatch translates a pattern to a regex anchored at both ends: `*` is `.*` (it crosses dots),
// `?` is one character, `[seq]` a class with ranges, `[!seq]` its complement, and a `]` right
// after `[` or `[!` is a literal member. Matching is case-sensitive on POSIX. One deliberate
// difference: Python treats an unclosed `[` as a literal character; here it is an error, since in
// a recipe it is far likelier a typo than a module name containing '['.
#include <string>
#include <string_view>

#include "quantforge/error.h"
#include "quantforge/recipe.h"
#include "src/recipe/recipe_internal.h"

namespace qf {
namespace {

// Parses the class starting at pattern[pos] == '['. Returns the index one past the closing ']',
// or npos when unclosed. Sets *matched to whether `c` is in the class.
size_t MatchClass(std::string_view pattern, size_t pos, char c, bool* matched) {
  size_t i = pos + 1;
  bool negate = false;
  if (i < pattern.size() && pattern[i] == '!') {
    negate = true;
    ++i;
  }
  bool in_class = false;
  bool first = true;
  while (i < pattern.size()) {
    if (pattern[i] == ']' && !first) {
      *matched = in_class != negate;
      return i + 1;
    }
    first = false;
    const char lo = pattern[i];
    if (i + 2 < pattern.size() && pattern[i + 1] == '-' && pattern[i + 2] != ']') {
      const char hi = pattern[i + 2];
      if (lo <= c && c <= hi) in_class = true;
      i += 3;
    } else {
      if (lo == c) in_class = true;
      ++i;
    }
  }
  return std::string_view::npos;
}

// Iterative wildcard matching with single-star backtracking: a later `*` supersedes an earlier
// one, which is sufficient because `*` matches any run of characters.
// Patterns made of literals and stars only (nearly every rule) match greedily: the first piece
// is a prefix, the last a suffix, and the pieces between are found leftmost-first in order, which
// is exact for star-only globs and runs on memchr-accelerated find.
bool MatchStarsOnly(std::string_view pattern, std::string_view name) {
  size_t first_star = pattern.find('*');
  if (first_star == std::string_view::npos) return pattern == name;
  const size_t last_star = pattern.rfind('*');
  const std::string_view head = pattern.substr(0, first_star);
  const std::string_view tail = pattern.substr(last_star + 1);
  if (name.size() < head.size() + tail.size()) return false;
  if (name.substr(0, head.size()) != head) return false;
  if (name.substr(name.size() - tail.size()) != tail) return false;
  size_t pos = head.size();
  const size_t limit = name.size() - tail.size();
  for (size_t begin = first_star + 1; begin < last_star;) {
    const size_t end = pattern.find('*', begin);
    const std::string_view piece = pattern.substr(begin, end - begin);
    if (!piece.empty()) {
      const size_t found = name.substr(0, limit).find(piece, pos);
      if (found == std::string_view::npos) return false;
      pos = found + piece.size();
    }
    begin = end + 1;
  }
  return true;
}

bool Match(std::string_view pattern, std::string_view name) {
  if (pattern.find_first_of("?[") == std::string_view::npos) {
    return MatchStarsOnly(pattern, name);
  }
  size_t p = 0, n = 0;
  size_t star_p = std::string_view::npos, star_n = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star_p = p++;
      star_n = n;
      continue;
    }
    if (p < pattern.size()) {
      if (pattern[p] == '?') {
        ++p;
        ++n;
        continue;
      }
      if (pattern[p] == '[') {
        bool matched = false;
        const size_t end = MatchClass(pattern, p, name[n], &matched);
        if (end != std::string_view::npos && matched) {
          p = end;
          ++n;
          continue;
        }
      } else if (pattern[p] == name[n]) {
        ++p;
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

}  // namespace

void ValidateGlob(std::string_view pattern) {
  if (pattern.empty()) throw Error("empty quantizer_name pattern");
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '[') continue;
    bool unused = false;
    const size_t end = MatchClass(pattern, i, '\0', &unused);
    if (end == std::string_view::npos) {
      throw Error("pattern '" + std::string(pattern) + "': '[' at column " + std::to_string(i + 1) +
                  " is never closed by ']'");
    }
    i = end - 1;
  }
}

bool GlobMatch(std::string_view pattern, std::string_view name) {
  ValidateGlob(pattern);
  return Match(pattern, name);
}

namespace recipe_internal {

bool GlobMatchUnchecked(std::string_view pattern, std::string_view name) {
  return Match(pattern, name);
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
