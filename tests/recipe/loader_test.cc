// The YAML loader on well-formed input: num_bits spellings, block_sizes, algorithm forms,
// ModelOpt recipe files with imports of built-in configs and of files next to the recipe,
// multi-document snippets, and the legacy dict forms of quant_cfg.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "quantforge/error.h"
#include "quantforge/recipe.h"

namespace qf {
namespace {

QuantizerConfig FirstCfg(const std::string& cfg_yaml) {
  const Recipe recipe =
      ParseRecipe("quant_cfg:\n  - {quantizer_name: '*', cfg: " + cfg_yaml + "}\n", "cfg.yaml");
  EXPECT_EQ(recipe.rules.size(), 1u);
  return *recipe.rules.at(0).cfg;
}

TEST(LoaderTest, NumBitsSpellings) {
  EXPECT_EQ(FirstCfg("{num_bits: e4m3}").num_bits, NumBits::kE4M3);
  EXPECT_EQ(FirstCfg("{num_bits: E4M3}").num_bits, NumBits::kE4M3);
  EXPECT_EQ(FirstCfg("{num_bits: '(4,3)'}").num_bits, NumBits::kE4M3);
  EXPECT_EQ(FirstCfg("{num_bits: '(4, 3)'}").num_bits, NumBits::kE4M3);
  EXPECT_EQ(FirstCfg("{num_bits: [4, 3]}").num_bits, NumBits::kE4M3);
  EXPECT_EQ(FirstCfg("{num_bits: e2m1}").num_bits, NumBits::kE2M1);
  EXPECT_EQ(FirstCfg("{num_bits: [2, 1]}").num_bits, NumBits::kE2M1);
  EXPECT_EQ(FirstCfg("{num_bits: e5m2}").num_bits, NumBits::kE5M2);
  EXPECT_EQ(FirstCfg("{num_bits: e3m2}").num_bits, NumBits::kE3M2);
  const QuantizerConfig int4 = FirstCfg("{num_bits: 4}");
  EXPECT_EQ(int4.num_bits, NumBits::kInt);
  EXPECT_EQ(int4.int_bits, 4);
  EXPECT_EQ(FirstCfg("{num_bits: 8}").int_bits, 8);
}

TEST(LoaderTest, BlockSizesAndFlags) {
  const QuantizerConfig cfg = FirstCfg(
      "{num_bits: e2m1, block_sizes: {-1: 16, type: static, scale_bits: e4m3, four_over_six: "
      "true}}");
  ASSERT_TRUE(cfg.block_sizes);
  EXPECT_TRUE(cfg.block_sizes->has_last_dim);
  EXPECT_EQ(cfg.block_sizes->last_dim.value_or(0), 16);
  EXPECT_EQ(cfg.block_sizes->type, ScaleType::kStatic);
  EXPECT_EQ(cfg.block_sizes->scale_bits, ScaleBits::kE4M3);
  EXPECT_TRUE(cfg.block_sizes->four_over_six);
  const QuantFormat format = cfg.Format(QuantizerRole::kWeight);
  EXPECT_EQ(format.kind, QuantKind::kNvfp4);
  EXPECT_TRUE(format.static_block_scales);
  EXPECT_TRUE(format.four_over_six);
  EXPECT_EQ(format.block_size, 16);
  EXPECT_EQ(FormatToString(format), "nvfp4(static,4o6)");

  // scale_bits as a tuple string; type defaults to static; `-1: null` is per-token.
  EXPECT_EQ(FirstCfg("{num_bits: e2m1, block_sizes: {-1: 32, scale_bits: '(8,0)'}}")
                .Format(QuantizerRole::kWeight)
                .kind,
            QuantKind::kMxfp4);
  const QuantizerConfig per_token =
      FirstCfg("{num_bits: e4m3, type: dynamic, block_sizes: {-1: null}}");
  EXPECT_TRUE(per_token.block_sizes->has_last_dim);
  EXPECT_FALSE(per_token.block_sizes->last_dim);
  EXPECT_EQ(per_token.Format(QuantizerRole::kInput).kind, QuantKind::kFp8PerToken);
  EXPECT_FALSE(per_token.Format(QuantizerRole::kInput).needs_calibration);
  // scale_block_sizes is legal ModelOpt, kept, and refused at format time.
  const QuantizerConfig dq = FirstCfg(
      "{num_bits: 4, block_sizes: {-1: 128, type: static, scale_bits: 8, scale_block_sizes: {-1: "
      "256}}}");
  EXPECT_TRUE(dq.block_sizes->has_scale_block_sizes);
}

TEST(LoaderTest, UnsupportedButLegalAttributes) {
  const QuantizerConfig cfg =
      FirstCfg("{num_bits: e4m3, bias: {-2: null, type: static}, rotate: true}");
  const QuantFormat format = cfg.Format(QuantizerRole::kKvCache);
  EXPECT_EQ(format.kind, QuantKind::kUnsupported);
  EXPECT_NE(format.reason.find("bias"), std::string::npos) << format.reason;
  EXPECT_NE(format.reason.find("rotate"), std::string::npos) << format.reason;
  // Harmless switches parse and change nothing.
  EXPECT_EQ(
      FirstCfg(
          "{num_bits: e4m3, fake_quant: true, calibrator: max, trt_high_precision_dtype: Half}")
          .Format(QuantizerRole::kWeight)
          .kind,
      QuantKind::kFp8PerTensor);
}

TEST(LoaderTest, AlgorithmForms) {
  auto algos = [](const std::string& text) {
    return ParseRecipe("algorithm: " + text + "\nquant_cfg: []\n", "a.yaml").algorithms;
  };
  EXPECT_EQ(algos("max").at(0).method, AlgorithmMethod::kMax);
  EXPECT_EQ(algos("null").at(0).method, AlgorithmMethod::kNone);
  EXPECT_EQ(algos("").at(0).method, AlgorithmMethod::kNone);
  const AlgorithmConfig mse = algos(
      "{method: mse, fp8_scale_sweep: false, start_multiplier: 1.0, stop_multiplier: 1.5, "
      "step_size: 0.5}")[0];
  EXPECT_EQ(mse.method, AlgorithmMethod::kMse);
  EXPECT_EQ(mse.mse.start_multiplier, 1.0);
  EXPECT_EQ(mse.mse.stop_multiplier, 1.5);
  EXPECT_EQ(mse.mse.step_size, 0.5);
  EXPECT_FALSE(mse.mse.fp8_scale_sweep);
  EXPECT_TRUE(algos("{method: local_hessian}")[0].mse.fp8_scale_sweep);  // its default
  const AlgorithmConfig gptq =
      algos("{method: gptq, percdamp: 0.05, block_size: 64, act_order: true}")[0];
  EXPECT_EQ(gptq.gptq.perc_damp, 0.05);
  EXPECT_EQ(gptq.gptq.block_size, 64);
  EXPECT_TRUE(gptq.gptq.act_order);
  const std::vector<AlgorithmConfig> stack =
      algos("[{method: mse, layerwise: {enable: true}}, gptq]");
  ASSERT_EQ(stack.size(), 2u);
  EXPECT_EQ(stack[1].method, AlgorithmMethod::kGptq);
  EXPECT_EQ(stack[0].ignored_keys, std::vector<std::string>{"layerwise"});
  // No algorithm key: ModelOpt's default, max.
  EXPECT_EQ(ParseRecipe("quant_cfg: []\n", "a.yaml").algorithm().method, AlgorithmMethod::kMax);
  for (const char* name : {"smoothquant", "awq_lite", "awq_clip", "awq_full", "svdquant",
                           "nvfp4_act_headroom", "lsq"}) {
    EXPECT_FALSE(IsAlgorithmSupported(algos(name)[0].method)) << name;
  }
}

// The Nemotron-3 Ultra recipe layout: imports of ModelOpt's numerics units, metadata, quantize.
TEST(LoaderTest, ModelOptRecipeWithImports) {
  const Recipe recipe = ParseRecipe(R"(
imports:
  nvfp4_four_over_six: configs/numerics/nvfp4_four_over_six
  nvfp4: configs/numerics/nvfp4
  fp8: configs/numerics/fp8
metadata:
  recipe_type: ptq
  description: routed experts 4/6 NVFP4
quantize:
  algorithm: {method: mse, fp8_scale_sweep: false, start_multiplier: 1.0, stop_multiplier: 1.5, step_size: 0.5}
  quant_cfg:
    - quantizer_name: '*'
      enable: false
    - quantizer_name: '*mixer.experts.*weight_quantizer'
      enable: true
      cfg: {$import: nvfp4_four_over_six}
    - quantizer_name: '*mixer.experts.*input_quantizer'
      cfg: {$import: nvfp4}
    - quantizer_name: '*mixer.shared_experts.*weight_quantizer'
      cfg:
        $import: fp8
        axis: 0
)",
                                    "ultra.yaml");
  EXPECT_EQ(recipe.description, "routed experts 4/6 NVFP4");
  ASSERT_EQ(recipe.rules.size(), 4u);
  const QuantFormat weight = recipe.Resolve("b.layers.1.mixer.experts.0.up_proj.weight_quantizer")
                                 .Format(QuantizerRole::kWeight);
  EXPECT_EQ(FormatToString(weight), "nvfp4(static,4o6)");
  const QuantizerConfig input =
      recipe.Resolve("b.layers.1.mixer.experts.0.up_proj.input_quantizer");
  EXPECT_EQ(FormatToString(input.Format(QuantizerRole::kInput)), "nvfp4(dynamic)");
  EXPECT_EQ(input.effective_bits.value_or(0), 4.5);  // from the imported unit
  // Inline keys override imported ones: fp8 + axis 0 = per-channel.
  EXPECT_EQ(recipe.Resolve("b.layers.1.mixer.shared_experts.up_proj.weight_quantizer")
                .Format(QuantizerRole::kWeight)
                .kind,
            QuantKind::kFp8PerChannel);
}

class TempDir {
 public:
  TempDir()
      : path_(std::filesystem::temp_directory_path() /
              ("qf_recipe_test_" + std::to_string(::getpid()) + "_" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    std::filesystem::create_directories(path_ / "units");
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::filesystem::path Write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name) << text;
    return path_ / name;
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

TEST(LoaderTest, FileImportsRelativeToRecipeAndMultiDocumentSnippets) {
  TempDir dir;
  dir.Write("units/my_attn.yaml", R"(# two documents: imports, then a list body
imports:
  fp8: configs/numerics/fp8
---
- quantizer_name: '*self_attn*weight_quantizer'
  cfg: {$import: fp8}
)");
  dir.Write("units/off.yml", "quantizer_name: '*lm_head*'\nenable: false\n");
  const std::filesystem::path recipe_path = dir.Write("recipe.yaml", R"(
imports:
  my_attn: units/my_attn
  off: units/off
  base: configs/ptq/units/base_disable_all
quantize:
  quant_cfg:
    - $import: base
    - $import: my_attn
    - $import: off
)");
  const Recipe recipe = LoadRecipe(recipe_path.string());
  ASSERT_EQ(recipe.rules.size(), 3u);
  EXPECT_NE(recipe.rules[1].source.find("my_attn.yaml:5"), std::string::npos)
      << recipe.rules[1].source;
  EXPECT_EQ(
      recipe.Resolve("m.self_attn.q_proj.weight_quantizer").Format(QuantizerRole::kWeight).kind,
      QuantKind::kFp8PerTensor);
  EXPECT_FALSE(recipe.Resolve("lm_head.weight_quantizer").enabled);
}

// ModelOpt resolves `huggingface/...` imports against the modelopt_recipes/ root: an ancestor
// of the importing file.
TEST(LoaderTest, ImportsResolveAgainstAncestorFolders) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "units/deep/ptq");
  dir.Write("units/deep/ptq/snippet.yaml", "- {quantizer_name: '*', enable: false}\n");
  const std::filesystem::path recipe =
      dir.Write("units/deep/ptq/recipe.yaml",
                "imports: {s: units/deep/ptq/snippet}\nquant_cfg:\n  - $import: s\n");
  EXPECT_EQ(LoadRecipe(recipe.string()).rules.size(), 1u);
}

TEST(LoaderTest, LegacyDictForms) {
  const Recipe recipe = ParseRecipe(R"(
quant_cfg:
  default: {enable: false}
  '*weight_quantizer': {num_bits: e4m3, axis: null}
  '*input_quantizer': {num_bits: e4m3, enable: false}
  nn.Embedding:
    '*': {enable: false}
)",
                                    "legacy.yaml");
  ASSERT_EQ(recipe.rules.size(), 4u);
  EXPECT_EQ(recipe.rules[0].quantizer_name, "*");
  EXPECT_FALSE(recipe.rules[0].cfg);
  EXPECT_TRUE(recipe.Resolve("x.weight_quantizer").enabled);
  EXPECT_FALSE(recipe.Resolve("x.input_quantizer").enabled);
  EXPECT_EQ(recipe.rules[3].parent_class.value_or(""), "nn.Embedding");
  // Single-key entries inside a list are the other legacy form.
  const Recipe list_form = ParseRecipe(
      "quant_cfg:\n  - {'*': {enable: false}}\n  - {'*lm_head*': {num_bits: 8}}\n", "l.yaml");
  ASSERT_EQ(list_form.rules.size(), 2u);
  EXPECT_EQ(list_form.Resolve("lm_head.weight_quantizer").int_bits, 8);
}

TEST(LoaderTest, EmptyCfgWithEnableFalseIsDropped) {
  const Recipe recipe =
      ParseRecipe("quant_cfg:\n  - {quantizer_name: '*', cfg: {}, enable: false}\n", "e.yaml");
  ASSERT_EQ(recipe.rules.size(), 1u);
  EXPECT_FALSE(recipe.rules[0].cfg);
  EXPECT_EQ(recipe.rules[0].enable, false);
}

TEST(LoaderTest, BuiltinConfigPathsAndCaseInsensitivePresetNames) {
  EXPECT_EQ(LoadRecipe("mamba_moe_nvfp4_aggressive").name, "MAMBA_MOE_NVFP4_AGGRESSIVE_CFG");
  EXPECT_EQ(LoadRecipe("nvfp4_default").name, "NVFP4_DEFAULT_CFG");
  const Recipe cast = LoadRecipe("NVFP4_DEFAULT_CFG+configs/ptq/presets/kv/fp8_cast");
  const QuantFormat kv =
      cast.Resolve("m.self_attn.k_bmm_quantizer", "attention").Format(QuantizerRole::kKvCache);
  EXPECT_EQ(kv.kind, QuantKind::kFp8Kv);
  EXPECT_TRUE(kv.use_constant_amax);
  EXPECT_FALSE(kv.needs_calibration);
  EXPECT_THROW(LoadRecipe("NO_SUCH_CFG"), Error);
  EXPECT_THROW(LoadRecipe("NVFP4_DEFAULT_CFG+"), Error);
}

}  // namespace
}  // namespace qf
