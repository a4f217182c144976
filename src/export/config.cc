// Quantization configs of both layouts: Model Optimizer's hf_quant_config.json and its inline
// config.json form, and compressed-tensors' quantization_config. Key names, key order and the
// values follow what the producers write and what vLLM reads (docs/EXPORT.md cites each):
//   - Model Optimizer quant_utils.get_quant_config / process_layer_quant_config (legacy file) and
//     convert_hf_config.convert_hf_quant_config_format (inline, "flat" form);
//   - vLLM modelopt.py ModelOptQuantConfigBase.from_config (both forms) and, for NVFP4 in the
//     legacy form, the required keys group_size / kv_cache_quant_algo / exclude_modules;
//   - compressed-tensors QuantizationConfig / QuantizationScheme / QuantizationArgs (pydantic
//     models with extra="forbid": no key outside their fields may appear in a scheme).
#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>

#include "fmt/core.h"
#include "quantforge/error.h"
#include "quantforge/export.h"
#include "quantforge/version.h"

namespace qf {
namespace {

using Json = nlohmann::ordered_json;

Json Producer() { return {{"name", "quantforge"}, {"version", kVersion}}; }

// One per-layer entry of quantized_layers: {"quant_algo"} plus "group_size" for block formats.
Json LayerConfig(QuantAlgo algo) {
  Json layer = {{"quant_algo", QuantAlgoName(algo)}};
  if (QuantAlgoGroupSize(algo) > 0) layer["group_size"] = QuantAlgoGroupSize(algo);
  return layer;
}

std::vector<std::string> QuantizedNames(const ExportManifest& manifest) {
  std::vector<std::string> names;
  for (const QuantizedModule& m : manifest.quantized) names.push_back(m.name);
  return names;
}

struct ModuleGroup {
  QuantAlgo algo;
  bool has_input_scale;
  std::vector<std::string> names;
};

// Distinct per-layer configs in order of first appearance, each with its modules. Model
// Optimizer's configs key on the algorithm alone; compressed-tensors' also on the input scale.
std::vector<ModuleGroup> GroupModules(const ExportManifest& manifest, bool by_input_scale) {
  std::vector<ModuleGroup> groups;
  for (const QuantizedModule& m : manifest.quantized) {
    const bool input = by_input_scale && m.has_input_scale;
    // Model Optimizer's configs name the algorithm as written (ExportedAlgo).
    const QuantAlgo algo =
        by_input_scale ? m.algo : ExportedAlgo(m.algo, m.has_input_scale, ExportFormat::kModelOpt);
    auto it = std::find_if(groups.begin(), groups.end(), [&](const ModuleGroup& g) {
      return g.algo == algo && g.has_input_scale == input;
    });
    if (it == groups.end()) {
      groups.push_back({algo, input, {}});
      it = groups.end() - 1;
    }
    it->names.push_back(m.name);
  }
  return groups;
}

// Model Optimizer's config group for one quant_algo
// (convert_hf_config._quant_algo_to_group_config).
Json ModelOptGroup(QuantAlgo algo) {
  const auto args = [](int bits, int group) {
    Json a = {{"dynamic", false}, {"num_bits", bits}, {"type", "float"}};
    if (group > 0) a["group_size"] = group;
    return a;
  };
  switch (algo) {
    case QuantAlgo::kFp8:
      return {{"input_activations", args(8, 0)}, {"weights", args(8, 0)}};
    case QuantAlgo::kFp8PerChannel: {
      Json w = args(8, 0);
      w["strategy"] = "channel";
      return {{"input_activations", args(8, 0)}, {"weights", w}};
    }
    case QuantAlgo::kNvfp4:
      return {{"input_activations", args(4, 16)}, {"weights", args(4, 16)}};
    case QuantAlgo::kW4A16Nvfp4:
      return {{"weights", args(4, 16)}};
    case QuantAlgo::kMxfp8:
      return {{"input_activations", args(8, 32)}, {"weights", args(8, 32)}};
    case QuantAlgo::kMxfp4:
      // No mapping in Model Optimizer; it records the algorithm alone.
      return {{"quant_algo", QuantAlgoName(algo)}};
  }
  return {};
}

// The legacy hf_quant_config.json object ("producer" + "quantization"); null when nothing is
// quantized (Model Optimizer then writes no file and no quantization_config).
Json HfQuantConfig(const ExportManifest& manifest) {
  if (manifest.quantized.empty() && !manifest.kv_cache_fp8) return nullptr;
  const auto groups = GroupModules(manifest, /*by_input_scale=*/false);
  // Key order as Model Optimizer builds it: quant_algo, kv_cache_quant_algo, then group_size /
  // exclude_modules, or quantized_layers.
  Json q = {{"quant_algo", nullptr}, {"kv_cache_quant_algo", nullptr}};
  if (groups.size() > 1) {
    q["quant_algo"] = "MIXED_PRECISION";
    Json layers = Json::object();
    for (const QuantizedModule& m : manifest.quantized) {
      layers[m.name] =
          LayerConfig(ExportedAlgo(m.algo, m.has_input_scale, ExportFormat::kModelOpt));
    }
    q["quantized_layers"] = std::move(layers);
    // No exclude_modules in this mode: an absent module stays unquantized.
  } else {
    if (groups.size() == 1) {
      const Json layer = LayerConfig(groups[0].algo);
      for (auto it = layer.begin(); it != layer.end(); ++it) q[it.key()] = it.value();
    }
    const std::vector<std::string> quantized = QuantizedNames(manifest);
    q["exclude_modules"] = CompressExcludeModules(manifest.unquantized, quantized);
  }
  if (manifest.kv_cache_fp8) q["kv_cache_quant_algo"] = "FP8";
  return {{"producer", Producer()}, {"quantization", std::move(q)}};
}

Json ModelOptInline(const ExportManifest& manifest) {
  const Json legacy = HfQuantConfig(manifest);
  if (legacy.is_null()) return nullptr;
  const Json& q = legacy["quantization"];
  const Json algo = q["quant_algo"];
  Json out = Json::object();
  // convert_hf_quant_config_format writes config_groups only for FP8, NVFP4, W4A16_NVFP4 (targets
  // ["Linear"]) and MIXED_PRECISION (targets = module names, plus a copy of quantized_layers).
  if (algo == "FP8" || algo == "NVFP4" || algo == "W4A16_NVFP4") {
    Json group = ModelOptGroup(GroupModules(manifest, /*by_input_scale=*/false).front().algo);
    group["targets"] = Json::array({"Linear"});
    out["config_groups"] = {{"group_0", std::move(group)}};
  } else if (algo == "MIXED_PRECISION") {
    Json groups = Json::object();
    size_t idx = 0;
    for (ModuleGroup& g : GroupModules(manifest, /*by_input_scale=*/false)) {
      Json group = ModelOptGroup(g.algo);
      std::sort(g.names.begin(), g.names.end());
      group["targets"] = g.names;
      groups[fmt::format("group_{}", idx++)] = std::move(group);
    }
    out["config_groups"] = std::move(groups);
    out["quantized_layers"] = q["quantized_layers"];
  }
  out["ignore"] = q.contains("exclude_modules") ? q["exclude_modules"] : Json::array();
  if (!algo.is_null()) out["quant_algo"] = algo;
  if (manifest.kv_cache_fp8) {
    out["kv_cache_scheme"] = {{"dynamic", false}, {"num_bits", 8}, {"type", "float"}};
  }
  out["producer"] = legacy["producer"];
  out["quant_method"] = "modelopt";
  return out;
}

// compressed-tensors QuantizationArgs with every field (sorted keys, as Hugging Face serialises).
Json CtArgs(int bits, std::string_view strategy, Json dynamic, Json group_size, Json observer,
            Json scale_dtype) {
  return {{"actorder", nullptr},
          {"block_structure", nullptr},
          {"dynamic", dynamic},
          {"group_size", group_size},
          {"num_bits", bits},
          {"observer", observer},
          {"observer_kwargs", Json::object()},
          {"scale_dtype", scale_dtype},
          {"strategy", strategy},
          {"symmetric", true},
          {"type", "float"},
          {"zp_dtype", nullptr}};
}

// One scheme (compressed-tensors presets NVFP4 / NVFP4A16 / FP8, quant_scheme.py) and its format.
std::pair<Json, std::string> CtScheme(QuantAlgo algo, bool has_input) {
  Json weights, inputs = nullptr;
  std::string format;
  switch (algo) {
    case QuantAlgo::kNvfp4:
    case QuantAlgo::kW4A16Nvfp4:
      weights = CtArgs(4, "tensor_group", false, 16, "memoryless_minmax", "torch.float8_e4m3fn");
      if (algo == QuantAlgo::kNvfp4) {
        // Per-block activation scales at run time ("local"), the static global from calibration.
        inputs = CtArgs(4, "tensor_group", "local", 16, "static_minmax", "torch.float8_e4m3fn");
      }
      format = "nvfp4-pack-quantized";
      break;
    case QuantAlgo::kFp8:
    case QuantAlgo::kFp8PerChannel:
      weights = CtArgs(8, algo == QuantAlgo::kFp8 ? "tensor" : "channel", false, nullptr,
                       "memoryless_minmax", nullptr);
      if (has_input) inputs = CtArgs(8, "tensor", false, nullptr, "static_minmax", nullptr);
      // FloatQuantizationCompressor needs input activations; weight-only FP8 is naive-quantized.
      format = has_input ? "float-quantized" : "naive-quantized";
      break;
    default:
      throw Error(fmt::format("{} has no compressed-tensors export; use --format modelopt",
                              QuantAlgoName(algo)));
  }
  return {Json{{"format", format},
               {"input_activations", inputs},
               {"output_activations", nullptr},
               {"targets", Json::array()},
               {"weights", weights}},
          format};
}

Json CompressedTensorsConfig(const ExportManifest& manifest) {
  std::vector<ModuleGroup> groups = GroupModules(manifest, /*by_input_scale=*/true);
  Json config_groups = Json::object();
  std::set<std::string> formats;
  size_t idx = 0;
  for (ModuleGroup& g : groups) {
    auto [scheme, format] = CtScheme(g.algo, g.has_input_scale);
    formats.insert(format);
    if (groups.size() == 1) {
      scheme["targets"] = Json::array({"Linear"});
    } else {
      // One scheme per layer kind: list the modules (vLLM matches exact names and resolves
      // fused shards through its packed-modules mapping).
      std::sort(g.names.begin(), g.names.end());
      scheme["targets"] = g.names;
    }
    config_groups[fmt::format("group_{}", idx++)] = std::move(scheme);
  }
  std::vector<std::string> ignore = manifest.unquantized;
  std::sort(ignore.begin(), ignore.end());
  Json kv = nullptr;
  if (manifest.kv_cache_fp8) kv = CtArgs(8, "tensor", false, nullptr, "static_minmax", nullptr);
  return {{"config_groups", std::move(config_groups)},
          {"format", formats.size() == 1 ? *formats.begin() : std::string("mixed-precision")},
          {"global_compression_ratio", nullptr},
          {"ignore", ignore},
          {"kv_cache_scheme", kv},
          {"quant_method", "compressed-tensors"},
          {"quantization_status", "compressed"}};
}

Json QuantizationConfig(const ExportManifest& manifest, ExportFormat format) {
  return format == ExportFormat::kModelOpt ? ModelOptInline(manifest)
                                           : CompressedTensorsConfig(manifest);
}

std::string ReadText(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open file for reading", {.path = path.string()});
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteText(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.flush();
  if (!out) throw Error("cannot write file", {.path = path.string()});
}

}  // namespace

std::optional<std::string> HfQuantConfigJson(const ExportManifest& manifest) {
  const Json config = HfQuantConfig(manifest);
  if (config.is_null()) return std::nullopt;
  return config.dump(4) + "\n";  // Model Optimizer: json.dump(..., indent=4)
}

std::string QuantizationConfigJson(const ExportManifest& manifest, ExportFormat format) {
  return QuantizationConfig(manifest, format).dump(2);
}

std::string UpdateConfigJson(std::string_view original_config_json, const ExportManifest& manifest,
                             ExportFormat format) {
  Json config = Json::parse(original_config_json, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    throw Error("config.json is not a JSON object", {.path = "config.json"});
  }
  Json quantization = QuantizationConfig(manifest, format);
  if (quantization.is_null()) {
    config.erase("quantization_config");
  } else {
    config["quantization_config"] = std::move(quantization);
  }
  return config.dump(2) + "\n";
}

void WriteQuantConfigFiles(const std::filesystem::path& out_dir,
                           const std::filesystem::path& original_config,
                           const ExportManifest& manifest, ExportFormat format) {
  std::string original = "{}";
  if (std::filesystem::exists(original_config)) original = ReadText(original_config);
  std::string updated;
  try {
    updated = UpdateConfigJson(original, manifest, format);
  } catch (const Error& e) {
    throw Error(e.problem(), {.path = original_config.string()});
  }
  WriteText(out_dir / "config.json", updated);
  if (format == ExportFormat::kModelOpt) {
    if (std::optional<std::string> hf = HfQuantConfigJson(manifest)) {
      WriteText(out_dir / "hf_quant_config.json", *hf);
    }
  }
}

}  // namespace qf
