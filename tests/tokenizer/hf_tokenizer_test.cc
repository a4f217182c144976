// tokenizer.json BPE on the hand-made files of tests/data/tokenizer (see its README). Byte-level
// files: a byte's id is its value; merges (rank: piece = id) are
//   0: t' = 256, 1: he = 257, 2: Ġt = 258, 3: Ġc = 259, 4: at = 260, 5: Ġcat = 261,
//   6: the = 262, 7: 's = 263, 8: 34 = 264.
// Llama 2 style file: <0xXX> = 3 + byte, ▁ = 259, h = 261, a = 264, ▁the = 267, at = 269,
// ▁cat = 270 (merges ▁t, he, ▁the, ▁c, at, ▁cat in that rank order).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "quantforge/error.h"
#include "quantforge/tokenizer.h"

namespace qf {
namespace {

const std::filesystem::path kData = std::filesystem::path(QF_TEST_DATA_DIR) / "tokenizer";
using Ids = std::vector<int32_t>;

TEST(HfByteLevel, Gpt2Style) {
  const auto tok = LoadTokenizerFile(kData / "gpt2_bytelevel.json");
  // "the": he (rank 1) then t+he (6). " cat": Ġc (3), at (4), Ġc+at (5). " sat": only at (4).
  EXPECT_EQ(tok->Encode("the cat sat"), (Ids{262, 261, ' ', 's', 260}));
  // The regex isolates "'s", so the rank-0 merge t' never applies across it.
  EXPECT_EQ(tok->Encode("it's"), (Ids{'i', 't', 263}));
  // " ?\p{N}+" keeps 12345 whole: 3+4 merges.
  EXPECT_EQ(tok->Encode("12345"), (Ids{'1', '2', 264, '5'}));
  // é = C3 A9: both bytes are printable Latin-1, ids = byte values.
  EXPECT_EQ(tok->Encode("\xC3\xA9"), (Ids{0xC3, 0xA9}));
  // Added special tokens are matched in the raw text.
  EXPECT_EQ(tok->Encode("a<|endoftext|>b"), (Ids{'a', 300, 'b'}));
  EXPECT_EQ(tok->Encode("\n\n"), (Ids{'\n', '\n'}));
  EXPECT_FALSE(tok->BosId().has_value());
  EXPECT_EQ(tok->VocabSize(), 302);
}

TEST(HfByteLevel, Llama3Style) {
  const auto tok = LoadTokenizerFile(kData / "llama3_split.json");
  EXPECT_EQ(tok->Encode("the cat"), (Ids{262, 261}));
  // \p{N}{1,3} splits 123|45, so the 3+4 merge cannot apply.
  EXPECT_EQ(tok->Encode("12345"), (Ids{'1', '2', '3', '4', '5'}));
  EXPECT_EQ(tok->Encode("it's"), (Ids{'i', 't', 263}));
  EXPECT_EQ(tok->BosId(), 301);
}

TEST(HfSentencePieceBpe, Llama2Style) {
  const auto tok = LoadTokenizerFile(kData / "llama2_sp_bpe.json");
  // "▁the▁cat": ▁t, he, ▁the, ▁c, at, ▁cat.
  EXPECT_EQ(tok->Encode("the cat"), (Ids{267, 270}));
  // é is no piece: byte fallback C3 A9 -> 3 + 0xC3, 3 + 0xA9.
  EXPECT_EQ(tok->Encode("the \xC3\xA9"), (Ids{267, 259, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(tok->Encode("hat"), (Ids{259, 261, 269}));
  EXPECT_EQ(tok->Encode("x"), (Ids{259, 3 + 'x'}));
  EXPECT_EQ(tok->Encode("a</s>"), (Ids{259, 264, 2}));
  EXPECT_EQ(tok->BosId(), 1);
}

TEST(HfTokenizer, FindTokenizerPrefersTokenizerJson) {
  const auto dir = std::filesystem::temp_directory_path() / "qf_hf_tok_test";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(kData / "llama3_split.json", dir / "tokenizer.json",
                             std::filesystem::copy_options::overwrite_existing);
  EXPECT_EQ(FindTokenizer(dir)->BosId(), 301);
  std::filesystem::remove_all(dir);
}

TEST(HfTokenizer, RefusesUnsupported) {
  const auto dir = std::filesystem::temp_directory_path() / "qf_hf_tok_bad";
  std::filesystem::create_directories(dir);
  const auto write = [&](const std::string& json) {
    std::ofstream(dir / "t.json") << json;
    return dir / "t.json";
  };
  try {
    LoadHfTokenizer(write(R"({"model": {"type": "WordPiece", "vocab": {}}})"));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("WordPiece"), std::string::npos) << e.what();
  }
  try {
    LoadHfTokenizer(write(R"({"model": {"type": "BPE", "vocab": {}, "merges": []},
                              "pre_tokenizer": {"type": "BertPreTokenizer"}})"));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("BertPreTokenizer"), std::string::npos) << e.what();
  }
  EXPECT_THROW(LoadHfTokenizer(write("{")), Error);
  EXPECT_THROW(LoadHfTokenizer(write(R"({"nomodel": 1})")), Error);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qf
