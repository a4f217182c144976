// quantize --calib on stories260K with a wikitext prefix: W4A4 NVFP4 + FP8 KV and W8A8 FP8
// exports carry input_scale / k_scale / v_scale from the observed activation max (unified over
// fused groups), the independent checker accepts them, the amax equals a brute-force max over
// the captured activations and the whole-model observer's (the run is layer by layer), the bytes
// do not depend on the thread count, and bad calibration inputs are refused with nothing written.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "quantforge/checkpoint.h"
#include "quantforge/error.h"
#include "quantforge/eval.h"
#include "quantforge/model.h"
#include "quantforge/pipeline.h"
#include "quantforge/tokenizer.h"
#include "src/pipeline/calibration.h"
#include "tests/pipeline/test_checkpoints.h"

namespace qf {
namespace {

const std::filesystem::path kShared = QF_SHARED_DIR;
const std::filesystem::path kModel = kShared / "models/stories260K/hf";
const std::filesystem::path kTokenizer = kShared / "models/stories260K/tok512.bin";
const std::filesystem::path kWiki = kShared / "data/wikitext-2-test/wiki.test.raw";
constexpr int64_t kSamples = 4;
constexpr int64_t kSeqLen = 64;

class CalibrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kModel / "model.safetensors") ||
        !std::filesystem::exists(kTokenizer) || !std::filesystem::exists(kWiki)) {
      GTEST_SKIP() << "stories260K or wikitext-2 not found under " << kShared;
    }
    root_ = testing::FreshDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    // A prefix of wikitext (cut at a line end) keeps tokenization fast.
    const std::string wiki = testing::ReadText(kWiki);
    data_ = root_ / "wiki.txt";
    std::ofstream(data_, std::ios::binary) << wiki.substr(0, wiki.find('\n', 16384) + 1);
  }
  void TearDown() override {
    if (!root_.empty()) std::filesystem::remove_all(root_);
  }

  QuantizeOptions Options(const std::string& recipe, const std::string& out = "out") const {
    QuantizeOptions o;
    o.model = kModel;
    o.recipe = recipe;
    o.out = root_ / out;
    o.calib_data = data_;
    o.tokenizer = kTokenizer;
    o.calib_samples = kSamples;
    o.calib_seq_len = kSeqLen;
    return o;
  }

  std::map<std::string, float> Amax() const {
    ThreadPool pool(2);
    return Calibrate(kModel, {.data = data_, .tokenizer = kTokenizer, .samples = kSamples,
                              .seq_len = kSeqLen}, &pool).amax;
  }

  std::filesystem::path root_;
  std::filesystem::path data_;
};

TEST_F(CalibrationTest, Nvfp4W4A4WithFp8KvCache) {
  ThreadPool pool(2);
  const QuantizeSummary s = RunQuantize(Options("NVFP4_DEFAULT_CFG+FP8_KV_CFG"), &pool);
  EXPECT_EQ(s.quant_algo, "NVFP4");
  const auto amax = Amax();
  const Checkpoint out = Checkpoint::Open(root_ / "out");
  const nlohmann::json q =
      nlohmann::json::parse(testing::ReadText(root_ / "out/hf_quant_config.json"))["quantization"];
  EXPECT_EQ(q["quant_algo"], "NVFP4");
  EXPECT_EQ(q["kv_cache_quant_algo"], "FP8");
  int quantized = 0;
  for (int layer = 0; layer < 5; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer);
    // q/k/v read one input, gate/up another: one scale each, the group's amax / (6 * 448).
    for (const auto& group : std::vector<std::vector<std::string>>{
             {".self_attn.q_proj", ".self_attn.k_proj", ".self_attn.v_proj"},
             {".self_attn.o_proj"},
             {".mlp.gate_proj", ".mlp.up_proj"}}) {
      float group_amax = 0.0f;
      for (const std::string& m : group) group_amax = std::max(group_amax, amax.at(p + m + ".input_quantizer"));
      ASSERT_GT(group_amax, 0.0f);
      for (const std::string& m : group) {
        EXPECT_EQ(testing::ScalarF32(out, p + m + ".input_scale"), group_amax / 2688.0f) << p + m;
        ++quantized;
      }
    }
    // down_proj's in = 172 is no multiple of 16: unquantized, so no input_scale.
    EXPECT_EQ(out.Find(p + ".mlp.down_proj.input_scale"), nullptr);
    EXPECT_EQ(testing::ScalarF32(out, p + ".self_attn.k_proj.k_scale"),
              amax.at(p + ".self_attn.k_bmm_quantizer") / 448.0f);
    EXPECT_EQ(testing::ScalarF32(out, p + ".self_attn.v_proj.v_scale"),
              amax.at(p + ".self_attn.v_bmm_quantizer") / 448.0f);
  }
  EXPECT_EQ(quantized, 30);
  const std::string cmd = "/usr/bin/python3 " + std::string(QF_SOURCE_DIR) +
                          "/tests/tools/check_export.py " + kModel.string() + " " +
                          (root_ / "out").string() + " > " + (root_ / "check.txt").string() +
                          " 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << testing::ReadText(root_ / "check.txt");
}

TEST_F(CalibrationTest, Fp8W8A8HasInputScales) {
  ThreadPool pool(2);
  const QuantizeSummary s = RunQuantize(Options("FP8_DEFAULT_CFG"), &pool);
  EXPECT_EQ(s.quant_algo, "FP8");
  const auto amax = Amax();
  const Checkpoint out = Checkpoint::Open(root_ / "out");
  // FP8 per-tensor has no block constraint: down_proj is quantized too.
  const std::string m = "model.layers.3.mlp.down_proj";
  EXPECT_EQ(testing::ScalarF32(out, m + ".input_scale"), amax.at(m + ".input_quantizer") / 448.0f);
  const nlohmann::json q =
      nlohmann::json::parse(testing::ReadText(root_ / "out/hf_quant_config.json"))["quantization"];
  EXPECT_EQ(q["quant_algo"], "FP8");
  EXPECT_TRUE(q["kv_cache_quant_algo"].is_null());
}

// Captures down_proj's input of layer 2 and takes the max by a plain loop.
class CaptureDownInput final : public ForwardHooks {
 public:
  void OnActivation(const ActivationSite& site, float* x, int64_t rows, int64_t cols,
                    int64_t ld) override {
    if (site.kind != ActivationKind::kLinearInput || site.modules.empty() ||
        site.modules[0] != "model.layers.2.mlp.down_proj") {
      return;
    }
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) max = std::max(max, std::fabs(x[r * ld + c]));
      ++seen_rows;
    }
  }
  float max = 0.0f;
  int64_t seen_rows = 0;
};

TEST_F(CalibrationTest, AmaxIsTheBruteForceMax) {
  ThreadPool pool(1);
  const auto tokenizer = LoadTokenizerFile(kTokenizer);
  const EvalData data = LoadEvalData(data_, tokenizer.get());
  const auto sequences =
      CalibrationSequences(data.tokens, tokenizer->BosId(), kSamples, kSeqLen, 512, "x");
  ASSERT_EQ(sequences.size(), static_cast<size_t>(kSamples));
  const auto model = Model::LoadDir(kModel, &pool);
  CaptureDownInput capture;
  std::vector<float> hidden;
  for (const auto& s : sequences) {  // one sequence per forward: a different batching
    model->Forward(TokenBatch{{s}}, hidden, &capture);
  }
  EXPECT_EQ(capture.seen_rows, kSamples * kSeqLen);
  const float calibrated = Amax().at("model.layers.2.mlp.down_proj.input_quantizer");
  uint32_t a, b;
  std::memcpy(&a, &capture.max, 4);
  std::memcpy(&b, &calibrated, 4);
  EXPECT_EQ(a, b) << std::hex << "brute force 0x" << a << " calibrated 0x" << b;
}

// Calibrate runs the model layer by layer; a whole-model Forward over the same 4096-token
// batches with the engine's AmaxObserver gives bit-identical amax for every quantizer. Enough
// sequences for two batches (64 sequences of 64 tokens each), and progress in order.
TEST_F(CalibrationTest, LayerByLayerEqualsWholeModelAndReportsProgress) {
  constexpr int64_t kManySamples = 80;
  ThreadPool pool(2);
  std::vector<CalibrationProgress> progress;
  const CalibrationResult result =
      Calibrate(kModel,
                {.data = data_, .tokenizer = kTokenizer, .samples = kManySamples,
                 .seq_len = kSeqLen, .progress = [&](const CalibrationProgress& p) {
                   progress.push_back(p);
                 }},
                &pool);
  const auto tokenizer = LoadTokenizerFile(kTokenizer);
  const EvalData data = LoadEvalData(data_, tokenizer.get());
  const auto sequences =
      CalibrationSequences(data.tokens, tokenizer->BosId(), kManySamples, kSeqLen, 512, "x");
  ASSERT_EQ(result.sequences, static_cast<int64_t>(sequences.size()));
  ASSERT_GT(sequences.size(), 64u) << "the wikitext prefix is too short for two batches";
  const auto model = Model::LoadDir(kModel, &pool);
  AmaxObserver whole;
  std::vector<float> hidden;
  for (size_t first = 0; first < sequences.size(); first += 64) {
    TokenBatch batch;
    for (size_t i = first; i < std::min(sequences.size(), first + 64); ++i) {
      batch.sequences.emplace_back(sequences[i]);
    }
    model->Forward(batch, hidden, &whole);
  }
  ASSERT_EQ(result.amax.size(), whole.Amax().size());
  for (const auto& [name, amax] : whole.Amax()) {
    ASSERT_TRUE(result.amax.count(name)) << name;
    uint32_t a, b;
    std::memcpy(&a, &amax, 4);
    std::memcpy(&b, &result.amax.at(name), 4);
    EXPECT_EQ(a, b) << name << std::hex << ": whole model 0x" << a << " layer by layer 0x" << b;
  }
  // Two batches per layer, then the final report.
  const int64_t layers = model->config().num_hidden_layers;
  ASSERT_EQ(progress.size(), static_cast<size_t>(2 * layers + 1));
  for (size_t i = 0; i + 1 < progress.size(); ++i) {
    EXPECT_EQ(progress[i].layer, static_cast<int64_t>(i / 2));
    EXPECT_EQ(progress[i].tokens_done, i % 2 == 0 ? 64 * kSeqLen : result.sequences * kSeqLen);
    EXPECT_FALSE(progress[i].finished);
    if (i > 0) {
      EXPECT_GE(progress[i].seconds, progress[i - 1].seconds);
    }
  }
  EXPECT_TRUE(progress.back().finished);
  EXPECT_EQ(progress.back().num_tokens, result.sequences * kSeqLen);
  EXPECT_EQ(progress.back().num_layers, layers);
  EXPECT_GT(progress.back().estimated_bytes, 4u * progress.back().num_tokens * 64);
}

// lm_head's input (the final norm's output) is observed only when asked, and then equals what
// the whole model's Logits shows its hooks.
TEST_F(CalibrationTest, LmHeadInputOnlyWhenAsked) {
  ThreadPool pool(2);
  const CalibrationOptions options{
      .data = data_, .tokenizer = kTokenizer, .samples = kSamples, .seq_len = kSeqLen};
  EXPECT_FALSE(Calibrate(kModel, options, &pool).amax.count("lm_head.input_quantizer"));
  CalibrationOptions with_head = options;
  with_head.lm_head_input = true;
  const std::map<std::string, float> amax = Calibrate(kModel, with_head, &pool).amax;
  ASSERT_TRUE(amax.count("lm_head.input_quantizer"));

  const auto tokenizer = LoadTokenizerFile(kTokenizer);
  const EvalData data = LoadEvalData(data_, tokenizer.get());
  const auto sequences =
      CalibrationSequences(data.tokens, tokenizer->BosId(), kSamples, kSeqLen, 512, "x");
  const auto model = Model::LoadDir(kModel, &pool);
  TokenBatch batch;
  for (const auto& seq : sequences) batch.sequences.emplace_back(seq);
  std::vector<float> hidden;
  AmaxObserver whole;
  model->Forward(batch, hidden, &whole);
  std::vector<float> logits(static_cast<size_t>(batch.NumTokens() * model->config().vocab_size));
  model->Logits(hidden.data(), batch.NumTokens(), logits.data(), &whole);
  EXPECT_EQ(amax, whole.Amax());
}

TEST_F(CalibrationTest, SequencesAreCutConsecutivelyAndLongOnesRefused) {
  std::vector<int32_t> stream(100);
  for (int i = 0; i < 100; ++i) stream[i] = i;
  const auto s = CalibrationSequences(stream, 1, 128, 30, 30, "x");
  ASSERT_EQ(s.size(), 3u);  // 100 / 29 whole sequences
  EXPECT_EQ(s[1].size(), 30u);
  EXPECT_EQ(s[1][0], 1);   // the BOS
  EXPECT_EQ(s[1][1], 29);  // then the stream where sequence 0 stopped
  EXPECT_EQ(s, CalibrationSequences(stream, 1, 128, 30, 30, "x"));
  // 0 means min(512, context): here the context, 30.
  EXPECT_EQ(CalibrationSequences(stream, 1, 128, 0, 30, "x"), s);
  // Longer than the context: refused, naming the data, as eval refuses it.
  try {
    CalibrationSequences(stream, 1, 128, 40, 30, "calib.txt");
    ADD_FAILURE() << "seq_len 40 > context 30 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_position_embeddings 30"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("calib.txt"), std::string::npos) << e.what();
  }
  EXPECT_THROW(CalibrationSequences(stream, std::nullopt, 1, 101, 0, "x"), Error);  // too short
}

TEST_F(CalibrationTest, SameBytesForOneAndTwoThreads) {
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    RunQuantize(Options("NVFP4_DEFAULT_CFG+FP8_KV_CFG", "t" + std::to_string(threads)), &pool);
  }
  EXPECT_EQ(testing::ReadTree(root_ / "t1"), testing::ReadTree(root_ / "t2"));
}

TEST_F(CalibrationTest, BadCalibrationInputsAreRefused) {
  QuantizeOptions o = Options("NVFP4_DEFAULT_CFG");
  o.calib_data = root_ / "missing.txt";
  testing::ExpectQuantizeRefused(o, "not found");

  std::ofstream(root_ / "empty.txt").flush();
  o.calib_data = root_ / "empty.txt";
  testing::ExpectQuantizeRefused(o, "empty.txt");

  std::ofstream(root_ / "short.txt") << "Once upon a time.";
  o.calib_data = root_ / "short.txt";
  testing::ExpectQuantizeRefused(o, "too short");

  o = Options("NVFP4_DEFAULT_CFG");
  o.tokenizer.clear();  // stories260K/hf holds no tokenizer
  testing::ExpectQuantizeRefused(o, "--tokenizer");

  o = Options("NVFP4_DEFAULT_CFG");
  o.calib_data.clear();
  testing::ExpectQuantizeRefused(o, "pass --calib FILE or --weight-only");
}

}  // namespace
}  // namespace qf
