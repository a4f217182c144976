// Quantization configs against golden JSON written by hand from the producers and loaders:
//   - Model Optimizer quant_utils.process_layer_quant_config: single format -> quant_algo,
//     kv_cache_quant_algo, group_size (block formats only), exclude_modules; several -> quant_algo
//     "MIXED_PRECISION" + quantized_layers and no exclude_modules;
//   - convert_hf_config.convert_hf_quant_config_format: the inline config.json form;
//   - vLLM modelopt.py: NVFP4 in hf_quant_config.json must carry group_size, kv_cache_quant_algo
//     and exclude_modules (null allowed); the flat form reads quant_algo / ignore /
//     kv_cache_scheme;
//   - compressed-tensors QuantizationConfig / presets NVFP4, NVFP4A16, FP8.
// JSON is compared parsed (ordered), so key order is checked too.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "quantforge/error.h"
#include "quantforge/export.h"

namespace qf {
namespace {

using Json = nlohmann::ordered_json;

// One Llama layer: attention and MLP quantized with `algo`, lm_head left unquantized.
ExportManifest LlamaLayer(QuantAlgo algo, bool kv) {
  ExportManifest m;
  const bool input = algo == QuantAlgo::kNvfp4 || algo == QuantAlgo::kFp8;
  for (const char* leaf : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                           "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}) {
    m.quantized.push_back({std::string("model.layers.0.") + leaf, algo, input});
  }
  m.unquantized = {"lm_head"};
  m.kv_cache_fp8 = kv;
  return m;
}

TEST(ExportConfig, Nvfp4HfQuantConfig) {
  // The legacy file vLLM reads first. Key order is Model Optimizer's (quant_algo,
  // kv_cache_quant_algo, then the per-layer keys, then exclude_modules).
  const Json want = Json::parse(R"({
    "producer": {"name": "quantforge", "version": "0.1.0"},
    "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8", "group_size": 16,
                     "exclude_modules": ["lm_head"]}})");
  EXPECT_EQ(Json::parse(*HfQuantConfigJson(LlamaLayer(QuantAlgo::kNvfp4, true))), want);
}

TEST(ExportConfig, Nvfp4WithoutKvKeepsTheRequiredKeys) {
  // vLLM: "NVFP4 quantization requires the following fields" group_size, kv_cache_quant_algo,
  // exclude_modules: present even when null / empty.
  ExportManifest m = LlamaLayer(QuantAlgo::kNvfp4, false);
  m.unquantized.clear();
  const Json q = Json::parse(*HfQuantConfigJson(m))["quantization"];
  ASSERT_TRUE(q.contains("kv_cache_quant_algo"));
  EXPECT_TRUE(q["kv_cache_quant_algo"].is_null());
  EXPECT_EQ(q["exclude_modules"], Json::array());
  EXPECT_EQ(q["group_size"], 16);
}

TEST(ExportConfig, Nvfp4InlineModelOpt) {
  // convert_hf_quant_config_format for NVFP4: one group targeting Linear, ignore = exclude_modules,
  // kv_cache_scheme for FP8 KV, producer, quant_method last.
  const Json want = Json::parse(R"({
    "config_groups": {"group_0": {
      "input_activations": {"dynamic": false, "num_bits": 4, "type": "float", "group_size": 16},
      "weights": {"dynamic": false, "num_bits": 4, "type": "float", "group_size": 16},
      "targets": ["Linear"]}},
    "ignore": ["lm_head"],
    "quant_algo": "NVFP4",
    "kv_cache_scheme": {"dynamic": false, "num_bits": 8, "type": "float"},
    "producer": {"name": "quantforge", "version": "0.1.0"},
    "quant_method": "modelopt"})");
  EXPECT_EQ(Json::parse(QuantizationConfigJson(LlamaLayer(QuantAlgo::kNvfp4, true),
                                               ExportFormat::kModelOpt)),
            want);
}

TEST(ExportConfig, W4A16Nvfp4) {
  // Weight-only NVFP4 (input quantizers disabled): quant_algo W4A16_NVFP4, a weights-only group.
  const ExportManifest m = LlamaLayer(QuantAlgo::kW4A16Nvfp4, false);
  const Json hf = Json::parse(*HfQuantConfigJson(m));
  EXPECT_EQ(hf["quantization"], Json::parse(R"({"quant_algo": "W4A16_NVFP4",
      "kv_cache_quant_algo": null, "group_size": 16, "exclude_modules": ["lm_head"]})"));
  const Json inline_config = Json::parse(QuantizationConfigJson(m, ExportFormat::kModelOpt));
  EXPECT_EQ(inline_config["config_groups"], Json::parse(R"({"group_0": {
      "weights": {"dynamic": false, "num_bits": 4, "type": "float", "group_size": 16},
      "targets": ["Linear"]}})"));
  EXPECT_FALSE(inline_config.contains("kv_cache_scheme"));
}

TEST(ExportConfig, Fp8HasNoGroupSize) {
  // FP8's per-layer config is {"quant_algo": "FP8"}: no group_size key.
  const Json hf = Json::parse(*HfQuantConfigJson(LlamaLayer(QuantAlgo::kFp8, true)));
  EXPECT_EQ(hf["quantization"], Json::parse(R"({"quant_algo": "FP8", "kv_cache_quant_algo": "FP8",
      "exclude_modules": ["lm_head"]})"));
  const Json inline_config = Json::parse(
      QuantizationConfigJson(LlamaLayer(QuantAlgo::kFp8, true), ExportFormat::kModelOpt));
  EXPECT_EQ(inline_config["config_groups"]["group_0"]["weights"],
            Json::parse(R"({"dynamic": false, "num_bits": 8, "type": "float"})"));
}

TEST(ExportConfig, Fp8WeightOnlyIsDeclaredPerChannel) {
  // Weight-only FP8 is written per channel (ExportedAlgo): FP8_PER_CHANNEL_PER_TOKEN, no
  // group_size, and no config_groups inline (convert_hf_quant_config_format has none for it).
  ExportManifest m = LlamaLayer(QuantAlgo::kFp8, false);
  for (QuantizedModule& q : m.quantized) q.has_input_scale = false;
  const Json hf = Json::parse(*HfQuantConfigJson(m));
  EXPECT_EQ(hf["quantization"], Json::parse(R"({"quant_algo": "FP8_PER_CHANNEL_PER_TOKEN",
                            "kv_cache_quant_algo": null, "exclude_modules": ["lm_head"]})"));
  const Json inline_config = Json::parse(QuantizationConfigJson(m, ExportFormat::kModelOpt));
  EXPECT_FALSE(inline_config.contains("config_groups"));
  EXPECT_EQ(inline_config["quant_algo"], "FP8_PER_CHANNEL_PER_TOKEN");
  // compressed-tensors: naive-quantized, per-tensor weights, no input activations.
  const Json ct = Json::parse(QuantizationConfigJson(m, ExportFormat::kCompressedTensors));
  EXPECT_EQ(ct["format"], "naive-quantized");
  EXPECT_EQ(ct["config_groups"]["group_0"]["weights"]["strategy"], "tensor");
  EXPECT_TRUE(ct["config_groups"]["group_0"]["input_activations"].is_null());
}

TEST(ExportConfig, MixedPrecision) {
  // NVFP4 experts and FP8 attention: quant_algo MIXED_PRECISION, per-layer quantized_layers in
  // checkpoint order, no exclude_modules; inline: one config group per distinct layer config,
  // targets sorted, plus a copy of quantized_layers.
  ExportManifest m;
  m.quantized = {{"model.layers.0.mlp.experts.0.up_proj", QuantAlgo::kNvfp4, true},
                 {"model.layers.0.self_attn.q_proj", QuantAlgo::kFp8, true},
                 {"model.layers.0.mlp.experts.0.down_proj", QuantAlgo::kNvfp4, true}};
  m.unquantized = {"lm_head", "model.layers.0.mlp.gate"};
  const Json want_layers = Json::parse(R"({
      "model.layers.0.mlp.experts.0.up_proj": {"quant_algo": "NVFP4", "group_size": 16},
      "model.layers.0.self_attn.q_proj": {"quant_algo": "FP8"},
      "model.layers.0.mlp.experts.0.down_proj": {"quant_algo": "NVFP4", "group_size": 16}})");
  const Json hf = Json::parse(*HfQuantConfigJson(m));
  EXPECT_EQ(hf["quantization"], (Json{{"quant_algo", "MIXED_PRECISION"},
                                      {"kv_cache_quant_algo", nullptr},
                                      {"quantized_layers", want_layers}}));
  const Json inline_config = Json::parse(QuantizationConfigJson(m, ExportFormat::kModelOpt));
  EXPECT_EQ(inline_config, Json::parse(R"({
    "config_groups": {
      "group_0": {
        "input_activations": {"dynamic": false, "num_bits": 4, "type": "float", "group_size": 16},
        "weights": {"dynamic": false, "num_bits": 4, "type": "float", "group_size": 16},
        "targets": ["model.layers.0.mlp.experts.0.down_proj", "model.layers.0.mlp.experts.0.up_proj"]},
      "group_1": {
        "input_activations": {"dynamic": false, "num_bits": 8, "type": "float"},
        "weights": {"dynamic": false, "num_bits": 8, "type": "float"},
        "targets": ["model.layers.0.self_attn.q_proj"]}},
    "quantized_layers": )" + want_layers.dump() +
                                       R"(,
    "ignore": [],
    "quant_algo": "MIXED_PRECISION",
    "producer": {"name": "quantforge", "version": "0.1.0"},
    "quant_method": "modelopt"})"));
}

TEST(ExportConfig, CompressedTensorsNvfp4) {
  // llm-compressor's NVFP4 preset as saved: tensor_group strategy, group 16, E4M3 scales; inputs
  // dynamic "local" (per-block at run time, static global); format nvfp4-pack-quantized. vLLM's
  // _is_fp4a4_nvfp4 reads strategy, symmetric, group_size, type and num_bits of both.
  const Json weights = Json::parse(R"({"actorder": null, "block_structure": null,
      "dynamic": false, "group_size": 16, "num_bits": 4, "observer": "memoryless_minmax",
      "observer_kwargs": {}, "scale_dtype": "torch.float8_e4m3fn", "strategy": "tensor_group",
      "symmetric": true, "type": "float", "zp_dtype": null})");
  Json inputs = weights;
  inputs["dynamic"] = "local";
  inputs["observer"] = "static_minmax";
  const Json kv = Json::parse(R"({"actorder": null, "block_structure": null, "dynamic": false,
      "group_size": null, "num_bits": 8, "observer": "static_minmax", "observer_kwargs": {},
      "scale_dtype": null, "strategy": "tensor", "symmetric": true, "type": "float",
      "zp_dtype": null})");
  const Json want = {{"config_groups",
                      {{"group_0",
                        {{"format", "nvfp4-pack-quantized"},
                         {"input_activations", inputs},
                         {"output_activations", nullptr},
                         {"targets", {"Linear"}},
                         {"weights", weights}}}}},
                     {"format", "nvfp4-pack-quantized"},
                     {"global_compression_ratio", nullptr},
                     {"ignore", {"lm_head"}},
                     {"kv_cache_scheme", kv},
                     {"quant_method", "compressed-tensors"},
                     {"quantization_status", "compressed"}};
  EXPECT_EQ(Json::parse(QuantizationConfigJson(LlamaLayer(QuantAlgo::kNvfp4, true),
                                               ExportFormat::kCompressedTensors)),
            want);
  // No hf_quant_config.json content changes with the format: it is only written for modelopt.
}

TEST(ExportConfig, CompressedTensorsFp8AndMixed) {
  // FP8 W8A8: float-quantized, per-tensor weights and static per-tensor inputs.
  const Json fp8 = Json::parse(
      QuantizationConfigJson(LlamaLayer(QuantAlgo::kFp8, false), ExportFormat::kCompressedTensors));
  EXPECT_EQ(fp8["format"], "float-quantized");
  EXPECT_EQ(fp8["config_groups"]["group_0"]["weights"]["strategy"], "tensor");
  EXPECT_EQ(fp8["config_groups"]["group_0"]["input_activations"]["dynamic"], false);
  EXPECT_TRUE(fp8["kv_cache_scheme"].is_null());
  // NVFP4 + FP8: mixed-precision, one group per kind with explicit targets and its own format.
  ExportManifest m;
  m.quantized = {{"a.q_proj", QuantAlgo::kFp8, true}, {"a.up_proj", QuantAlgo::kW4A16Nvfp4, false}};
  const Json mixed = Json::parse(QuantizationConfigJson(m, ExportFormat::kCompressedTensors));
  EXPECT_EQ(mixed["format"], "mixed-precision");
  EXPECT_EQ(mixed["config_groups"]["group_0"]["targets"], Json::array({"a.q_proj"}));
  EXPECT_EQ(mixed["config_groups"]["group_0"]["format"], "float-quantized");
  EXPECT_EQ(mixed["config_groups"]["group_1"]["format"], "nvfp4-pack-quantized");
  EXPECT_TRUE(mixed["config_groups"]["group_1"]["input_activations"].is_null());
  // MX cannot be written as compressed-tensors.
  m.quantized = {{"a.q_proj", QuantAlgo::kMxfp8, false}};
  EXPECT_THROW(QuantizationConfigJson(m, ExportFormat::kCompressedTensors), Error);
}

TEST(ExportConfig, UpdateConfigKeepsEverythingElse) {
  const std::string original = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
      "torch_dtype": "bfloat16", "quantization_config": {"old": 1}, "vocab_size": 256})";
  const Json updated = Json::parse(
      UpdateConfigJson(original, LlamaLayer(QuantAlgo::kNvfp4, false), ExportFormat::kModelOpt));
  Json want = Json::parse(original);
  want["quantization_config"] = Json::parse(
      QuantizationConfigJson(LlamaLayer(QuantAlgo::kNvfp4, false), ExportFormat::kModelOpt));
  EXPECT_EQ(updated, want);  // same keys, same order, torch_dtype untouched
  EXPECT_EQ(
      UpdateConfigJson("{\"a\": 1}", LlamaLayer(QuantAlgo::kFp8, false), ExportFormat::kModelOpt)
          .substr(0, 8),
      "{\n  \"a\":");  // 2-space indent
  EXPECT_THROW(UpdateConfigJson("[1, 2]", ExportManifest{}, ExportFormat::kModelOpt), Error);
  EXPECT_THROW(UpdateConfigJson("{not json", ExportManifest{}, ExportFormat::kModelOpt), Error);
}

TEST(ExportConfig, NothingQuantizedWritesNoConfig) {
  // Model Optimizer writes neither hf_quant_config.json nor quantization_config then.
  ExportManifest m;
  m.unquantized = {"lm_head"};
  EXPECT_EQ(HfQuantConfigJson(m), std::nullopt);
  EXPECT_FALSE(
      Json::parse(UpdateConfigJson("{\"quantization_config\": 1}", m, ExportFormat::kModelOpt))
          .contains("quantization_config"));
}

}  // namespace
}  // namespace qf
