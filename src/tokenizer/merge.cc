// Heap-driven merging. A heap entry remembers the two symbols' begin offsets and lengths when it
// was pushed; it is stale (skipped) if either symbol changed since. Ties on priority go to the
// smaller begin offset: the leftmost pair, as run.c's linear scan and HF's (rank, pos) queue do.
#include "src/tokenizer/merge.h"

#include <queue>

namespace qf::tok {
namespace {

struct Candidate {
  double priority;
  int32_t left;   // symbol index
  int32_t right;  // symbol index
  int32_t left_length;
  int32_t right_length;
  int32_t left_begin;
  bool operator>(const Candidate& o) const {
    if (priority != o.priority) return priority > o.priority;
    return left_begin > o.left_begin;
  }
};

}  // namespace

std::vector<Symbol> SplitCodepoints(std::string_view text) {
  std::vector<Symbol> symbols;
  size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    size_t len = lead < 0x80           ? 1
                 : (lead >> 5) == 0x6  ? 2
                 : (lead >> 4) == 0xE  ? 3
                 : (lead >> 3) == 0x1E ? 4
                                       : 1;
    if (i + len > text.size()) len = 1;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) len = 1;
    }
    symbols.push_back({static_cast<int32_t>(i), static_cast<int32_t>(len)});
    i += len;
  }
  return symbols;
}

std::vector<Symbol> MergeSymbols(std::string_view word, std::vector<Symbol> symbols,
                                 const PairPriority& priority) {
  const int32_t n = static_cast<int32_t>(symbols.size());
  if (n < 2) return symbols;
  std::vector<int32_t> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  const auto push = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& a = symbols[left];
    const Symbol& b = symbols[right];
    const std::optional<double> p =
        priority(word.substr(a.begin, a.length), word.substr(b.begin, b.length));
    if (p) heap.push({*p, left, right, a.length, b.length, a.begin});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i, i + 1);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    if (!alive[c.left] || !alive[c.right] || next[c.left] != c.right ||
        symbols[c.left].length != c.left_length || symbols[c.right].length != c.right_length) {
      continue;  // stale: one side merged with something else since
    }
    symbols[c.left].length += symbols[c.right].length;
    alive[c.right] = false;
    next[c.left] = next[c.right];
    if (next[c.right] >= 0) prev[next[c.right]] = c.left;
    push(prev[c.left], c.left);
    push(c.left, next[c.left]);
  }
  std::vector<Symbol> out;
  for (int32_t i = 0; i >= 0; i = next[i]) out.push_back(symbols[i]);
  return out;
}

}  // namespace qf::tok
