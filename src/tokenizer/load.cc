// Choosing a tokenizer: by file name, or by what a model directory holds.
#include <optional>

#include "quantforge/error.h"
#include "quantforge/tokenizer.h"

namespace qf {
namespace {

// The tokenizer file a model directory holds, in order of preference.
std::optional<std::filesystem::path> TokenizerFileIn(const std::filesystem::path& model_dir) {
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer.bin"}) {
    const auto path = model_dir / name;
    if (std::filesystem::is_regular_file(path)) return path;
  }
  return std::nullopt;
}

}  // namespace

std::unique_ptr<Tokenizer> LoadTokenizerFile(const std::filesystem::path& path) {
  if (!std::filesystem::is_regular_file(path))
    throw Error("tokenizer file not found", {path.string()});
  const std::string ext = path.extension().string();
  if (ext == ".json") return LoadHfTokenizer(path);
  if (ext == ".model") return LoadSentencePieceTokenizer(path);
  if (ext == ".bin") return LoadLlama2cTokenizer(path);
  throw Error("unknown tokenizer kind (expected tokenizer.json, *.model or llama2.c *.bin)",
              {path.string()});
}

std::unique_ptr<Tokenizer> FindTokenizer(const std::filesystem::path& model_dir) {
  if (const auto path = TokenizerFileIn(model_dir)) return LoadTokenizerFile(*path);
  throw Error(
      "no tokenizer in the model directory (looked for tokenizer.json, tokenizer.model, "
      "tokenizer.bin); pass --tokenizer FILE or use pre-tokenized JSONL ({\"input_ids\": [...]})",
      {model_dir.string()});
}

std::unique_ptr<Tokenizer> OpenModelTokenizer(const std::filesystem::path& model_dir,
                                              const std::filesystem::path& path,
                                              int64_t vocab_size) {
  std::unique_ptr<Tokenizer> tokenizer;
  if (!path.empty()) {
    tokenizer = LoadTokenizerFile(path);
  } else if (const auto found = TokenizerFileIn(model_dir)) {
    tokenizer = LoadTokenizerFile(*found);
  }
  if (tokenizer && tokenizer->VocabSize() > vocab_size) {
    throw Error(tokenizer->Describe() + " has " + std::to_string(tokenizer->VocabSize()) +
                " tokens, more than the model's vocab_size " + std::to_string(vocab_size));
  }
  return tokenizer;
}

}  // namespace qf
