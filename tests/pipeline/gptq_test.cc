// quantize with gptq / local_hessian recipes (issue 5): on a generated one-layer Llama and on
// stories260K, every exported NVFP4 weight equals GptqNvfp4 (or LocalHessianNvfp4) run directly
// on the Hessian of the same calibration sequences, bit for bit; the independent checker accepts
// the exports; the bytes do not depend on the thread count; without --calib the recipes are
// refused with nothing written; the stacked lists and Model Optimizer's presets run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <random>

#include "quantforge/calib.h"
#include "quantforge/checkpoint.h"
#include "quantforge/error.h"
#include "quantforge/eval.h"
#include "quantforge/export.h"
#include "quantforge/model.h"
#include "quantforge/pipeline.h"
#include "quantforge/quantize.h"
#include "quantforge/tokenizer.h"
#include "src/pipeline/calibration.h"
#include "tests/pipeline/test_checkpoints.h"

namespace qf {
namespace {

const std::filesystem::path kShared = QF_SHARED_DIR;
const std::filesystem::path kSource = QF_SOURCE_DIR;
const std::filesystem::path kStories = kShared / "models/stories260K/hf";
const std::filesystem::path kTokenizer = kShared / "models/stories260K/tok512.bin";
const std::filesystem::path kWiki = kShared / "data/wikitext-2-test/wiki.test.raw";

// Weights in `weights` numerics (static NVFP4: the scales GPTQ keeps fixed); NVFP4 inputs too
// when w4a4.
std::string RecipeYaml(const std::string& algorithm, bool w4a4,
                       const std::string& weights = "nvfp4_static") {
  std::string yaml = "imports:\n";
  yaml += "  base_disable_all: configs/ptq/units/base_disable_all\n";
  yaml += "  default_disabled_quantizers: configs/ptq/units/default_disabled_quantizers\n";
  yaml += "  nvfp4: configs/numerics/nvfp4\n";
  if (weights != "nvfp4") yaml += "  " + weights + ": configs/numerics/" + weights + "\n";
  yaml += "algorithm: " + algorithm + "\nquant_cfg:\n  - $import: base_disable_all\n";
  yaml += "  - {quantizer_name: '*weight_quantizer', cfg: {$import: " + weights + "}}\n";
  if (w4a4) yaml += "  - {quantizer_name: '*input_quantizer', cfg: {$import: nvfp4}}\n";
  return yaml + "  - $import: default_disabled_quantizers\n";
}

// The module's fused group ("...self_attn.qkv", "...mlp.gate_up"), or itself.
std::string FusionKey(const std::string& module) {
  const size_t dot = module.rfind('.');
  const std::string parent = module.substr(0, dot);
  const std::string leaf = module.substr(dot + 1);
  if (leaf == "q_proj" || leaf == "k_proj" || leaf == "v_proj") return parent + ".qkv";
  if (leaf == "gate_proj" || leaf == "up_proj") return parent + ".gate_up";
  return module;
}

class GptqPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::FreshDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  // WriteCheckpoint's config lacks what the forward pass needs.
  void MakeTinyConfig() {
    std::ofstream(model_ / "config.json") << R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
  "intermediate_size": 48, "num_hidden_layers": 1, "num_attention_heads": 4,
  "num_key_value_heads": 2, "vocab_size": 64, "max_position_embeddings": 128,
  "rms_norm_eps": 1e-5, "torch_dtype": "bfloat16"
})";
  }

  // A one-layer BF16 Llama and JSONL input_ids calibration data (no tokenizer needed).
  void MakeTiny() {
    model_ = root_ / "tiny";
    testing::WriteCheckpoint(model_, testing::TinyLlamaTensors(7));
    MakeTinyConfig();
    data_ = root_ / "ids.jsonl";
    std::mt19937 rng(11);
    std::ofstream out(data_);
    for (int doc = 0; doc < 6; ++doc) {
      out << "{\"input_ids\": [";
      for (int i = 0; i < 50; ++i) out << (i ? ", " : "") << rng() % 64;
      out << "]}\n";
    }
    tokenizer_.clear();
    samples_ = 5;
    seq_len_ = 48;
  }

  // stories260K with a wikitext prefix; false (the caller skips) when absent.
  bool MakeStories() {
    if (!std::filesystem::exists(kStories / "model.safetensors") ||
        !std::filesystem::exists(kTokenizer) || !std::filesystem::exists(kWiki)) {
      return false;
    }
    model_ = kStories;
    const std::string wiki = testing::ReadText(kWiki);
    data_ = root_ / "wiki.txt";
    std::ofstream(data_, std::ios::binary) << wiki.substr(0, wiki.find('\n', 16384) + 1);
    tokenizer_ = kTokenizer;
    samples_ = 4;
    seq_len_ = 64;
    return true;
  }

  QuantizeOptions Options(const std::string& algorithm, bool w4a4, const std::string& out,
                          const std::string& weights = "nvfp4_static") {
    const std::filesystem::path recipe = root_ / (out + ".yaml");
    std::ofstream(recipe) << RecipeYaml(algorithm, w4a4, weights);
    QuantizeOptions o;
    o.model = model_;
    o.recipe = recipe.string();
    o.out = root_ / out;
    o.calib_data = data_;
    o.tokenizer = tokenizer_;
    o.calib_samples = samples_;
    o.calib_seq_len = seq_len_;
    o.sync_to_disk = false;
    return o;
  }

  // Hessians of every Linear input over the calibration sequences Calibrate cuts, gathered in
  // one run (nothing released). With `sequential`, each layer runs again after its pass with
  // the weights of `exported` (dequantized as the eval reads them), so the next layer sees the
  // quantized layer's output. With `simulate`, the inputs and KV are first fake-quantized as the
  // eval simulates `exported` (W4A4: Model Optimizer feeds GPTQ the input quantizer's output).
  std::unique_ptr<HessianCollector> Hessians(HessianKind kind,
                                             const std::filesystem::path& exported = {},
                                             bool sequential = false, bool simulate = false) const {
    const ModelConfig config = LoadModelConfig(model_);
    std::unique_ptr<Tokenizer> tokenizer;
    if (!tokenizer_.empty()) tokenizer = LoadTokenizerFile(tokenizer_);
    const EvalData data = LoadEvalData(data_, tokenizer.get());
    const std::vector<std::vector<int32_t>> sequences =
        CalibrationSequences(data.tokens, tokenizer ? tokenizer->BosId() : std::nullopt, samples_,
                             seq_len_, config.max_position_embeddings, data_.string());
    TokenBatch batch;
    for (const std::vector<int32_t>& s : sequences) batch.sequences.emplace_back(s);
    const std::unique_ptr<WeightSource> weights = OpenCheckpointWeights(model_);
    auto collector = std::make_unique<HessianCollector>(HessianCollectorOptions{.kind = kind});
    std::optional<QuantizedCheckpoint> quantized;
    if (!exported.empty()) quantized.emplace(OpenQuantizedCheckpoint(exported));
    std::optional<SimulationHooks> simulation;
    if (simulate) simulation.emplace(quantized->scheme);
    HookChain chain(simulation ? static_cast<ForwardHooks*>(&*simulation) : collector.get(),
                    simulation ? collector.get() : nullptr);
    LayerwiseCallbacks callbacks;
    if (sequential) {
      callbacks.rerun_transform = [&](const std::string& name, std::span<float> w, int64_t,
                                      int64_t) {
        if (quantized->scheme.linears.count(name.substr(0, name.size() - 7)) == 0) return;
        const std::optional<TensorView> view = quantized->weights->Find(name);
        ASSERT_TRUE(view.has_value()) << name;
        const std::vector<float> values = ToFloat(*view);
        ASSERT_EQ(values.size(), w.size()) << name;
        std::copy(values.begin(), values.end(), w.begin());
      };
      if (simulation) callbacks.rerun_hooks = &*simulation;
    }
    LayerwiseRunner runner(config, *weights, nullptr);
    runner.Run(batch, &chain, callbacks);
    return collector;
  }

  // Every NVFP4 module of `out` against `reference(module, w, rows, cols, options)` exported the
  // same way; returns the number of modules compared.
  template <typename Reference>
  int CompareWithDirect(const std::filesystem::path& out, const Reference& reference) {
    const Checkpoint original = Checkpoint::Open(model_);
    const Checkpoint exported = Checkpoint::Open(out);
    std::map<std::string, float> group_amax;  // fused siblings share the global amax
    std::vector<std::string> modules;
    for (const TensorInfo& info : original.Tensors()) {
      const std::string& name = info.name;
      if (!name.ends_with("_proj.weight")) continue;
      const std::string module = name.substr(0, name.size() - 7);
      if (exported.Find(module + ".weight_scale_2") == nullptr) continue;  // left unquantized
      modules.push_back(module);
      float& g = group_amax[FusionKey(module)];
      g = std::max(g, TensorAmax(original.View(info)));
    }
    for (const std::string& module : modules) {
      const TensorInfo& info = *original.Find(module + ".weight");
      const int64_t rows = info.shape[0];
      const int64_t cols = info.shape[1];
      const std::vector<float> w = ToFloat(original.View(info));
      Nvfp4Options options{.static_block_scales = true,
                           .global_amax = group_amax[FusionKey(module)]};
      QuantizedLinear linear{.prefix = module, .weight = reference(module, w, rows, cols, options)};
      for (const ExportTensor& e : ExportLinear(linear, ExportFormat::kModelOpt)) {
        const TensorInfo* got = exported.Find(e.name);
        if (got == nullptr) {
          ADD_FAILURE() << e.name << " missing from the export";
          continue;
        }
        const TensorView view = exported.View(*got);
        if (view.data.size() != e.bytes.size()) {
          ADD_FAILURE() << e.name << ": " << view.data.size() << " bytes, direct "
                        << e.bytes.size();
          continue;
        }
        for (size_t i = 0; i < e.bytes.size(); ++i) {
          const uint8_t b = static_cast<uint8_t>(view.data[i]);
          if (b != e.bytes[i]) {
            ADD_FAILURE() << e.name << " byte " << i << ": exported 0x" << std::hex << int{b}
                          << " direct 0x" << int{e.bytes[i]} << std::dec;
            break;
          }
        }
      }
    }
    return static_cast<int>(modules.size());
  }

  int CompareGptq(const std::filesystem::path& out, bool w4a4) {
    const std::unique_ptr<HessianCollector> hessians =
        Hessians(HessianKind::kFull, out, /*sequential=*/true, /*simulate=*/w4a4);
    return CompareWithDirect(out, [&](const std::string& module, const std::vector<float>& w,
                                      int64_t rows, int64_t cols, const Nvfp4Options& options) {
      const HessianAccumulator* acc = hessians->Find(module);
      EXPECT_NE(acc, nullptr) << module;
      return GptqNvfp4(w, rows, cols, acc->GptqHessian(), GptqOptions{}, options);
    });
  }

  static void ExpectCheckerPasses(const std::filesystem::path& original,
                                  const std::filesystem::path& out, bool updated_weights) {
    const std::string command = "/usr/bin/python3 " +
                                (kSource / "tests/tools/check_export.py").string() + " " +
                                original.string() + " " + out.string() +
                                (updated_weights ? " --updated-weights" : "") + " > /dev/null";
    if (std::system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0) {
      GTEST_SKIP() << "/usr/bin/python3 has no numpy";
    }
    EXPECT_EQ(std::system(command.c_str()), 0) << command;
  }

  std::filesystem::path root_;
  std::filesystem::path model_;
  std::filesystem::path data_;
  std::filesystem::path tokenizer_;
  int64_t samples_ = 0;
  int64_t seq_len_ = 0;
};

bool HasNote(const QuantizeSummary& summary, const std::string& prefix) {
  return std::any_of(summary.notes.begin(), summary.notes.end(),
                     [&](const std::string& note) { return note.starts_with(prefix); });
}

TEST_F(GptqPipelineTest, TinyGptqEqualsDirectGptq) {
  MakeTiny();
  ThreadPool pool(2);
  const QuantizeSummary summary = RunQuantize(Options("gptq", false, "out"), &pool);
  EXPECT_EQ(summary.quant_algo, "W4A16_NVFP4");
  EXPECT_TRUE(HasNote(summary, "gptq on 7 weights, mean layer-output error ratio vs RTN"));
  EXPECT_EQ(CompareGptq(root_ / "out", false), 7);
  ExpectCheckerPasses(model_, root_ / "out", true);
}

TEST_F(GptqPipelineTest, TinyLocalHessianEqualsDirectSearch) {
  MakeTiny();
  ThreadPool pool(2);
  const QuantizeSummary summary =
      RunQuantize(Options("{method: local_hessian, fp8_scale_sweep: true}", false, "out"), &pool);
  EXPECT_TRUE(HasNote(summary, "local_hessian on 7 weights")) << summary.notes.size();
  const std::unique_ptr<HessianCollector> hessians = Hessians(HessianKind::kBlockDiagonal);
  EXPECT_EQ(CompareWithDirect(root_ / "out",
                              [&](const std::string& module, const std::vector<float>& w,
                                  int64_t rows, int64_t cols, Nvfp4Options options) {
                                options.mse.fp8_scale_sweep = true;
                                return LocalHessianNvfp4(w, rows, cols,
                                                         hessians->Find(module)->LocalHessians(),
                                                         options);
                              }),
            7);
  // Nearest codes under the searched scales: the plain checker applies.
  ExpectCheckerPasses(model_, root_ / "out", false);
}

TEST_F(GptqPipelineTest, StacksAndPresetsRun) {
  MakeTiny();
  ThreadPool pool(2);
  const QuantizeSummary mse_gptq =
      RunQuantize(Options("[{method: mse, fp8_scale_sweep: true}, gptq]", true, "mse_gptq"), &pool);
  EXPECT_EQ(mse_gptq.quant_algo, "NVFP4");
  EXPECT_TRUE(HasNote(mse_gptq, "gptq on 7 weights"));
  const QuantizeSummary lh_gptq =
      RunQuantize(Options("[local_hessian, gptq]", false, "lh_gptq"), &pool);
  EXPECT_TRUE(HasNote(lh_gptq, "local_hessian+gptq on 7 weights"));
  ExpectCheckerPasses(model_, root_ / "lh_gptq", true);
  for (const char* preset : {"NVFP4_W4A4_WEIGHT_LOCAL_HESSIAN_CFG",
                             "configs/ptq/presets/model/nvfp4_default-kv_none-gptq"}) {
    QuantizeOptions o = Options("max", false, "unused");
    o.recipe = preset;
    o.out = root_ / ("preset" + std::to_string(preset[0] == 'c'));
    const QuantizeSummary s = RunQuantize(o, &pool);
    EXPECT_EQ(s.quant_algo, "NVFP4") << preset;
    // Calibration, the algorithm, the second pass (and for GPTQ the sequential run).
    EXPECT_EQ(s.notes.size(), preset[0] == 'c' ? 4u : 3u) << preset;
  }
  // Not a stack Model Optimizer runs.
  EXPECT_THROW(RunQuantize(Options("[gptq, mse]", false, "bad"), &pool), Error);
}

// GPTQ on FP8 and MX weights (scales fixed before the updates): each export equals GptqFp8 /
// GptqMx on the same Hessian; local_hessian in a stack is NVFP4-only, so it drops to gptq.
TEST_F(GptqPipelineTest, Fp8AndMxWeights) {
  MakeTiny();
  ThreadPool pool(2);
  const std::unique_ptr<HessianCollector> hessians = Hessians(HessianKind::kFull);
  for (const char* numerics : {"fp8", "mxfp8"}) {
    const QuantizeOptions o = Options("[local_hessian, gptq]", false, numerics, numerics);
    const QuantizeSummary summary = RunQuantize(o, &pool);
    // MX: down_proj (in 48) is not a multiple of 32 and stays unquantized.
    const std::string n = numerics == std::string("fp8") ? "7" : "6";
    EXPECT_TRUE(HasNote(summary, "gptq on " + n + " weights")) << numerics;
    EXPECT_TRUE(
        HasNote(summary, "local_hessian searches NVFP4 static block scales; " + n + " weights"))
        << numerics;
    const Checkpoint original = Checkpoint::Open(model_);
    const Checkpoint exported = Checkpoint::Open(o.out);
    int compared = 0;
    for (const TensorInfo& info : original.Tensors()) {
      if (!info.name.ends_with("_proj.weight")) continue;
      const std::string module = info.name.substr(0, info.name.size() - 7);
      if (exported.Find(module + ".weight_scale") == nullptr) continue;  // left unquantized
      const std::vector<float> w = ToFloat(original.View(info));
      const Hessian h = hessians->Find(module)->GptqHessian();
      QuantizedLinear linear{.prefix = module};
      if (numerics == std::string("fp8")) {
        linear.weight =
            GptqFp8(w, info.shape[0], info.shape[1], h, GptqOptions{}, Fp8Granularity::kPerTensor);
      } else {
        linear.weight = GptqMx(w, info.shape[0], info.shape[1], h, GptqOptions{}, MxElement::kE4M3);
      }
      for (const ExportTensor& e : ExportLinear(linear, ExportFormat::kModelOpt)) {
        const TensorInfo* got = exported.Find(e.name);
        ASSERT_NE(got, nullptr) << e.name;
        const TensorView view = exported.View(*got);
        ASSERT_EQ(view.data.size(), e.bytes.size()) << e.name;
        EXPECT_EQ(std::memcmp(view.data.data(), e.bytes.data(), e.bytes.size()), 0) << e.name;
      }
      ++compared;
    }
    EXPECT_EQ(std::to_string(compared), n) << numerics;
    ExpectCheckerPasses(model_, o.out, true);
  }
}

TEST_F(GptqPipelineTest, RefusedWithoutCalibrationData) {
  MakeTiny();
  ThreadPool pool(2);
  for (const bool weight_only : {false, true}) {
    QuantizeOptions o = Options("gptq", false, "out");
    o.calib_data.clear();
    o.weight_only = weight_only;
    const auto listing = testing::ListDir(root_);
    try {
      RunQuantize(o, &pool);
      ADD_FAILURE() << "expected a refusal";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("pass --calib FILE"), std::string::npos) << e.what();
    }
    EXPECT_EQ(testing::ListDir(root_), listing) << "something was written";
  }
}

// A quantized Linear whose input the forward pass never shows (here an extra module the Llama
// layer does not run) has no Hessian: a qf::Error naming it before anything is written, as
// ApplyCalibration refuses an unobserved input quantizer (it used to abort mid-write).
TEST_F(GptqPipelineTest, WeightWithoutActivationsIsRefused) {
  MakeTiny();
  std::vector<testing::TestTensor> tensors = testing::TinyLlamaTensors(7);
  tensors.push_back({"model.layers.0.mlp.extra_proj.weight",
                     {32, 32},
                     DType::kBF16,
                     std::vector<float>(32 * 32, 0.01f)});
  model_ = root_ / "tiny_extra";
  testing::WriteCheckpoint(model_, tensors);
  MakeTinyConfig();
  ThreadPool pool(2);
  const QuantizeOptions o = Options("gptq", false, "out");
  const auto listing = testing::ListDir(root_);
  try {
    RunQuantize(o, &pool);
    ADD_FAILURE() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.extra_proj"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(testing::ListDir(root_), listing) << "something was written";
}

TEST_F(GptqPipelineTest, StoriesGptqEqualsDirectGptqForOneAndThreeThreads) {
  if (!MakeStories()) GTEST_SKIP() << "stories260K or wikitext-2 not found under " << kShared;
  ThreadPool one(1);
  ThreadPool three(3);
  const QuantizeSummary summary = RunQuantize(Options("gptq", true, "t1"), &one);
  EXPECT_EQ(summary.quant_algo, "NVFP4");
  EXPECT_TRUE(HasNote(summary, "gptq on 30 weights"));
  EXPECT_TRUE(HasNote(summary, "Hessians from a second pass"));
  EXPECT_TRUE(HasNote(summary, "sequential: "));
  RunQuantize(Options("gptq", true, "t3"), &three);
  EXPECT_EQ(testing::ReadTree(root_ / "t1"), testing::ReadTree(root_ / "t3"));
  EXPECT_EQ(CompareGptq(root_ / "t1", true), 30);  // down_proj (in 172) stays F32
  ExpectCheckerPasses(model_, root_ / "t1", true);
}

TEST_F(GptqPipelineTest, StoriesWeightOnlyGptqIsSequential) {
  if (!MakeStories()) GTEST_SKIP() << "stories260K or wikitext-2 not found under " << kShared;
  ThreadPool pool(2);
  const QuantizeSummary summary = RunQuantize(Options("gptq", false, "out"), &pool);
  EXPECT_EQ(summary.quant_algo, "W4A16_NVFP4");
  EXPECT_TRUE(HasNote(summary, "sequential: "));
  EXPECT_FALSE(HasNote(summary, "Hessians from a second pass"));
  EXPECT_EQ(CompareGptq(root_ / "out", false), 30);
}

}  // namespace
}  // namespace qf
