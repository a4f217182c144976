// SentencePiece .model files through Debian's libsentencepiece (the reference implementation).
#include <sentencepiece_processor.h>

#include "quantforge/error.h"
#include "quantforge/tokenizer.h"

namespace qf {
namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::filesystem::path& path) : path_(path.string()) {
    const auto status = processor_.Load(path_);
    if (!status.ok()) {
      throw Error("not a SentencePiece model: " + status.ToString(), {path_});
    }
  }

  std::vector<int32_t> Encode(std::string_view text) const override {
    std::vector<int> ids;
    const auto status = processor_.Encode(text, &ids);
    if (!status.ok()) throw Error("SentencePiece encode failed: " + status.ToString(), {path_});
    return {ids.begin(), ids.end()};
  }

  std::optional<int32_t> BosId() const override {
    const int id = processor_.bos_id();
    if (id < 0) return std::nullopt;
    return id;
  }
  int64_t VocabSize() const override { return processor_.GetPieceSize(); }
  std::string Describe() const override { return "SentencePiece model " + path_; }

 private:
  std::string path_;
  sentencepiece::SentencePieceProcessor processor_;
};

}  // namespace

std::unique_ptr<Tokenizer> LoadSentencePieceTokenizer(const std::filesystem::path& path) {
  return std::make_unique<SentencePieceTokenizer>(path);
}

}  // namespace qf
