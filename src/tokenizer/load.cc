// Choosing a tokenizer: by file name, or by what a model directory holds.
#include "quantforge/error.h"
#include "quantforge/tokenizer.h"

namespace qf {

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
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer.bin"}) {
    const auto path = model_dir / name;
    if (std::filesystem::is_regular_file(path)) return LoadTokenizerFile(path);
  }
  throw Error(
      "no tokenizer in the model directory (looked for tokenizer.json, tokenizer.model, "
      "tokenizer.bin); pass --tokenizer FILE or use pre-tokenized JSONL ({\"input_ids\": [...]})",
      {model_dir.string()});
}

}  // namespace qf
