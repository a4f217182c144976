// FnMatch: iterative glob matching with single-star backtracking, plus a fast path for patterns
// made of literals and stars only (nearly every recipe rule and exclusion).
#include "src/util/fnmatch.h"

namespace qf {
namespace {

constexpr size_t kNpos = std::string_view::npos;

// The class starting at pattern[pos] == '['. Returns the index one past its closing ']', or npos
// when unclosed; sets *matched to whether `c` belongs to it.
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
      if (lo <= c && c <= pattern[i + 2]) in_class = true;
      i += 3;
    } else {
      if (lo == c) in_class = true;
      ++i;
    }
  }
  return kNpos;
}

// Literals and stars only: the first piece is a prefix, the last a suffix, and the pieces
// between are found leftmost-first in order, which is exact for star-only globs.
bool MatchStarsOnly(std::string_view pattern, std::string_view name) {
  const size_t first_star = pattern.find('*');
  if (first_star == kNpos) return pattern == name;
  const size_t last_star = pattern.rfind('*');
  const std::string_view head = pattern.substr(0, first_star);
  const std::string_view tail = pattern.substr(last_star + 1);
  if (name.size() < head.size() + tail.size()) return false;
  if (name.substr(0, head.size()) != head) return false;
  if (name.substr(name.size() - tail.size()) != tail) return false;
  size_t pos = head.size();
  const std::string_view middle = name.substr(0, name.size() - tail.size());
  for (size_t begin = first_star + 1; begin < last_star;) {
    const size_t end = pattern.find('*', begin);
    const std::string_view piece = pattern.substr(begin, end - begin);
    if (!piece.empty()) {
      const size_t found = middle.find(piece, pos);
      if (found == kNpos) return false;
      pos = found + piece.size();
    }
    begin = end + 1;
  }
  return true;
}

}  // namespace

bool FnMatch(std::string_view pattern, std::string_view name) {
  if (pattern.find_first_of("?[") == kNpos) return MatchStarsOnly(pattern, name);
  // A later `*` supersedes an earlier one, which suffices because `*` matches any run.
  size_t p = 0, n = 0;
  size_t star_p = kNpos, star_n = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star_p = p++;
      star_n = n;
      continue;
    }
    if (p < pattern.size()) {
      size_t next_p = p + 1;
      bool ok;
      if (pattern[p] == '?') {
        ok = true;
      } else if (pattern[p] == '[') {
        bool in_class = false;
        const size_t end = MatchClass(pattern, p, name[n], &in_class);
        ok = end == kNpos ? name[n] == '[' : in_class;  // unclosed: a literal '['
        if (end != kNpos) next_p = end;
      } else {
        ok = pattern[p] == name[n];
      }
      if (ok) {
        p = next_p;
        ++n;
        continue;
      }
    }
    if (star_p == kNpos) return false;
    p = star_p + 1;
    n = ++star_n;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

size_t FindUnclosedBracket(std::string_view pattern) {
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '[') continue;
    bool unused = false;
    const size_t end = MatchClass(pattern, i, '\0', &unused);
    if (end == kNpos) return i;
    i = end - 1;
  }
  return kNpos;
}

}  // namespace qf
