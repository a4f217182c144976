// End to end through the export layer: a small generated Llama-shaped BF16 checkpoint is
// quantized module by module (fusion groups unified, layouts from ExportLinear / ExportKvScales,
// configs from WriteQuantConfigFiles), written with CheckpointWriter, and then judged by the
// independent Python checker tests/tools/check_export.py. Also checks that the checker fails on
// an export with a wrong global-scale convention and on a config that hides an unquantized layer.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "quantforge/export.h"
#include "tests/export/export_test_util.h"

namespace qf {
namespace {

namespace fs = std::filesystem;

struct Weight {
  std::string name;
  Shape shape;
  std::vector<float> values;  // already BF16-representable
};

// Llama-shaped: hidden 64, GQA k/v 32, MLP 128, vocab 96, two layers.
std::vector<Weight> MakeModel() {
  std::vector<Weight> model;
  uint32_t seed = 1;
  const auto add = [&](std::string name, Shape shape) {
    std::vector<float> v =
        testutil::RandomWeights(shape[0], shape.size() > 1 ? shape[1] : 1, seed++);
    for (float& x : v) x = DecodeBF16(EncodeBF16(x));
    model.push_back({std::move(name), std::move(shape), std::move(v)});
  };
  add("model.embed_tokens.weight", {96, 64});
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {64});
    add(p + "self_attn.q_proj.weight", {64, 64});
    add(p + "self_attn.k_proj.weight", {32, 64});
    add(p + "self_attn.v_proj.weight", {32, 64});
    add(p + "self_attn.o_proj.weight", {64, 64});
    add(p + "post_attention_layernorm.weight", {64});
    add(p + "mlp.gate_proj.weight", {128, 64});
    add(p + "mlp.up_proj.weight", {128, 64});
    add(p + "mlp.down_proj.weight", {64, 128});
  }
  add("model.norm.weight", {64});
  add("lm_head.weight", {96, 64});
  return model;
}

bool IsLinear(const Weight& w) {
  return w.shape.size() == 2 && w.name.find("embed") == std::string::npos;
}

// Decides the algorithm of a linear module (nullopt: left unquantized).
using Policy = std::function<std::optional<QuantAlgo>(const std::string& module)>;

void WriteOriginal(const fs::path& dir, const std::vector<Weight>& model) {
  std::vector<ExportTensor> tensors;
  for (const Weight& w : model) {
    tensors.push_back({w.name, DType::kBF16, w.shape, testutil::ToBf16Bytes(w.values)});
  }
  testutil::WriteCheckpoint(dir, tensors);
  std::ofstream(dir / "config.json")
      << R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "torch_dtype": "bfloat16"})";
}

// A miniature of the pipeline: amax per module, fused groups unified, quantize, lay out, write.
ExportManifest WriteQuantized(const fs::path& orig, const fs::path& dir,
                              const std::vector<Weight>& model, const Policy& policy,
                              ExportFormat format, bool kv, bool weight_only = false) {
  std::vector<const Weight*> linears;
  std::vector<AmaxEntry> entries;
  std::vector<std::string> names;
  ExportManifest manifest;
  std::vector<ExportTensor> out;
  for (const Weight& w : model) {
    const std::string module = w.name.substr(0, w.name.size() - 7);  // strip ".weight"
    const std::optional<QuantAlgo> algo = IsLinear(w) ? policy(module) : std::nullopt;
    if (!algo) {
      if (IsLinear(w)) manifest.unquantized.push_back(module);
      out.push_back({w.name, DType::kBF16, w.shape, testutil::ToBf16Bytes(w.values)});
      continue;
    }
    float amax = 0.0f;
    for (float x : w.values) amax = std::max(amax, std::fabs(x));
    linears.push_back(&w);
    // A stand-in for calibration: activation amax 4.0 for attention inputs, 9.0 for the MLP.
    const bool input = !weight_only && (*algo == QuantAlgo::kNvfp4 || *algo == QuantAlgo::kFp8);
    std::optional<float> act;
    if (input) act = module.find("self_attn") != std::string::npos ? 4.0f : 9.0f;
    entries.push_back({module, *algo, amax, act});
    names.push_back(module);
  }
  const FusedAmax fused = UnifyFusedAmax(entries, FusionGroupsFromNames(names));
  for (size_t i = 0; i < linears.size(); ++i) {
    const Weight& w = *linears[i];
    const QuantAlgo algo = entries[i].algo;
    const TensorView view = MakeView(std::span(w.values), w.shape, w.name);
    QuantizedLinear linear{entries[i].name, Fp8Tensor{}, false, fused.input_amax[i]};
    linear.input_quantized =
        entries[i].input_amax.has_value() && (algo == QuantAlgo::kNvfp4 || algo == QuantAlgo::kFp8);
    if (algo == QuantAlgo::kNvfp4 || algo == QuantAlgo::kW4A16Nvfp4) {
      Nvfp4Options options;
      options.global_amax = fused.weight_global_amax[i];
      linear.weight = QuantizeNvfp4(view, options);
    } else if (algo == QuantAlgo::kMxfp8) {
      linear.weight = QuantizeMx(view, MxElement::kE4M3, MxScaleRule::kCeil);
    } else {
      linear.weight = QuantizeFp8(
          view, algo == QuantAlgo::kFp8 ? Fp8Granularity::kPerTensor : Fp8Granularity::kPerChannel);
    }
    manifest.quantized.push_back({entries[i].name, algo, linear.input_quantized});
    for (ExportTensor& t : ExportLinear(std::move(linear), format)) out.push_back(std::move(t));
  }
  if (kv) {
    for (int l = 0; l < 2; ++l) {
      const std::string attn = "model.layers." + std::to_string(l) + ".self_attn";
      for (ExportTensor& t : ExportKvScales(attn, 3.5f, 2.25f, format)) out.push_back(std::move(t));
    }
    manifest.kv_cache_fp8 = true;
  }
  testutil::WriteCheckpoint(dir, out);
  WriteQuantConfigFiles(dir, orig / "config.json", manifest, format);
  return manifest;
}

// Runs the checker; returns its exit code and puts its output in `log`.
int RunChecker(const fs::path& orig, const fs::path& quant, std::string& log) {
  const fs::path out = quant.string() + ".log";
  const std::string cmd = std::string(QF_PYTHON3) + " " + QF_SOURCE_DIR +
                          "/tests/tools/check_export.py " + orig.string() + " " + quant.string() +
                          " --verbose > " + out.string() + " 2>&1";
  const int status = std::system(cmd.c_str());
  std::ifstream in(out);
  std::stringstream text;
  text << in.rdbuf();
  log = text.str();
  // QF_CHECKER_LOG=1 shows the checker's report for passing runs too.
  if (std::getenv("QF_CHECKER_LOG") != nullptr) std::printf("%s\n", log.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class ExportChecker : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string probe = std::string(QF_PYTHON3) + " -c 'import numpy' > /dev/null 2>&1";
    if (std::system(probe.c_str()) != 0) GTEST_SKIP() << QF_PYTHON3 << " has no numpy";
    root_ = fs::path(::testing::TempDir()) / ("qf_export_checker_" + std::to_string(getpid()));
    fs::remove_all(root_);
    WriteOriginal(root_ / "orig", model_);
  }
  void TearDown() override { fs::remove_all(root_); }

  void ExpectPasses(const std::string& tag, const Policy& policy, ExportFormat format, bool kv,
                    bool weight_only = false) {
    const fs::path quant = root_ / tag;
    WriteQuantized(root_ / "orig", quant, model_, policy, format, kv, weight_only);
    std::string log;
    EXPECT_EQ(RunChecker(root_ / "orig", quant, log), 0) << log;
  }

  std::vector<Weight> model_ = MakeModel();
  fs::path root_;
};

std::optional<QuantAlgo> AllBut(const std::string& module, QuantAlgo algo) {
  if (module == "lm_head") return std::nullopt;
  return algo;
}

TEST_F(ExportChecker, Nvfp4W4A4ModelOpt) {
  ExpectPasses(
      "nvfp4", [](const std::string& m) { return AllBut(m, QuantAlgo::kNvfp4); },
      ExportFormat::kModelOpt, true);
}

TEST_F(ExportChecker, Nvfp4W4A4CompressedTensors) {
  ExpectPasses(
      "nvfp4_ct", [](const std::string& m) { return AllBut(m, QuantAlgo::kNvfp4); },
      ExportFormat::kCompressedTensors, true);
}

TEST_F(ExportChecker, W4A16WithExcludedLayer) {
  // Layer 1's attention stays BF16: exclude_modules gets the wildcard "model.layers.1.self_attn*".
  ExpectPasses(
      "w4a16",
      [](const std::string& m) -> std::optional<QuantAlgo> {
        if (m.rfind("model.layers.1.self_attn", 0) == 0) return std::nullopt;
        return AllBut(m, QuantAlgo::kW4A16Nvfp4);
      },
      ExportFormat::kModelOpt, false);
}

TEST_F(ExportChecker, Fp8BothLayouts) {
  const Policy fp8 = [](const std::string& m) { return AllBut(m, QuantAlgo::kFp8); };
  ExpectPasses("fp8", fp8, ExportFormat::kModelOpt, true);
  ExpectPasses("fp8_ct", fp8, ExportFormat::kCompressedTensors, false);
  const Policy channel = [](const std::string& m) { return AllBut(m, QuantAlgo::kFp8PerChannel); };
  ExpectPasses("fp8_pc_ct", channel, ExportFormat::kCompressedTensors, false);
  // Weight-only FP8: per-channel in the modelopt layout, naive-quantized in compressed-tensors.
  ExpectPasses("fp8_wo", fp8, ExportFormat::kModelOpt, false, /*weight_only=*/true);
  ExpectPasses("fp8_wo_ct", fp8, ExportFormat::kCompressedTensors, false, /*weight_only=*/true);
}

TEST_F(ExportChecker, MixedPrecisionAndMxfp8) {
  const Policy mixed = [](const std::string& m) -> std::optional<QuantAlgo> {
    if (m == "lm_head") return std::nullopt;
    return m.find("self_attn") != std::string::npos ? QuantAlgo::kFp8 : QuantAlgo::kNvfp4;
  };
  ExpectPasses("mixed", mixed, ExportFormat::kModelOpt, true);
  ExpectPasses("mixed_ct", mixed, ExportFormat::kCompressedTensors, false);
  ExpectPasses(
      "mxfp8", [](const std::string& m) { return AllBut(m, QuantAlgo::kMxfp8); },
      ExportFormat::kModelOpt, false);
}

TEST_F(ExportChecker, CatchesWrongGlobalScaleConvention) {
  // A compressed-tensors export whose weight_global_scale was not inverted (the Model Optimizer
  // multiplier written under the compressed-tensors name): the checker must fail it.
  const fs::path good = root_ / "nvfp4_mo";
  WriteQuantized(
      root_ / "orig", good, model_,
      [](const std::string& m) { return AllBut(m, QuantAlgo::kW4A16Nvfp4); },
      ExportFormat::kModelOpt, false);
  const Checkpoint ckpt = Checkpoint::Open(good);
  std::vector<ExportTensor> renamed;
  for (const TensorInfo& info : ckpt.Tensors()) {
    const TensorView v = ckpt.View(info);
    std::string name = info.name;
    Shape shape = info.shape;
    const auto replace = [&](std::string_view from, std::string_view to) {
      if (name.size() > from.size() && name.ends_with(from)) {
        name = name.substr(0, name.size() - from.size()) + std::string(to);
        return true;
      }
      return false;
    };
    if (replace(".weight_scale_2", ".weight_global_scale")) shape = {1};
    if (info.dtype == DType::kU8) replace(".weight", ".weight_packed");
    const auto* p = reinterpret_cast<const uint8_t*>(v.data.data());
    renamed.push_back({name, info.dtype, shape, ByteBuffer(p, p + v.data.size())});
  }
  const fs::path bad = root_ / "bad_ct";
  testutil::WriteCheckpoint(bad, renamed);
  ExportManifest m;
  for (int l = 0; l < 2; ++l) {
    for (const char* leaf : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                             "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}) {
      m.quantized.push_back(
          {"model.layers." + std::to_string(l) + "." + leaf, QuantAlgo::kW4A16Nvfp4, false});
    }
  }
  m.unquantized = {"lm_head"};
  WriteQuantConfigFiles(bad, root_ / "orig" / "config.json", m, ExportFormat::kCompressedTensors);
  std::string log;
  EXPECT_EQ(RunChecker(root_ / "orig", bad, log), 1) << log;
  EXPECT_NE(log.find("exceeds bound"), std::string::npos) << log;
}

TEST_F(ExportChecker, CatchesAnUndeclaredUnquantizedLayer) {
  // lm_head left BF16 but not listed in exclude_modules: vLLM would build an NVFP4 lm_head and
  // fail to load it, and the checker says so.
  const fs::path quant = root_ / "hidden";
  ExportManifest m = WriteQuantized(
      root_ / "orig", quant, model_,
      [](const std::string& mod) { return AllBut(mod, QuantAlgo::kW4A16Nvfp4); },
      ExportFormat::kModelOpt, false);
  m.unquantized.clear();
  WriteQuantConfigFiles(quant, root_ / "orig" / "config.json", m, ExportFormat::kModelOpt);
  std::string log;
  EXPECT_EQ(RunChecker(root_ / "orig", quant, log), 1) << log;
  EXPECT_NE(log.find("lm_head: config declares it W4A16_NVFP4"), std::string::npos) << log;
}

}  // namespace
}  // namespace qf
