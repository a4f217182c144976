// Evaluation data loading: plain text, JSONL text, JSONL input_ids, and the errors.
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "quantforge/error.h"
#include "quantforge/eval.h"

namespace qf {
namespace {

const std::filesystem::path kTok =
    std::filesystem::path(QF_SHARED_DIR) / "models/stories260K/tok512.bin";

class EvalDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // One directory per process and test: ctest runs the tests of this fixture in parallel
    // processes, which must not remove each other's files.
    dir_ = std::filesystem::temp_directory_path() /
           ("qf_eval_data_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path Write(const std::string& name, const std::string& content) {
    std::ofstream(dir_ / name, std::ios::binary) << content;
    return dir_ / name;
  }
  std::string ErrorOf(const std::filesystem::path& path, const Tokenizer* tok) {
    try {
      LoadEvalData(path, tok);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  std::filesystem::path dir_;
};

TEST_F(EvalDataTest, InputIdsNeedNoTokenizer) {
  const EvalData data = LoadEvalData(
      Write("ids.jsonl", "{\"input_ids\": [1, 2, 3]}\n\n{\"input_ids\": [4]}\n"), nullptr);
  EXPECT_EQ(data.format, EvalDataFormat::kJsonlInputIds);
  EXPECT_EQ(data.tokens, (std::vector<int32_t>{1, 2, 3, 4}));
  EXPECT_EQ(data.num_documents, 2);
}

TEST_F(EvalDataTest, TextAndJsonlTextTokenizeAlike) {
  if (!std::filesystem::exists(kTok)) GTEST_SKIP() << kTok << " not found";
  const auto tok = LoadTokenizerFile(kTok);
  const EvalData text = LoadEvalData(Write("a.txt", "Once upon a time"), tok.get());
  EXPECT_EQ(text.format, EvalDataFormat::kText);
  EXPECT_EQ(text.tokens, tok->Encode("Once upon a time"));
  const EvalData jsonl = LoadEvalData(
      Write("a.jsonl", "{\"text\": \"Once upon\"}\n{\"text\": \"a time\"}\n"), tok.get());
  EXPECT_EQ(jsonl.format, EvalDataFormat::kJsonlText);
  std::vector<int32_t> expected = tok->Encode("Once upon");
  const std::vector<int32_t> second = tok->Encode("a time");
  expected.insert(expected.end(), second.begin(), second.end());
  EXPECT_EQ(jsonl.tokens, expected);
}

TEST_F(EvalDataTest, Errors) {
  EXPECT_NE(ErrorOf(Write("t.txt", "hello"), nullptr).find("needs a tokenizer"), std::string::npos);
  EXPECT_NE(ErrorOf(Write("e.jsonl", "\n\n"), nullptr).find("no tokens"), std::string::npos);
  EXPECT_NE(
      ErrorOf(Write("bad.jsonl", "{\"input_ids\": [1]}\n{oops\n"), nullptr).find("bad.jsonl:2"),
      std::string::npos);
  EXPECT_NE(ErrorOf(Write("neg.jsonl", "{\"input_ids\": [1, -5]}\n"), nullptr).find("input_ids[1]"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Write("x.jsonl", "{\"foo\": 1}\n"), nullptr).find("neither"),
            std::string::npos);
  EXPECT_NE(ErrorOf(dir_ / "missing.txt", nullptr).find("cannot open"), std::string::npos);
  if (std::filesystem::exists(kTok)) {
    const auto tok = LoadTokenizerFile(kTok);
    EXPECT_NE(ErrorOf(Write("empty.txt", ""), tok.get()).find("no tokens"), std::string::npos);
    EXPECT_NE(ErrorOf(Write("mix.jsonl", "{\"input_ids\": [1]}\n{\"text\": \"a\"}\n"), tok.get())
                  .find("mixes"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace qf
