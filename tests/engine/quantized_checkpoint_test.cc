// Quantized checkpoints made by the real pipeline (qf::RunQuantize, both layouts) from a
// generated tiny Llama: the scheme read back, the dequantized weights against the quant layer's
// dequantization of the original quantized in memory, eval of a checkpoint against itself (KL 0,
// top-1 1), eval of an NVFP4 W4A4 checkpoint against the original with the same weight and
// activation fake quantization applied in memory, and refusals of malformed metadata.
#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "quantforge/checkpoint.h"
#include "quantforge/error.h"
#include "quantforge/eval.h"
#include "quantforge/formats.h"
#include "quantforge/pipeline.h"
#include "quantforge/quantize.h"
#include "quantforge/synth.h"

namespace qf {
namespace {

namespace fs = std::filesystem;

const fs::path& Root() {
  static const fs::path root = [] {
    const fs::path dir =
        fs::temp_directory_path() / ("qf_engine_quantized_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir / "orig");
    return dir;
  }();
  return root;
}

ThreadPool& Pool() {
  static ThreadPool pool(2);
  return pool;
}

std::vector<int32_t> Stream() {
  std::mt19937 rng(42);
  std::vector<int32_t> tokens(2048);
  for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % 256);
  return tokens;
}

// The original (tiny Llama, BF16), calibration data (input_ids) and the quantized checkpoints,
// made once per process.
class QuantizedCheckpointTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const fs::path orig = Root() / "orig";
    GenerateLlamaCheckpoint(orig, *LlamaPreset("tiny"), SynthCheckpointOptions{}, &Pool());
    std::ofstream calib(Root() / "calib.jsonl");
    const std::vector<int32_t> tokens = Stream();
    for (size_t i = 0; i < tokens.size(); i += 64) {
      calib << nlohmann::json{{"input_ids",
                               std::vector<int32_t>(tokens.begin() + i, tokens.begin() + i + 64)}}
                   .dump()
            << "\n";
    }
    calib.close();
    const auto make = [&](const char* name, const char* recipe, ExportFormat format, bool calib) {
      QuantizeOptions o;
      o.model = orig;
      o.recipe = recipe;
      o.out = Root() / name;
      o.format = format;
      o.sync_to_disk = false;
      if (calib) {
        o.calib_data = Root() / "calib.jsonl";
        o.calib_samples = 8;
        o.calib_seq_len = 64;
      }
      RunQuantize(o, &Pool());
    };
    make("nvfp4_mo", "NVFP4_DEFAULT_CFG+FP8_KV_CFG", ExportFormat::kModelOpt, true);
    make("nvfp4_ct", "NVFP4_DEFAULT_CFG+FP8_KV_CFG", ExportFormat::kCompressedTensors, true);
    make("w4a16_mo", "W4A16_NVFP4_CFG", ExportFormat::kModelOpt, false);
    make("fp8_mo", "FP8_DEFAULT_CFG", ExportFormat::kModelOpt, true);
    make("fp8_ct", "FP8_DEFAULT_CFG", ExportFormat::kCompressedTensors, true);
    make("fp8pc_mo", "FP8_PER_CHANNEL_PER_TOKEN_CFG", ExportFormat::kModelOpt, false);
    make("mxfp8_mo", "MXFP8_DEFAULT_CFG", ExportFormat::kModelOpt, false);
    // MIXED_PRECISION: NVFP4 W4A4 MLPs, FP8 W8A8 attention (a user recipe over the built-in
    // numerics units).
    std::ofstream(Root() / "mixed.yaml") << R"(imports:
  base_disable_all: configs/ptq/units/base_disable_all
  default_disabled_quantizers: configs/ptq/units/default_disabled_quantizers
  nvfp4: configs/numerics/nvfp4
  fp8: configs/numerics/fp8
algorithm: max
quant_cfg:
  - $import: base_disable_all
  - {quantizer_name: '*mlp*weight_quantizer', cfg: {$import: nvfp4}}
  - {quantizer_name: '*mlp*input_quantizer', cfg: {$import: nvfp4}}
  - {quantizer_name: '*self_attn*weight_quantizer', cfg: {$import: fp8}}
  - {quantizer_name: '*self_attn*input_quantizer', cfg: {$import: fp8}}
  - $import: default_disabled_quantizers
)";
    const std::string mixed = (Root() / "mixed.yaml").string();
    make("mixed_mo", mixed.c_str(), ExportFormat::kModelOpt, true);
    make("mixed_ct", mixed.c_str(), ExportFormat::kCompressedTensors, true);
  }
  static void TearDownTestSuite() { fs::remove_all(Root()); }
};

// One F32 scalar tensor read straight from the checkpoint (not through the code under test).
float RawScalar(const Checkpoint& ckpt, const std::string& name) {
  const TensorInfo* info = ckpt.Find(name);
  EXPECT_NE(info, nullptr) << name;
  float v = 0;
  if (info != nullptr) std::memcpy(&v, ckpt.View(*info).data.data(), 4);
  return v;
}

const std::vector<std::vector<std::string>> kFusedGroups = {
    {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"},
    {"self_attn.o_proj"},
    {"mlp.gate_proj", "mlp.up_proj"},
    {"mlp.down_proj"}};

// The original's decoder weights quantized in memory as the pipeline does: NVFP4 max with the
// fused group's global amax (q|k|v, gate|up share weight_scale_2), or FP8 per tensor.
std::map<std::string, Nvfp4Tensor> InMemoryNvfp4() {
  const Checkpoint orig = Checkpoint::Open(Root() / "orig");
  std::map<std::string, Nvfp4Tensor> out;
  for (int layer = 0; layer < 2; ++layer) {
    for (const auto& group : kFusedGroups) {
      float group_amax = 0;
      std::vector<TensorView> views;
      for (const std::string& m : group) {
        const std::string name = "model.layers." + std::to_string(layer) + "." + m + ".weight";
        views.push_back(orig.View(*orig.Find(name)));
        group_amax = std::max(group_amax, TensorAmax(views.back()));
      }
      for (const TensorView& view : views) {
        Nvfp4Options options;
        options.global_amax = group_amax;
        out[std::string(view.name)] = QuantizeNvfp4(view, options);
      }
    }
  }
  return out;
}

std::vector<float> Dequantized(const Nvfp4Tensor& t) {
  std::vector<float> values(static_cast<size_t>(t.rows * t.cols));
  DequantizeNvfp4(t, values);
  return values;
}

std::map<std::string, std::vector<float>> InMemoryDequantized(bool nvfp4) {
  std::map<std::string, std::vector<float>> out;
  if (nvfp4) {
    for (const auto& [name, t] : InMemoryNvfp4()) out[name] = Dequantized(t);
    return out;
  }
  const Checkpoint orig = Checkpoint::Open(Root() / "orig");
  for (const TensorInfo& info : orig.Tensors()) {
    if (!info.name.starts_with("model.layers.") || info.shape.size() != 2) continue;
    const TensorView view = orig.View(info);
    std::vector<float> values(static_cast<size_t>(view.NumElements()));
    DequantizeFp8(QuantizeFp8(view, Fp8Granularity::kPerTensor), values);
    out[info.name] = std::move(values);
  }
  return out;
}

std::vector<float> Loaded(const WeightSource& source, const std::string& name) {
  const std::optional<TensorView> view = source.Find(name);
  EXPECT_TRUE(view.has_value()) << name;
  EXPECT_EQ(view->dtype, DType::kF32) << name;
  const auto* f = reinterpret_cast<const float*>(view->data.data());
  return {f, f + view->NumElements()};
}

int64_t CountBitMismatches(const std::vector<float>& a, const std::vector<float>& b,
                           const std::string& name) {
  EXPECT_EQ(a.size(), b.size()) << name;
  int64_t bad = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (std::bit_cast<uint32_t>(a[i]) != std::bit_cast<uint32_t>(b[i]) && ++bad <= 3) {
      ADD_FAILURE() << name << " index " << i << ": expected " << a[i] << " (0x" << std::hex
                    << std::bit_cast<uint32_t>(a[i]) << ") loaded " << b[i] << " (0x"
                    << std::bit_cast<uint32_t>(b[i]) << std::dec << ")";
    }
  }
  return bad;
}

TEST_F(QuantizedCheckpointTest, SchemeOfEachLayout) {
  const QuantizedCheckpoint mo = OpenQuantizedCheckpoint(Root() / "nvfp4_mo");
  const QuantizedCheckpoint ct = OpenQuantizedCheckpoint(Root() / "nvfp4_ct");
  EXPECT_EQ(mo.scheme.layout, "modelopt");
  EXPECT_EQ(ct.scheme.layout, "compressed-tensors");
  EXPECT_EQ(mo.scheme.Summary(), "NVFP4 W4A4 (weights + activations), FP8 KV");
  EXPECT_EQ(ct.scheme.Summary(), mo.scheme.Summary());
  ASSERT_EQ(mo.scheme.linears.size(), 14u);  // 7 per layer; lm_head excluded by the recipe
  ASSERT_EQ(mo.scheme.kv.size(), 2u);
  const Checkpoint raw = Checkpoint::Open(Root() / "nvfp4_mo");
  for (const auto& [module, q] : mo.scheme.linears) {
    EXPECT_EQ(q.input.kind, InputQuantKind::kNvfp4) << module;
    EXPECT_EQ(q.input.input_scale, RawScalar(raw, module + ".input_scale")) << module;
    // compressed-tensors stores 1 / input_scale; inverted again in F32 at load, as vLLM does.
    EXPECT_EQ(ct.scheme.linears.at(module).input.input_scale, 1.0f / (1.0f / q.input.input_scale))
        << module;
  }
  for (const auto& [attn, kv] : mo.scheme.kv) {
    EXPECT_EQ(kv.k_scale, RawScalar(raw, attn + ".k_proj.k_scale"));
    EXPECT_EQ(kv.v_scale, RawScalar(raw, attn + ".v_proj.v_scale"));
    EXPECT_EQ(ct.scheme.kv.at(attn).k_scale, kv.k_scale);
  }

  const QuantizedCheckpoint w4a16 = OpenQuantizedCheckpoint(Root() / "w4a16_mo");
  EXPECT_EQ(w4a16.scheme.Summary(), "NVFP4 W4A16 (weights only)");
  const QuantizedCheckpoint fp8 = OpenQuantizedCheckpoint(Root() / "fp8_mo");
  EXPECT_EQ(fp8.scheme.Summary(), "FP8 W8A8 (weights + static per-tensor activations)");
  EXPECT_EQ(OpenQuantizedCheckpoint(Root() / "fp8_ct").scheme.Summary(), fp8.scheme.Summary());
  // Dynamic input quantizers: FP8 per token (vLLM's FP8_PER_CHANNEL_PER_TOKEN method) and MXFP8.
  const QuantizedCheckpoint pc = OpenQuantizedCheckpoint(Root() / "fp8pc_mo");
  EXPECT_EQ(pc.scheme.Summary(), "FP8 per-channel weights + dynamic per-token FP8 activations");
  EXPECT_EQ(pc.scheme.linears.at("model.layers.1.mlp.up_proj").input.kind,
            InputQuantKind::kFp8PerToken);
  const QuantizedCheckpoint mx = OpenQuantizedCheckpoint(Root() / "mxfp8_mo");
  EXPECT_EQ(mx.scheme.Summary(), "MXFP8 (weights + activations)");
  EXPECT_EQ(mx.scheme.linears.size(), 14u);
  const QuantizedCheckpoint orig = OpenQuantizedCheckpoint(Root() / "orig");
  EXPECT_EQ(orig.scheme.layout, "none");
  EXPECT_FALSE(orig.scheme.IsQuantized());
}

TEST_F(QuantizedCheckpointTest, WeightsEqualDequantizationOfWhatWasWritten) {
  const auto nvfp4 = InMemoryNvfp4();
  const QuantizedCheckpoint mo = OpenQuantizedCheckpoint(Root() / "nvfp4_mo", &Pool());
  const QuantizedCheckpoint w4a16 = OpenQuantizedCheckpoint(Root() / "w4a16_mo", &Pool());
  const QuantizedCheckpoint ct = OpenQuantizedCheckpoint(Root() / "nvfp4_ct", &Pool());
  const Checkpoint ct_raw = Checkpoint::Open(Root() / "nvfp4_ct");
  ASSERT_EQ(nvfp4.size(), 14u);
  for (const auto& [name, tensor] : nvfp4) {
    const std::vector<float> expected = Dequantized(tensor);
    EXPECT_EQ(CountBitMismatches(expected, Loaded(*mo.weights, name), name), 0);
    EXPECT_EQ(CountBitMismatches(expected, Loaded(*w4a16.weights, name), name), 0);
    // compressed-tensors: the same codes and block scales under global 1 / weight_global_scale.
    Nvfp4Tensor ct_tensor = tensor;
    const std::string module = name.substr(0, name.size() - 7);
    ct_tensor.global_scale = 1.0f / RawScalar(ct_raw, module + ".weight_global_scale");
    EXPECT_EQ(CountBitMismatches(Dequantized(ct_tensor), Loaded(*ct.weights, name), name + " ct"),
              0);
  }
  // Unquantized tensors pass through byte for byte.
  const auto embed = mo.weights->Find("model.embed_tokens.weight");
  const Checkpoint orig = Checkpoint::Open(Root() / "orig");
  const TensorView original = orig.View(*orig.Find("model.embed_tokens.weight"));
  ASSERT_TRUE(embed.has_value());
  EXPECT_EQ(embed->dtype, original.dtype);
  EXPECT_EQ(0, std::memcmp(embed->data.data(), original.data.data(), original.data.size()));

  const auto fp8 = InMemoryDequantized(false);
  for (const char* dir : {"fp8_mo", "fp8_ct"}) {
    const QuantizedCheckpoint q = OpenQuantizedCheckpoint(Root() / dir, &Pool());
    for (const auto& [name, expected] : fp8) {
      EXPECT_EQ(CountBitMismatches(expected, Loaded(*q.weights, name), name + " " + dir), 0);
    }
  }
}

TEST_F(QuantizedCheckpointTest, MixedPrecisionPerLayer) {
  const auto nvfp4 = InMemoryNvfp4();
  const auto fp8 = InMemoryDequantized(false);
  for (const char* dir : {"mixed_mo", "mixed_ct"}) {
    const bool ct = std::string(dir) == "mixed_ct";
    const QuantizedCheckpoint q = OpenQuantizedCheckpoint(Root() / dir, &Pool());
    EXPECT_EQ(q.scheme.Summary(),
              "mixed: 6 x NVFP4 W4A4 (weights + activations); 8 x FP8 W8A8 (weights + static "
              "per-tensor activations)")
        << dir;
    const Checkpoint raw = Checkpoint::Open(Root() / dir);
    ASSERT_EQ(q.scheme.linears.size(), 14u);
    for (const auto& [module, linear] : q.scheme.linears) {
      const std::string name = module + ".weight";
      const bool mlp = module.find(".mlp.") != std::string::npos;
      EXPECT_EQ(linear.input.kind, mlp ? InputQuantKind::kNvfp4 : InputQuantKind::kFp8Static);
      std::vector<float> expected;
      if (mlp) {
        Nvfp4Tensor t = nvfp4.at(name);
        if (ct) t.global_scale = 1.0f / RawScalar(raw, module + ".weight_global_scale");
        expected = Dequantized(t);
      } else {
        expected = fp8.at(name);
      }
      EXPECT_EQ(CountBitMismatches(expected, Loaded(*q.weights, name), name + " " + dir), 0);
      if (!mlp) {
        EXPECT_EQ(linear.input.input_scale, RawScalar(raw, module + ".input_scale"));
      }
    }
  }
}

EvalOptions SmallEval() {
  EvalOptions options;
  options.seq_len = 64;
  options.bos_id = 1;
  options.batch_tokens = 128;
  return options;
}

TEST_F(QuantizedCheckpointTest, CheckpointAgainstItselfHasKlZeroTop1One) {
  const std::vector<int32_t> stream = Stream();
  for (const char* dir : {"nvfp4_mo", "nvfp4_ct", "fp8_ct"}) {
    QuantizedCheckpoint a = OpenQuantizedCheckpoint(Root() / dir, &Pool());
    QuantizedCheckpoint b = OpenQuantizedCheckpoint(Root() / dir, &Pool());
    const ModelConfig config = LoadModelConfig(Root() / dir);
    const auto model = Model::Load(config, *a.weights, &Pool());
    const auto reference = Model::Load(config, *b.weights, &Pool());
    SimulationHooks hooks(a.scheme), reference_hooks(b.scheme);
    EvalOptions options = SmallEval();
    options.hooks = &hooks;
    options.reference = reference.get();
    options.reference_hooks = &reference_hooks;
    const EvalResult r = EvaluatePerplexity(*model, stream, options);
    EXPECT_EQ(*r.kl, 0.0) << dir;
    EXPECT_EQ(*r.top1, 1.0) << dir;
    EXPECT_EQ(*r.reference_nll, r.nll) << dir;
    EXPECT_EQ(r.tokens, 32 * 63);
  }
}

// Simulation runs on the forward thread between fixed GEMM tiles: 1 and 3 threads agree.
TEST_F(QuantizedCheckpointTest, SimulatedEvalIndependentOfThreadCount) {
  const std::vector<int32_t> stream = Stream();
  std::vector<EvalResult> results;
  for (size_t threads : {1u, 3u}) {
    ThreadPool pool(threads);
    for (const char* dir : {"nvfp4_mo", "fp8pc_mo", "mxfp8_mo"}) {
      QuantizedCheckpoint q = OpenQuantizedCheckpoint(Root() / dir, &pool);
      const auto model = Model::Load(LoadModelConfig(Root() / dir), *q.weights, &pool);
      const auto original = Model::LoadDir(Root() / "orig", &pool);
      SimulationHooks hooks(q.scheme);
      EvalOptions options = SmallEval();
      options.hooks = &hooks;
      options.reference = original.get();
      results.push_back(EvaluatePerplexity(*model, stream, options));
      EXPECT_GT(*results.back().kl, 0.0) << dir;
    }
  }
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(results[i].nll, results[i + 3].nll) << i;
    EXPECT_EQ(*results[i].kl, *results[i + 3].kl) << i;
    EXPECT_EQ(*results[i].top1, *results[i + 3].top1) << i;
  }
}

// The original with the checkpoint's quantization applied in memory: weights through the quant
// layer (fused global amax), inputs and K / V through SimulationHooks built from scales read
// straight from the checkpoint's tensors.
TEST_F(QuantizedCheckpointTest, Nvfp4EvalEqualsInMemorySimulationOfTheOriginal) {
  const auto nvfp4 = InMemoryDequantized(true);
  LoadOptions load;
  load.weight_transform = [&](const std::string& name, std::span<float> w, int64_t, int64_t) {
    const auto it = nvfp4.find(name);
    if (it != nvfp4.end()) std::copy(it->second.begin(), it->second.end(), w.begin());
  };
  const auto simulated_original = Model::LoadDir(Root() / "orig", &Pool(), load);
  const auto original = Model::LoadDir(Root() / "orig", &Pool());
  QuantizationScheme scheme;
  const Checkpoint raw = Checkpoint::Open(Root() / "nvfp4_mo");
  for (const auto& [name, values] : nvfp4) {
    const std::string module = name.substr(0, name.size() - 7);
    scheme.linears[module] = {"NVFP4",
                              StoredWeightFormat::kNvfp4,
                              {InputQuantKind::kNvfp4, RawScalar(raw, module + ".input_scale")}};
  }
  for (const char* attn : {"model.layers.0.self_attn", "model.layers.1.self_attn"}) {
    scheme.kv[attn] = {RawScalar(raw, std::string(attn) + ".k_proj.k_scale"),
                       RawScalar(raw, std::string(attn) + ".v_proj.v_scale")};
  }
  SimulationHooks in_memory(scheme);
  EvalOptions options = SmallEval();
  options.hooks = &in_memory;
  options.reference = original.get();
  const std::vector<int32_t> stream = Stream();
  const EvalResult expected = EvaluatePerplexity(*simulated_original, stream, options);

  QuantizedCheckpoint q = OpenQuantizedCheckpoint(Root() / "nvfp4_mo", &Pool());
  const auto model = Model::Load(LoadModelConfig(Root() / "nvfp4_mo"), *q.weights, &Pool());
  SimulationHooks hooks(q.scheme);
  options.hooks = &hooks;
  const EvalResult actual = EvaluatePerplexity(*model, stream, options);
  EXPECT_EQ(actual.nll, expected.nll);
  EXPECT_EQ(*actual.kl, *expected.kl);
  EXPECT_EQ(*actual.top1, *expected.top1);
  // The simulation does something: KL to the original is positive, and W4A4 loses more than
  // W4A16 (same weights, BF16 activations).
  EXPECT_GT(*actual.kl, 0.0);
  QuantizedCheckpoint w = OpenQuantizedCheckpoint(Root() / "w4a16_mo", &Pool());
  const auto w4a16 = Model::Load(LoadModelConfig(Root() / "w4a16_mo"), *w.weights, &Pool());
  SimulationHooks w_hooks(w.scheme);
  options.hooks = &w_hooks;
  EXPECT_LT(*EvaluatePerplexity(*w4a16, stream, options).kl, *actual.kl);
}

// Copies `from` to `to` and replaces `file`'s text.
fs::path Tampered(const char* from, const char* to, const char* file,
                  const std::function<void(nlohmann::json&)>& edit) {
  const fs::path dir = Root() / to;
  fs::remove_all(dir);
  fs::copy(Root() / from, dir);
  std::ifstream in(dir / file);
  nlohmann::json json = nlohmann::json::parse(in);
  in.close();
  edit(json);
  std::ofstream(dir / file) << json.dump(2);
  return dir;
}

std::string ErrorOf(const fs::path& dir) {
  try {
    OpenQuantizedCheckpoint(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// KV scales as other producers write them: BF16 (compressed-tensors' converter default) and
// "<attn>.k_scale" without the k_proj level (vLLM remaps both).
TEST_F(QuantizedCheckpointTest, KvScalesInBf16AndShortNames) {
  const fs::path dir = Root() / "kv_variants";
  fs::create_directories(dir);
  fs::copy_file(Root() / "nvfp4_ct" / "config.json", dir / "config.json");
  const Checkpoint src = Checkpoint::Open(Root() / "nvfp4_ct");
  const auto renamed = [](const std::string& name) {
    const std::string from = "model.layers.1.self_attn.k_proj.k_scale";
    return name == from ? std::string("model.layers.1.self_attn.k_scale") : name;
  };
  std::vector<TensorSpec> plan;
  std::map<std::string, std::vector<std::byte>> bytes;
  for (const TensorInfo& info : src.Tensors()) {
    const TensorView view = src.View(info);
    std::vector<std::byte> data(view.data.begin(), view.data.end());
    DType dtype = info.dtype;
    if (info.name.ends_with("_proj.k_scale") || info.name.ends_with("_proj.v_scale")) {
      float v;
      std::memcpy(&v, data.data(), 4);
      const uint16_t bf16 = EncodeBF16(v);
      data.resize(2);
      std::memcpy(data.data(), &bf16, 2);
      dtype = DType::kBF16;
    }
    plan.push_back({renamed(info.name), dtype, info.shape});
    bytes[renamed(info.name)] = std::move(data);
  }
  {
    CheckpointWriter writer(dir, plan);
    for (const auto& [name, data] : bytes) writer.Write(name, data);
    writer.Finish();
  }
  const QuantizedCheckpoint q = OpenQuantizedCheckpoint(dir);
  const Checkpoint raw = Checkpoint::Open(Root() / "nvfp4_ct");
  for (const char* attn : {"model.layers.0.self_attn", "model.layers.1.self_attn"}) {
    const float k = RawScalar(raw, std::string(attn) + ".k_proj.k_scale");
    const float v = RawScalar(raw, std::string(attn) + ".v_proj.v_scale");
    EXPECT_EQ(q.scheme.kv.at(attn).k_scale, DecodeBF16(EncodeBF16(k))) << attn;
    EXPECT_EQ(q.scheme.kv.at(attn).v_scale, DecodeBF16(EncodeBF16(v))) << attn;
  }
}

// Copies `from` to `to` and overwrites byte `index` of tensor `name` in its shard file.
fs::path TamperedByte(const char* from, const char* to, const std::string& name, uint64_t index,
                      uint8_t value) {
  const fs::path dir = Root() / to;
  fs::remove_all(dir);
  fs::copy(Root() / from, dir);
  const Checkpoint ckpt = Checkpoint::Open(dir);
  const TensorInfo* info = ckpt.Find(name);
  EXPECT_NE(info, nullptr) << name;
  if (info == nullptr) return dir;
  std::fstream file(dir / info->file, std::ios::in | std::ios::out | std::ios::binary);
  file.seekp(static_cast<std::streamoff>(info->data_begin + index));
  file.put(static_cast<char>(value));
  return dir;
}

// Block scales are positive E4M3 / finite E8M0: a NaN or negative one is refused when the
// weight is read, naming the tensor, instead of silently giving NaN (or sign-flipped) weights.
TEST_F(QuantizedCheckpointTest, NanOrNegativeBlockScalesAreRefused) {
  const std::string down = "model.layers.1.mlp.down_proj";
  const std::string qkv = "model.layers.0.self_attn.k_proj";
  for (const auto& [from, module, code] :
       {std::tuple{"nvfp4_mo", down, uint8_t{0x7F}}, std::tuple{"nvfp4_ct", qkv, uint8_t{0xB8}},
        std::tuple{"mxfp8_mo", down, uint8_t{0xFF}}}) {
    const fs::path dir = TamperedByte(from, "bad_scale", module + ".weight_scale", 3, code);
    const QuantizedCheckpoint q = OpenQuantizedCheckpoint(dir);
    try {
      q.weights->Find(module + ".weight");
      ADD_FAILURE() << from << ": scale code " << int(code) << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(module + ".weight_scale"), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("block scale 3"), std::string::npos) << e.what();
    }
  }
}

TEST_F(QuantizedCheckpointTest, MalformedMetadataIsRefused) {
  std::string e = ErrorOf(Tampered("nvfp4_mo", "bad1", "hf_quant_config.json",
                                   [](auto& j) { j["quantization"]["quant_algo"] = "INT4_AWQ"; }));
  EXPECT_NE(e.find("hf_quant_config.json"), std::string::npos) << e;
  EXPECT_NE(e.find("'INT4_AWQ' is not simulated"), std::string::npos) << e;
  e = ErrorOf(Tampered("nvfp4_mo", "bad2", "hf_quant_config.json",
                       [](auto& j) { j["quantization"]["quant_algo"] = "FP8"; }));
  EXPECT_NE(e.find("tensors are NVFP4, the config declares FP8"), std::string::npos) << e;
  EXPECT_NE(e.find("model.layers.0."), std::string::npos) << e;
  e = ErrorOf(Tampered("nvfp4_mo", "bad3", "hf_quant_config.json",
                       [](auto& j) { j["quantization"]["kv_cache_quant_algo"] = "INT8"; }));
  EXPECT_NE(e.find("kv_cache_quant_algo 'INT8'"), std::string::npos) << e;
  e = ErrorOf(Tampered("nvfp4_ct", "bad4", "config.json",
                       [](auto& j) { j["quantization_config"]["quant_method"] = "gptq"; }));
  EXPECT_NE(e.find("config.json"), std::string::npos) << e;
  EXPECT_NE(e.find("quant_method 'gptq' unknown"), std::string::npos) << e;
  e = ErrorOf(Tampered("nvfp4_ct", "bad5", "config.json", [](auto& j) {
    j["quantization_config"]["ignore"].push_back("model.layers.1.mlp.down_proj");
  }));
  EXPECT_NE(e.find("model.layers.1.mlp.down_proj"), std::string::npos) << e;
  EXPECT_NE(e.find("config excludes it"), std::string::npos) << e;
  // A W4A4 checkpoint declared without its input_scale tensors: here a W4A16 one relabelled.
  e = ErrorOf(Tampered("w4a16_mo", "bad6", "hf_quant_config.json",
                       [](auto& j) { j["quantization"]["quant_algo"] = "NVFP4"; }));
  EXPECT_NE(e.find("input_scale"), std::string::npos) << e;
  EXPECT_NE(e.find("missing scale tensor"), std::string::npos) << e;
}

}  // namespace
}  // namespace qf
