// The text-splitting stages of a Hugging Face tokenizer.json that quantforge supports, as a list
// of steps over a list of pieces (raw UTF-8 bytes). Normalizers: Prepend, Replace (string
// pattern), NFC / NFKC (accepted as identity: see hf_pretokenizer.cc), Sequence. Pre-tokenizers:
// ByteLevel (GPT-2 regex, add_prefix_space), Split (regex or string pattern; behaviours
// Isolated and Removed), Metaspace, Sequence. Anything else is refused by name.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace qf::tok {

struct Piece {
  std::string text;
  bool first = false;  // the first piece of the input (Metaspace prepend_scheme "first")
};

class TextStep {
 public:
  virtual ~TextStep() = default;
  virtual void Apply(std::vector<Piece>& pieces) const = 0;
};

// Builds the steps of the "normalizer" then "pre_tokenizer" objects (either may be null).
// `byte_level` is set when a ByteLevel pre-tokenizer means pieces are to be mapped through GPT-2's
// bytes_to_unicode before the BPE model sees them. `path` names the file in errors.
std::vector<std::unique_ptr<TextStep>> BuildTextSteps(const nlohmann::json& normalizer,
                                                      const nlohmann::json& pre_tokenizer,
                                                      const std::string& path, bool* byte_level);

// GPT-2's bytes_to_unicode: every byte to one printable code point, as UTF-8.
std::string ByteLevelEncode(std::string_view bytes);

}  // namespace qf::tok
