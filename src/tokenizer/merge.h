// The merge loop shared by every BPE flavour here: a word is a list of symbols (byte ranges of
// the word); repeatedly the adjacent pair with the best priority merges, the leftmost pair winning
// ties, until no pair has a priority. Hugging Face BPE ranks pairs by merge rank (lower first);
// llama2.c / SentencePiece BPE by the merged piece's score (higher first): both are "lowest
// priority value first" with priority = rank or -score.
//
// A heap of candidate pairs with stale-entry checks makes this O(n log n), so a whole text can be
// one word (SentencePiece-style tokenizers do not pre-split on spaces).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

namespace qf::tok {

struct Symbol {
  int32_t begin = 0;  // byte offset in the word
  int32_t length = 0;
};

// Priority of merging two adjacent symbols (their concatenated bytes are word[left.begin,
// right end)); nullopt when the pair does not merge.
using PairPriority =
    std::function<std::optional<double>(std::string_view left, std::string_view right)>;

// Returns the final symbols in order.
std::vector<Symbol> MergeSymbols(std::string_view word, std::vector<Symbol> symbols,
                                 const PairPriority& priority);

// Splits UTF-8 into code points (an invalid byte becomes its own one-byte symbol).
std::vector<Symbol> SplitCodepoints(std::string_view text);

}  // namespace qf::tok
