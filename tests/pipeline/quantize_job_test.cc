// End-to-end quantize job on small written checkpoints: layouts, shared fused scales,
// determinism across thread counts, and every bad input refused with nothing left behind.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "quantforge/checkpoint.h"
#include "quantforge/error.h"
#include "quantforge/formats.h"
#include "quantforge/pipeline.h"
#include "quantforge/quantize.h"
#include "tests/pipeline/test_checkpoints.h"

namespace qf {
namespace {

using testing::FreshDir;
using testing::ListDir;
using testing::ReadTree;
using testing::TinyLlamaTensors;
using testing::WriteCheckpoint;

class QuantizeJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = FreshDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    model_ = root_ / "model";
    WriteCheckpoint(model_, TinyLlamaTensors(7));
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  QuantizeOptions Options(const std::string& recipe, const std::string& out = "out") {
    QuantizeOptions o;
    o.model = model_;
    o.recipe = recipe;
    o.out = root_ / out;
    return o;
  }

  std::filesystem::path root_;
  std::filesystem::path model_;
};

TEST_F(QuantizeJobTest, WeightOnlyNvfp4LayoutAndConfig) {
  ThreadPool pool(2);
  const QuantizeSummary s = RunQuantize(Options("W4A16_NVFP4_CFG"), &pool);
  EXPECT_EQ(s.quant_algo, "W4A16_NVFP4");
  const Checkpoint out = Checkpoint::Open(root_ / "out");
  const std::string q = "model.layers.0.self_attn.q_proj.";
  ASSERT_NE(out.Find(q + "weight"), nullptr);
  EXPECT_EQ(out.Find(q + "weight")->dtype, DType::kU8);
  EXPECT_EQ(out.Find(q + "weight")->shape, (Shape{32, 16}));
  EXPECT_EQ(out.Find(q + "weight_scale")->dtype, DType::kF8E4M3);
  EXPECT_EQ(out.Find(q + "weight_scale")->shape, (Shape{32, 2}));
  EXPECT_EQ(out.Find(q + "weight_scale_2")->shape, Shape{});
  EXPECT_EQ(out.Find(q + "input_scale"), nullptr);  // weight-only
  // Unquantized tensors pass through unchanged.
  EXPECT_EQ(out.Find("lm_head.weight")->dtype, DType::kBF16);
  EXPECT_EQ(out.Find("model.embed_tokens.weight")->dtype, DType::kBF16);
  // Fused siblings share one global scale: the max over the group.
  const std::string a = "model.layers.0.self_attn.";
  const float ws2 = testing::ScalarF32(out, a + "q_proj.weight_scale_2");
  EXPECT_EQ(testing::ScalarF32(out, a + "k_proj.weight_scale_2"), ws2);
  EXPECT_EQ(testing::ScalarF32(out, a + "v_proj.weight_scale_2"), ws2);
  const std::string m = "model.layers.0.mlp.";
  EXPECT_EQ(testing::ScalarF32(out, m + "gate_proj.weight_scale_2"),
            testing::ScalarF32(out, m + "up_proj.weight_scale_2"));
  // The shared scale is amax(q, k, v) / 2688 and q's bytes equal a direct quantization with it.
  const Checkpoint in = Checkpoint::Open(model_);
  float group_amax = 0;
  for (const char* p : {"q_proj", "k_proj", "v_proj"}) {
    group_amax = std::max(group_amax, TensorAmax(in.View(*in.Find(a + p + ".weight"))));
  }
  EXPECT_EQ(ws2, group_amax / 2688.0f);
  Nvfp4Options o;
  o.global_amax = group_amax;
  const Nvfp4Tensor direct = QuantizeNvfp4(in.View(*in.Find(q + "weight")), o);
  const TensorView packed = out.View(*out.Find(q + "weight"));
  ASSERT_EQ(packed.data.size(), direct.codes.size());
  EXPECT_EQ(std::memcmp(packed.data.data(), direct.codes.data(), direct.codes.size()), 0);

  const auto config = nlohmann::json::parse(testing::ReadText(root_ / "out" / "config.json"));
  EXPECT_EQ(config["quantization_config"]["quant_method"], "modelopt");
  EXPECT_EQ(config["architectures"][0], "LlamaForCausalLM");  // the rest is kept
  const auto hf = nlohmann::json::parse(testing::ReadText(root_ / "out" / "hf_quant_config.json"));
  EXPECT_EQ(hf["quantization"]["quant_algo"], "W4A16_NVFP4");
  EXPECT_EQ(hf["quantization"]["group_size"], 16);
  // 7 NVFP4 projections (7680 elements: 4.5 bits each plus one 32-bit global scale per tensor)
  // and the BF16 lm_head (2048 elements x 16 bits) over 9728 linear-weight elements.
  EXPECT_DOUBLE_EQ(s.weight_bpe, (4.5 * 7680 + 7 * 32 + 16.0 * 2048) / 9728);
}

TEST_F(QuantizeJobTest, DeterministicAcrossThreads) {
  std::map<std::string, std::string> first;
  for (size_t threads : {1u, 2u, 3u}) {
    QuantizeOptions o = Options("NVFP4_W4A4_WEIGHT_MSE_FP8_SWEEP_CFG",
                                std::string("t").append(std::to_string(threads)));
    o.weight_only = true;
    ThreadPool pool(threads);
    RunQuantize(o, &pool);
    const auto tree = ReadTree(o.out);
    if (first.empty()) {
      first = tree;
    } else {
      EXPECT_EQ(tree, first) << threads << " threads";
    }
  }
}

TEST_F(QuantizeJobTest, NoFsyncWritesTheSameBytes) {
  RunQuantize(Options("W4A16_NVFP4_CFG", "synced"), nullptr);
  QuantizeOptions o = Options("W4A16_NVFP4_CFG", "unsynced");
  o.sync_to_disk = false;
  RunQuantize(o, nullptr);
  EXPECT_EQ(ReadTree(root_ / "unsynced"), ReadTree(root_ / "synced"));
}

TEST_F(QuantizeJobTest, CompressedTensorsLayout) {
  QuantizeOptions o = Options("W4A16_NVFP4_CFG");
  o.format = ExportFormat::kCompressedTensors;
  RunQuantize(o, nullptr);
  const Checkpoint out = Checkpoint::Open(o.out);
  const std::string q = "model.layers.0.self_attn.q_proj.";
  ASSERT_NE(out.Find(q + "weight_packed"), nullptr);
  ASSERT_NE(out.Find(q + "weight_global_scale"), nullptr);
  EXPECT_EQ(out.Find(q + "weight_global_scale")->shape, (Shape{1}));
  EXPECT_FALSE(std::filesystem::exists(o.out / "hf_quant_config.json"));
  const auto config = nlohmann::json::parse(testing::ReadText(o.out / "config.json"));
  EXPECT_EQ(config["quantization_config"]["quant_method"], "compressed-tensors");
}

TEST_F(QuantizeJobTest, Fp8WeightOnly) {
  QuantizeOptions o = Options("FP8_DEFAULT_CFG");
  o.weight_only = true;
  const QuantizeSummary s = RunQuantize(o, nullptr);
  EXPECT_EQ(s.quant_algo, "FP8_PER_CHANNEL_PER_TOKEN");
  const Checkpoint out = Checkpoint::Open(o.out);
  const TensorInfo* w = out.Find("model.layers.0.mlp.down_proj.weight");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dtype, DType::kF8E4M3);
  // Written per channel in the modelopt layout (export.h ExportedAlgo): vLLM's per-tensor FP8
  // method needs a static input_scale, which a weight-only export has not.
  EXPECT_EQ(out.Find("model.layers.0.mlp.down_proj.weight_scale")->shape, Shape{w->shape[0]});
}

TEST_F(QuantizeJobTest, RecipeNeedingCalibrationIsRefused) {
  testing::ExpectQuantizeRefused(Options("NVFP4_DEFAULT_CFG"), "--weight-only");
  testing::ExpectQuantizeRefused(Options("FP8_DEFAULT_CFG"), "calibration");
}

TEST_F(QuantizeJobTest, ExistingOutputIsRefusedUnlessOverwrite) {
  std::filesystem::create_directories(root_ / "out");
  std::ofstream(root_ / "out" / "keep.txt") << "old";
  testing::ExpectQuantizeRefused(Options("W4A16_NVFP4_CFG"), "exists");
  EXPECT_TRUE(std::filesystem::exists(root_ / "out" / "keep.txt"));
  QuantizeOptions o = Options("W4A16_NVFP4_CFG");
  o.overwrite = true;
  RunQuantize(o, nullptr);
  EXPECT_FALSE(std::filesystem::exists(root_ / "out" / "keep.txt"));
  EXPECT_TRUE(std::filesystem::exists(root_ / "out" / "model.safetensors"));
}

TEST_F(QuantizeJobTest, OutputEqualToInputIsRefused) {
  QuantizeOptions o = Options("W4A16_NVFP4_CFG");
  o.out = model_;
  o.overwrite = true;
  testing::ExpectQuantizeRefused(o, "input checkpoint");
}

TEST_F(QuantizeJobTest, NanWeightIsRefusedOrKeptByPolicy) {
  std::vector<testing::TestTensor> tensors = TinyLlamaTensors(7);
  for (auto& t : tensors) {
    if (t.name == "model.layers.0.self_attn.o_proj.weight") t.values[37] = NAN;
  }
  std::filesystem::remove_all(model_);
  WriteCheckpoint(model_, tensors);
  testing::ExpectQuantizeRefused(Options("W4A16_NVFP4_CFG"), "model.layers.0.self_attn.o_proj.weight");

  QuantizeOptions o = Options("W4A16_NVFP4_CFG");
  o.non_finite = NonFinitePolicy::kKeepUnquantized;
  const QuantizeSummary s = RunQuantize(o, nullptr);
  ASSERT_EQ(s.excluded.size(), 2u);  // lm_head (by the recipe) and o_proj
  const Checkpoint out = Checkpoint::Open(o.out);
  EXPECT_EQ(out.Find("model.layers.0.self_attn.o_proj.weight")->dtype, DType::kBF16);
  const auto hf = nlohmann::json::parse(testing::ReadText(o.out / "hf_quant_config.json"));
  const std::string excluded = hf["quantization"]["exclude_modules"].dump();
  EXPECT_NE(excluded.find("o_proj"), std::string::npos) << excluded;
}

TEST_F(QuantizeJobTest, OddLastDimensionIsLeftUnquantizedAndExcluded) {
  std::vector<testing::TestTensor> tensors = TinyLlamaTensors(7);
  for (auto& t : tensors) {
    if (t.name == "model.layers.0.self_attn.o_proj.weight") {
      t.shape = {32, 40};
      t.values.resize(32 * 40, 0.01f);
    }
  }
  std::filesystem::remove_all(model_);
  WriteCheckpoint(model_, tensors);
  const QuantizeSummary s = RunQuantize(Options("W4A16_NVFP4_CFG"), nullptr);
  bool named = false;
  for (const std::string& e : s.excluded) named |= e.find("o_proj") != std::string::npos;
  EXPECT_TRUE(named);
  EXPECT_NE(SummaryText(s).find("o_proj"), std::string::npos);
  const Checkpoint out = Checkpoint::Open(root_ / "out");
  EXPECT_EQ(out.Find("model.layers.0.self_attn.o_proj.weight")->dtype, DType::kBF16);
  EXPECT_EQ(out.Find("model.layers.0.self_attn.o_proj.weight_scale"), nullptr);
}

TEST_F(QuantizeJobTest, AlreadyQuantizedInputIsRefused) {
  RunQuantize(Options("W4A16_NVFP4_CFG"), nullptr);
  QuantizeOptions o = Options("W4A16_NVFP4_CFG", "again");
  o.model = root_ / "out";
  testing::ExpectQuantizeRefused(o, "already quantized");
}

TEST_F(QuantizeJobTest, TruncatedInputIsRefused) {
  const auto file = model_ / "model.safetensors";
  std::filesystem::resize_file(file, std::filesystem::file_size(file) - 10);
  testing::ExpectQuantizeRefused(Options("W4A16_NVFP4_CFG"), "model.safetensors");
}

TEST_F(QuantizeJobTest, BadRecipeIsRefusedWithItsLine) {
  const auto recipe = root_ / "bad.yaml";
  std::ofstream(recipe) << "quantize:\n  algorithm: max\n  quant_cfg:\n"
                           "    - {quantizer_name: '*', enable: false}\n"
                           "    - {quantizer_name: '*weight_quantizer', enabel: true}\n";
  testing::ExpectQuantizeRefused(Options(recipe.string()), "5");
  testing::ExpectQuantizeRefused(Options("NO_SUCH_PRESET"), "NO_SUCH_PRESET");
}

}  // namespace
}  // namespace qf
