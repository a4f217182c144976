// Hugging Face tokenizer.json with a BPE model. Encoding: split out added tokens (exact matches,
// longest first; they map straight to their ids), run the normalizer and pre-tokenizer steps, map
// bytes through bytes_to_unicode when a ByteLevel pre-tokenizer is present, then BPE each piece
// by merge rank (lowest first, leftmost on ties) and look the symbols up; a symbol missing from
// the vocabulary becomes its <0xXX> byte tokens (byte_fallback) or unk_token (consecutive unks
// fused with fuse_unk).
#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "quantforge/error.h"
#include "quantforge/tokenizer.h"
#include "src/tokenizer/hf_pretokenizer.h"
#include "src/tokenizer/merge.h"

namespace qf {
namespace {

using Json = nlohmann::json;

// A merge pair as one key: left's length (4 bytes) then both strings, so no separator can clash.
std::string PairKey(std::string_view a, std::string_view b) {
  std::string key(4, '\0');
  const uint32_t n = static_cast<uint32_t>(a.size());
  for (int i = 0; i < 4; ++i) key[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  key.append(a);
  key.append(b);
  return key;
}

class HfTokenizer final : public Tokenizer {
 public:
  explicit HfTokenizer(const std::filesystem::path& path) : path_(path.string()) {
    std::ifstream in(path);
    if (!in) throw Error("cannot open tokenizer.json", {path_});
    Json json;
    try {
      json = Json::parse(in);
    } catch (const Json::exception& e) {
      throw Error(std::string("invalid JSON: ") + e.what(), {path_});
    }
    const Json& model = json.at("model");
    const std::string type = model.value("type", "BPE");
    if (type != "BPE") {
      throw Error("tokenizer.json model type '" + type + "' is not supported (supported: BPE)",
                  {path_});
    }
    if (!model.value("continuing_subword_prefix", Json()).is_null() ||
        !model.value("end_of_word_suffix", Json()).is_null()) {
      throw Error("BPE continuing_subword_prefix / end_of_word_suffix are not supported", {path_});
    }
    for (const auto& [piece, id] : model.at("vocab").items()) {
      vocab_.emplace(piece, id.get<int32_t>());
      vocab_size_ = std::max<int64_t>(vocab_size_, id.get<int64_t>() + 1);
    }
    int32_t rank = 0;
    for (const Json& merge : model.at("merges")) {
      std::string a, b;
      if (merge.is_string()) {  // "a b" (older files)
        const std::string s = merge.get<std::string>();
        const size_t space = s.find(' ', 1);
        if (space == std::string::npos) throw Error("merge '" + s + "' has no space", {path_});
        a = s.substr(0, space);
        b = s.substr(space + 1);
      } else {  // ["a", "b"]
        a = merge.at(0).get<std::string>();
        b = merge.at(1).get<std::string>();
      }
      ranks_.emplace(PairKey(a, b), rank++);
    }
    byte_fallback_ = model.value("byte_fallback", false);
    fuse_unk_ = model.value("fuse_unk", false);
    ignore_merges_ = model.value("ignore_merges", false);
    if (model.contains("unk_token") && model["unk_token"].is_string()) {
      const auto it = vocab_.find(model["unk_token"].get<std::string>());
      if (it != vocab_.end()) unk_id_ = it->second;
    }
    if (json.contains("added_tokens")) {
      for (const Json& added : json["added_tokens"]) {
        const std::string content = added.at("content").get<std::string>();
        const int32_t id = added.at("id").get<int32_t>();
        if (content.empty()) continue;
        added_.emplace_back(content, id);
        added_first_bytes_[static_cast<unsigned char>(content[0])] = true;
        special_ids_[content] = id;
        vocab_size_ = std::max<int64_t>(vocab_size_, int64_t{id} + 1);
      }
      // Longest first, so "<|a|b|>" wins over a prefix that is itself a token.
      std::stable_sort(added_.begin(), added_.end(), [](const auto& x, const auto& y) {
        return x.first.size() > y.first.size();
      });
    }
    steps_ = tok::BuildTextSteps(json.value("normalizer", Json()),
                                 json.value("pre_tokenizer", Json()), path_, &byte_level_);
    ParseBos(json.value("post_processor", Json()));
  }

  std::vector<int32_t> Encode(std::string_view text) const override {
    std::vector<int32_t> out;
    size_t pos = 0, segment = 0;
    bool first = true;
    while (pos <= text.size()) {
      const auto [length, id] =
          pos < text.size() && added_first_bytes_[static_cast<unsigned char>(text[pos])]
              ? AddedAt(text, pos)
              : std::pair<size_t, int32_t>{0, 0};
      if (length == 0 && pos < text.size()) {
        ++pos;
        continue;
      }
      EncodeSegment(text.substr(segment, pos - segment), first, out);
      first = false;
      if (length == 0) break;  // end of text
      out.push_back(id);
      pos += length;
      segment = pos;
    }
    return out;
  }

  std::optional<int32_t> BosId() const override { return bos_id_; }
  int64_t VocabSize() const override { return vocab_size_; }
  std::string Describe() const override {
    return std::string(byte_level_ ? "tokenizer.json (byte-level BPE) " : "tokenizer.json (BPE) ") +
           path_;
  }

 private:
  // The added token starting at `pos`, as (length, id); (0, 0) when none.
  std::pair<size_t, int32_t> AddedAt(std::string_view text, size_t pos) const {
    for (const auto& [content, id] : added_) {
      if (text.compare(pos, content.size(), content) == 0) return {content.size(), id};
    }
    return {0, 0};
  }

  void EncodeSegment(std::string_view segment, bool first, std::vector<int32_t>& out) const {
    if (segment.empty()) return;
    std::vector<tok::Piece> pieces = {{std::string(segment), first}};
    for (const auto& step : steps_) step->Apply(pieces);
    for (tok::Piece& piece : pieces) {
      const std::string word = byte_level_ ? tok::ByteLevelEncode(piece.text) : piece.text;
      EncodeWord(word, out);
    }
  }

  void EncodeWord(const std::string& word, std::vector<int32_t>& out) const {
    if (word.empty()) return;
    if (ignore_merges_) {
      if (const auto it = vocab_.find(word); it != vocab_.end()) {
        out.push_back(it->second);
        return;
      }
    }
    const auto priority = [&](std::string_view a, std::string_view b) -> std::optional<double> {
      const auto it = ranks_.find(PairKey(a, b));
      if (it == ranks_.end()) return std::nullopt;
      return static_cast<double>(it->second);
    };
    bool last_was_unk = false;
    for (const tok::Symbol& s : tok::MergeSymbols(word, tok::SplitCodepoints(word), priority)) {
      const std::string piece = word.substr(s.begin, s.length);
      if (const auto it = vocab_.find(piece); it != vocab_.end()) {
        out.push_back(it->second);
        last_was_unk = false;
        continue;
      }
      if (byte_fallback_ && AppendBytes(piece, out)) {
        last_was_unk = false;
        continue;
      }
      if (!unk_id_) {
        throw Error("piece '" + piece + "' is not in the vocabulary and there is no unk_token",
                    {path_});
      }
      if (!(fuse_unk_ && last_was_unk)) out.push_back(*unk_id_);
      last_was_unk = true;
    }
  }

  // <0xXX> tokens for every byte of `piece`; false (nothing appended) if one is missing.
  bool AppendBytes(const std::string& piece, std::vector<int32_t>& out) const {
    std::vector<int32_t> ids;
    for (const char c : piece) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", static_cast<unsigned char>(c));
      const auto it = vocab_.find(name);
      if (it == vocab_.end()) return false;
      ids.push_back(it->second);
    }
    out.insert(out.end(), ids.begin(), ids.end());
    return true;
  }

  void ParseBos(const Json& post) {
    if (post.is_null()) return;
    const std::string type = post.value("type", "");
    if (type == "Sequence") {
      for (const Json& inner : post["processors"]) ParseBos(inner);
      return;
    }
    if (type != "TemplateProcessing" || !post.contains("single") || post["single"].empty()) return;
    const Json& head = post["single"][0];
    if (!head.contains("SpecialToken")) return;
    const std::string name = head["SpecialToken"].at("id").get<std::string>();
    if (post.contains("special_tokens") && post["special_tokens"].contains(name)) {
      bos_id_ = post["special_tokens"][name].at("ids").at(0).get<int32_t>();
    } else if (const auto it = special_ids_.find(name); it != special_ids_.end()) {
      bos_id_ = it->second;
    }
  }

  std::string path_;
  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<std::string, int32_t> ranks_;
  std::vector<std::pair<std::string, int32_t>> added_;
  std::array<bool, 256> added_first_bytes_{};  // skips the added-token scan at most positions
  std::unordered_map<std::string, int32_t> special_ids_;
  std::vector<std::unique_ptr<tok::TextStep>> steps_;
  bool byte_level_ = false;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  std::optional<int32_t> unk_id_;
  std::optional<int32_t> bos_id_;
  int64_t vocab_size_ = 0;
};

}  // namespace

std::unique_ptr<Tokenizer> LoadHfTokenizer(const std::filesystem::path& path) {
  try {
    return std::make_unique<HfTokenizer>(path);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("unexpected tokenizer.json structure: ") + e.what(), {path.string()});
  }
}

}  // namespace qf
