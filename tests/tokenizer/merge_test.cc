// The heap-driven merge loop against a direct quadratic scan (run.c's algorithm: rescan all
// pairs, merge the best, leftmost on ties) on seeded random words and priority tables.
#include "src/tokenizer/merge.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace qf::tok {
namespace {

std::vector<std::string> ReferenceMerge(std::string_view word,
                                        const std::map<std::string, double>& table) {
  std::vector<std::string> symbols;
  for (char c : word) symbols.emplace_back(1, c);
  while (true) {
    double best = 0;
    int best_idx = -1;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      const auto it = table.find(symbols[i] + "|" + symbols[i + 1]);
      if (it != table.end() && (best_idx < 0 || it->second < best)) {
        best = it->second;
        best_idx = static_cast<int>(i);
      }
    }
    if (best_idx < 0) return symbols;
    symbols[best_idx] += symbols[best_idx + 1];
    symbols.erase(symbols.begin() + best_idx + 1);
  }
}

TEST(MergeSymbols, MatchesQuadraticScan) {
  std::mt19937 rng(42);
  for (int trial = 0; trial < 300; ++trial) {
    // Alphabet of 3 letters so pairs repeat and ties (same pair twice) are frequent.
    std::string word;
    const int len = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < len; ++i) word += static_cast<char>('a' + rng() % 3);
    std::map<std::string, double> table;
    std::vector<std::string> pieces = {"a", "b", "c"};
    for (int m = 0; m < 12; ++m) {
      const std::string& x = pieces[rng() % pieces.size()];
      const std::string& y = pieces[rng() % pieces.size()];
      // Few distinct priorities: different pairs can tie too.
      table.emplace(x + "|" + y, static_cast<double>(rng() % 5));
      pieces.push_back(x + y);
    }
    const auto priority = [&](std::string_view a, std::string_view b) -> std::optional<double> {
      const auto it = table.find(std::string(a) + "|" + std::string(b));
      if (it == table.end()) return std::nullopt;
      return it->second;
    };
    std::vector<Symbol> init;
    for (int i = 0; i < len; ++i) init.push_back({i, 1});
    std::vector<std::string> got;
    for (const Symbol& s : MergeSymbols(word, init, priority)) {
      got.push_back(word.substr(s.begin, s.length));
    }
    ASSERT_EQ(got, ReferenceMerge(word, table)) << "trial " << trial << " word " << word;
  }
}

TEST(SplitCodepoints, Utf8AndInvalidBytes) {
  const std::string text = "a\xC3\xA9\xE2\x96\x81\xF0\x9F\x98\x80\xFFz";
  const std::vector<Symbol> s = SplitCodepoints(text);
  ASSERT_EQ(s.size(), 6u);
  EXPECT_EQ(s[1].length, 2);
  EXPECT_EQ(s[2].length, 3);
  EXPECT_EQ(s[3].length, 4);
  EXPECT_EQ(s[4].length, 1);  // lone 0xFF
}

}  // namespace
}  // namespace qf::tok
