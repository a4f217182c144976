// Glob matching with Python's fnmatch.fnmatchcase semantics: what Model Optimizer matches
// quantizer names with and what vLLM applies to exclude_modules.
//
// The whole name must match. `*` matches any run of characters (dots included), `?` one
// character, `[seq]` one character of a class with ranges (`[a-z]`), `[!seq]` its complement; a
// `]` right after `[` or `[!` is a literal member. An unclosed `[` matches a literal '['.
// Case-sensitive.
#pragma once

#include <cstddef>
#include <string_view>

namespace qf {

bool FnMatch(std::string_view pattern, std::string_view name);

// Index of the first '[' that no ']' closes, or std::string_view::npos. Recipes treat such a
// pattern as a typo rather than a literal '['.
size_t FindUnclosedBracket(std::string_view pattern);

}  // namespace qf
