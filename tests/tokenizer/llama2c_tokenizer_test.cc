// llama2.c tokenizer.bin (run.c's encode) against SentencePiece itself on the real Llama 2 vocab
// (shared/models/llama2-tokenizer holds both files of the same vocabulary), plus the tiny
// stories260K vocabulary and malformed files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "quantforge/error.h"
#include "quantforge/tokenizer.h"

namespace qf {
namespace {

const std::filesystem::path kShared(QF_SHARED_DIR);
const std::filesystem::path kLlama2 = kShared / "models/llama2-tokenizer";

#define SKIP_IF_MISSING(path)                                                        \
  if (!std::filesystem::exists(path)) {                                              \
    GTEST_SKIP() << (path) << " not found (set QF_SHARED_DIR to the shared folder)"; \
  }

TEST(SentencePiece, Llama2KnownEncoding) {
  SKIP_IF_MISSING(kLlama2 / "tokenizer.model");
  const auto sp = LoadSentencePieceTokenizer(kLlama2 / "tokenizer.model");
  // SOURCE.md: python sentencepiece 0.1.97 gives these ids (no BOS).
  EXPECT_EQ(sp->Encode("Once upon a time"), (std::vector<int32_t>{9038, 2501, 263, 931}));
  EXPECT_EQ(sp->BosId(), 1);
  EXPECT_EQ(sp->VocabSize(), 32000);
}

TEST(Llama2c, AgreesWithSentencePieceOnLlama2Vocab) {
  SKIP_IF_MISSING(kLlama2 / "tokenizer.bin");
  const auto bin = LoadLlama2cTokenizer(kLlama2 / "tokenizer.bin");
  const auto sp = LoadSentencePieceTokenizer(kLlama2 / "tokenizer.model");
  EXPECT_EQ(bin->VocabSize(), 32000);
  EXPECT_EQ(bin->Encode("Once upon a time"), (std::vector<int32_t>{9038, 2501, 263, 931}));
  const char* sentences[] = {
      "Hello world",
      "The quick brown fox jumps over the lazy dog.",
      "Lily's mom said, \"Let's go to the park!\"",
      "Numbers: 3.14159, 2024 and 1,000,000.",
      "Unicode: café, naïve, Zürich, 東京 and an emoji \xF0\x9F\x98\x80.",  // byte fallback
      "Tabs\tand\nnew lines\n\nkeep going",
      " = Valkyria Chronicles III = \n",
  };
  for (const char* s : sentences) {
    EXPECT_EQ(bin->Encode(s), sp->Encode(s)) << s;
  }
  EXPECT_TRUE(bin->Encode("").empty());
}

TEST(Llama2c, Stories260KVocab) {
  SKIP_IF_MISSING(kShared / "models/stories260K/tok512.bin");
  const auto tok = LoadLlama2cTokenizer(kShared / "models/stories260K/tok512.bin");
  EXPECT_EQ(tok->VocabSize(), 512);
  EXPECT_EQ(tok->BosId(), 1);
  // The first tokens of the model's greedy story (reference/greedy_t0_256.json token_ids[1..12])
  // decode to this text; run.c's encode gives the same ids back.
  EXPECT_EQ(tok->Encode("Once upon a time, there was a little girl"),
            (std::vector<int32_t>{403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421}));
  // '\n' is not a piece: byte fallback gives <0x0A> = 10 + 3.
  const std::vector<int32_t> ids = tok->Encode("a\nb");
  EXPECT_NE(std::find(ids.begin(), ids.end(), 13), ids.end());
}

TEST(Llama2c, RefusesMalformedFiles) {
  const auto dir = std::filesystem::temp_directory_path() / "qf_tok_test";
  std::filesystem::create_directories(dir);
  const auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir / name, std::ios::binary) << bytes;
    return dir / name;
  };
  EXPECT_THROW(LoadLlama2cTokenizer(write("empty.bin", "")), Error);
  // max_token_length 16, then a piece claiming 100 bytes.
  std::string bad(4, '\0');
  bad[0] = 16;
  bad += std::string(4, '\0') + std::string("\x64\0\0\0", 4) + "ab";
  try {
    LoadLlama2cTokenizer(write("bad.bin", bad));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("length 100"), std::string::npos) << e.what();
  }
  EXPECT_THROW(LoadSentencePieceTokenizer(write("bad.model", "not a model")), Error);
  EXPECT_THROW(FindTokenizer(dir), Error);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qf
