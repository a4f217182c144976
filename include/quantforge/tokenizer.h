// Tokenizers for calibration and evaluation text: llama2.c's tokenizer.bin, SentencePiece .model
// files (through Debian's libsentencepiece) and Hugging Face tokenizer.json files with a BPE model
// (byte-level as in GPT-2 / Llama 3 / Qwen, or SentencePiece-style with byte fallback as in
// Llama 2 / Mistral). Encode never adds BOS/EOS; BosId() says which id the tokenizer's own
// convention puts in front of a text, so callers add it explicitly.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qf {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Token ids of `text` (UTF-8), without BOS or EOS.
  virtual std::vector<int32_t> Encode(std::string_view text) const = 0;
  // The id prepended to a text by the tokenizer's convention (llama2.c and SentencePiece: <s>;
  // tokenizer.json: the first special token of the post-processor's template), if any.
  virtual std::optional<int32_t> BosId() const = 0;
  virtual int64_t VocabSize() const = 0;
  // "llama2.c", "sentencepiece", "tokenizer.json (byte-level BPE)", ...
  virtual std::string Describe() const = 0;
};

// llama2.c tokenizer.bin: int32 max_token_length, then per id until the end of the file: float32
// score, int32 length, the piece's bytes. Encoding is run.c's encode(): a dummy-prefix space,
// UTF-8 code points looked up as pieces (unknown ones fall back to byte tokens <0xXX> = byte + 3),
// then repeatedly the adjacent pair whose concatenation is a piece with the highest score merges
// (leftmost on ties).
std::unique_ptr<Tokenizer> LoadLlama2cTokenizer(const std::filesystem::path& path);
// A SentencePiece model file (tokenizer.model).
std::unique_ptr<Tokenizer> LoadSentencePieceTokenizer(const std::filesystem::path& path);
// A Hugging Face tokenizer.json with a BPE model. Unsupported normalizers, pre-tokenizers or
// models are refused with a qf::Error naming them.
std::unique_ptr<Tokenizer> LoadHfTokenizer(const std::filesystem::path& path);

// A tokenizer file of any of the kinds above, chosen by name (tokenizer.json / *.json,
// *.model, *.bin).
std::unique_ptr<Tokenizer> LoadTokenizerFile(const std::filesystem::path& path);
// The tokenizer a model directory holds: tokenizer.json, else tokenizer.model, else
// tokenizer.bin. Throws qf::Error listing what was looked for when there is none.
std::unique_ptr<Tokenizer> FindTokenizer(const std::filesystem::path& model_dir);
// The tokenizer every command uses for a model: `path` when given (LoadTokenizerFile), else the
// one `model_dir` holds, else nullptr (pre-tokenized input_ids data needs none; LoadEvalData
// refuses text without one and says where to look). Throws qf::Error when the tokenizer has more
// tokens than `vocab_size`, the model's embedding rows, which its ids would index past.
std::unique_ptr<Tokenizer> OpenModelTokenizer(const std::filesystem::path& model_dir,
                                              const std::filesystem::path& path,
                                              int64_t vocab_size);

}  // namespace qf
