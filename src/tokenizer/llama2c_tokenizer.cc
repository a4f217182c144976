// llama2.c's tokenizer.bin and run.c's encode(). The file has no vocabulary size: pieces are read
// until the end, each length checked against the remaining bytes and max_token_length.
#include <cstring>
#include <fstream>
#include <iterator>
#include <unordered_map>

#include "quantforge/error.h"
#include "quantforge/tokenizer.h"
#include "src/tokenizer/merge.h"

namespace qf {
namespace {

class Llama2cTokenizer final : public Tokenizer {
 public:
  explicit Llama2cTokenizer(const std::filesystem::path& path) : path_(path.string()) {
    std::ifstream file(path, std::ios::binary);
    if (!file) throw Error("cannot open tokenizer file", {path_});
    const std::string bytes((std::istreambuf_iterator<char>(file)), {});
    size_t pos = 0;
    const auto read_i32 = [&](const char* what) {
      if (bytes.size() - pos < 4) {
        throw Error(std::string("truncated ") + what + ": expected 4 bytes, found " +
                        std::to_string(bytes.size() - pos),
                    {path_, "", pos});
      }
      int32_t v;
      std::memcpy(&v, bytes.data() + pos, 4);
      pos += 4;
      return v;
    };
    const int32_t max_len = read_i32("max_token_length");
    if (max_len <= 0 || max_len > 1024) {
      throw Error("max_token_length " + std::to_string(max_len) + " outside [1, 1024]",
                  {path_, "", 0});
    }
    while (pos < bytes.size()) {
      const size_t entry = pos;
      int32_t score_bits = read_i32("score");
      float score;
      std::memcpy(&score, &score_bits, 4);
      const int32_t len = read_i32("piece length");
      if (len < 0 || len > max_len || static_cast<size_t>(len) > bytes.size() - pos) {
        throw Error("piece " + std::to_string(pieces_.size()) + " has length " +
                        std::to_string(len) + " (max_token_length " + std::to_string(max_len) +
                        ", " + std::to_string(bytes.size() - pos) + " bytes left)",
                    {path_, "", entry});
      }
      pieces_.emplace_back(bytes.data() + pos, static_cast<size_t>(len));
      scores_.push_back(score);
      pos += static_cast<size_t>(len);
    }
    if (pieces_.size() < 259) {
      throw Error("only " + std::to_string(pieces_.size()) +
                      " pieces; a llama2.c vocabulary has <unk>, <s>, </s> and 256 byte pieces",
                  {path_});
    }
    // run.c's str_lookup is a binary search over sorted pieces; with duplicate pieces the first
    // id is kept here.
    for (size_t i = 0; i < pieces_.size(); ++i) ids_.emplace(pieces_[i], static_cast<int32_t>(i));
  }

  std::vector<int32_t> Encode(std::string_view text) const override {
    std::vector<int32_t> out;
    if (text.empty()) return out;
    // Dummy prefix: a space in front, as SentencePiece's add_dummy_prefix.
    // (append, not " " + std::string: GCC 12 warns falsely on one-character + string&&, PR 105329)
    const std::string word = std::string(" ").append(text);
    std::vector<tok::Symbol> symbols;
    for (const tok::Symbol& cp : tok::SplitCodepoints(word)) {
      if (ids_.count(word.substr(cp.begin, cp.length))) {
        symbols.push_back(cp);
      } else {
        // Byte fallback: one symbol per byte, each encoded as id byte + 3.
        for (int32_t k = 0; k < cp.length; ++k) symbols.push_back({cp.begin + k, 1});
      }
    }
    std::string pair;
    const auto priority = [&](std::string_view a, std::string_view b) -> std::optional<double> {
      pair.assign(a);
      pair.append(b);
      const auto it = ids_.find(pair);
      if (it == ids_.end()) return std::nullopt;
      return -static_cast<double>(scores_[it->second]);
    };
    for (const tok::Symbol& s : tok::MergeSymbols(word, std::move(symbols), priority)) {
      const std::string piece = word.substr(s.begin, s.length);
      const auto it = ids_.find(piece);
      if (it != ids_.end()) {
        out.push_back(it->second);
      } else {
        out.push_back(static_cast<int32_t>(static_cast<unsigned char>(piece[0])) + 3);
      }
    }
    return out;
  }

  std::optional<int32_t> BosId() const override { return 1; }
  int64_t VocabSize() const override { return static_cast<int64_t>(pieces_.size()); }
  std::string Describe() const override { return "llama2.c tokenizer " + path_; }

 private:
  std::string path_;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int32_t> ids_;
};

}  // namespace

std::unique_ptr<Tokenizer> LoadLlama2cTokenizer(const std::filesystem::path& path) {
  return std::make_unique<Llama2cTokenizer>(path);
}

}  // namespace qf
