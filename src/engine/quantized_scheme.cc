// What a quantized checkpoint quantizes, read from its configs and tensors: per Linear module the
// stored weight format and the run-time input quantizer, per attention module the FP8 KV scales.
//
// The tensors decide the weight format (as tests/tools/check_export.py reads them: a module is
// quantized iff "<m>.weight_scale" exists; its dtype tells NVFP4 (F8_E4M3), MX (U8) or FP8
// (F32)), the config decides the input quantizer, and the two must agree. Sources of the
// conventions: docs/EXPORT.md (both layouts, loader facts) and /work/shared/docs/PEERS-NOTES.md
// (vLLM inverts compressed-tensors' global scales at load).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "quantforge/checkpoint.h"
#include "quantforge/error.h"
#include "quantforge/eval.h"
#include "quantforge/formats.h"
#include "src/engine/quantized_internal.h"
#include "src/util/fnmatch.h"
#include "src/util/log.h"

namespace qf {
namespace {

using Json = nlohmann::json;

Json ReadJson(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open file for reading", {.path = path.string()});
  std::ostringstream text;
  text << in.rdbuf();
  Json json = Json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    throw Error("not a JSON object", {.path = path.string()});
  }
  return json;
}

std::string StrOr(const Json& object, const char* key, std::string fallback = {}) {
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : fallback;
}

// The declared quantization of one module: algorithm and input quantizer kind, or nullopt when
// the config leaves it unquantized.
struct Declared {
  std::string algo;
  InputQuantKind input = InputQuantKind::kNone;
};

// ---- Model Optimizer: hf_quant_config.json "quantization", or the inline config.json form.
struct ModelOptConfig {
  std::string quant_algo;
  Json quantized_layers = Json::object();
  std::vector<std::string> exclude;
  bool kv_fp8 = false;
};

ModelOptConfig ParseModelOpt(const Json& q, const std::string& path) {
  ModelOptConfig config;
  config.quant_algo = StrOr(q, "quant_algo");
  if (q.contains("quantized_layers") && q["quantized_layers"].is_object()) {
    config.quantized_layers = q["quantized_layers"];
  }
  for (const char* key : {"exclude_modules", "ignore"}) {
    if (q.contains(key) && q[key].is_array()) {
      for (const Json& p : q[key]) {
        if (p.is_string()) config.exclude.push_back(p.get<std::string>());
      }
    }
  }
  std::string kv = StrOr(q, "kv_cache_quant_algo");
  if (kv.empty() && q.contains("kv_cache_scheme") && q["kv_cache_scheme"].is_object()) {
    const Json& s = q["kv_cache_scheme"];
    kv = (s.value("num_bits", 0) == 8 && StrOr(s, "type") == "float") ? "FP8" : "unknown";
  }
  if (!kv.empty() && kv != "FP8") {
    throw Error("kv_cache_quant_algo '" + kv + "' is not simulated (only FP8)", {.path = path});
  }
  config.kv_fp8 = kv == "FP8";
  return config;
}

std::optional<Declared> ModelOptDeclared(const ModelOptConfig& config, const std::string& module,
                                         const std::string& path) {
  std::string algo = config.quant_algo;
  if (algo == "MIXED_PRECISION") {
    const auto it = config.quantized_layers.find(module);
    if (it == config.quantized_layers.end()) return std::nullopt;
    algo = StrOr(*it, "quant_algo");
  } else {
    for (const std::string& pattern : config.exclude) {
      if (FnMatch(pattern, module)) return std::nullopt;
    }
  }
  if (algo == "NVFP4") return Declared{algo, InputQuantKind::kNvfp4};
  if (algo == "W4A16_NVFP4") return Declared{algo, InputQuantKind::kNone};
  if (algo == "FP8") return Declared{algo, InputQuantKind::kFp8Static};
  if (algo == "FP8_PER_CHANNEL_PER_TOKEN") return Declared{algo, InputQuantKind::kFp8PerToken};
  if (algo == "MXFP8") return Declared{algo, InputQuantKind::kMxfp8};
  if (algo == "MXFP4") return Declared{algo, InputQuantKind::kMxfp4};
  throw Error("quant_algo '" + algo + "' is not simulated (NVFP4, W4A16_NVFP4, FP8, " +
                  "FP8_PER_CHANNEL_PER_TOKEN, MXFP8, MXFP4, MIXED_PRECISION)",
              {.path = path, .tensor = module});
}

// ---- compressed-tensors: config_groups with targets ("Linear", exact names, "re:" regexes).
// "re:" targets match as Python's re.match does (anchored at the start only), the way
// compressed-tensors' is_match applies them.
bool CtTargetMatches(const std::string& target, const std::string& module,
                     const std::string& path) {
  if (target.rfind("re:", 0) == 0) {
    try {
      return std::regex_search(module, std::regex(target.substr(3)),
                               std::regex_constants::match_continuous);
    } catch (const std::regex_error&) {
      throw Error("target '" + target + "' is not a valid regular expression", {.path = path});
    }
  }
  return target == module || target == "Linear";
}

std::optional<Declared> CtDeclared(const Json& qc, const std::string& module,
                                   const std::string& path) {
  if (qc.contains("ignore") && qc["ignore"].is_array()) {
    for (const Json& t : qc["ignore"]) {
      if (t.is_string() && t.get<std::string>() != "Linear" &&
          CtTargetMatches(t.get<std::string>(), module, path)) {
        return std::nullopt;
      }
    }
  }
  if (!qc.contains("config_groups") || !qc["config_groups"].is_object()) {
    throw Error("compressed-tensors quantization_config has no config_groups", {.path = path});
  }
  for (const auto& [group_name, group] : qc["config_groups"].items()) {
    bool matches = false;
    for (const Json& t : group.value("targets", Json::array())) {
      matches = matches || (t.is_string() && CtTargetMatches(t.get<std::string>(), module, path));
    }
    if (!matches) continue;
    const ErrorContext where{.path = path, .tensor = module};
    const Json weights = group.value("weights", Json());
    const Json inputs = group.value("input_activations", Json());
    if (!weights.is_object() || StrOr(weights, "type") != "float") {
      throw Error("config_groups." + group_name + ": weights are not a float scheme", where);
    }
    const int bits = weights.value("num_bits", 0);
    if (bits == 4) {
      if (inputs.is_null()) return Declared{"W4A16_NVFP4", InputQuantKind::kNone};
      if (inputs.value("num_bits", 0) == 4) return Declared{"NVFP4", InputQuantKind::kNvfp4};
    } else if (bits == 8) {
      const std::string strategy = StrOr(weights, "strategy");
      const std::string algo = strategy == "channel" ? "FP8_PER_CHANNEL" : "FP8";
      if (inputs.is_null()) return Declared{algo, InputQuantKind::kNone};
      if (inputs.value("num_bits", 0) == 8) {
        const bool dynamic = inputs.contains("dynamic") && inputs["dynamic"] == true;
        return Declared{algo, dynamic ? InputQuantKind::kFp8PerToken : InputQuantKind::kFp8Static};
      }
    }
    throw Error("config_groups." + group_name + ": scheme not simulated (NVFP4, NVFP4A16, FP8)",
                where);
  }
  return std::nullopt;
}

// The weight format the tensors hold (check_export.py's rule).
StoredWeightFormat DetectFormat(const Checkpoint& ckpt, const std::string& module,
                                const std::string& layout) {
  const std::string scale_name = module + ".weight_scale";
  const TensorInfo* scale = ckpt.Find(scale_name);
  const std::string weight_name =
      module + (layout == "compressed-tensors" && ckpt.Find(module + ".weight_packed")
                    ? ".weight_packed"
                    : ".weight");
  const TensorInfo* weight = ckpt.Find(weight_name);
  if (weight == nullptr) {
    throw Error("weight_scale without a weight tensor", {ckpt.Directory().string(), weight_name});
  }
  switch (scale->dtype) {
    case DType::kF8E4M3:
      return StoredWeightFormat::kNvfp4;
    case DType::kU8:
      return weight->dtype == DType::kU8 ? StoredWeightFormat::kMxfp4 : StoredWeightFormat::kMxfp8;
    case DType::kF32:
    case DType::kBF16:  // compressed-tensors keeps FP8 scales in the model's dtype
    case DType::kF16:
      return NumElements(scale->shape) == 1 ? StoredWeightFormat::kFp8PerTensor
                                            : StoredWeightFormat::kFp8PerChannel;
    default:
      throw Error("weight_scale dtype " + std::string(DTypeName(scale->dtype)) +
                      " is none of F8_E4M3 (NVFP4), U8 (MX E8M0), F32 / BF16 / F16 (FP8)",
                  {ckpt.Directory().string(), scale_name});
  }
}

// Does the declared algorithm name this tensor format?
bool Agrees(const Declared& declared, StoredWeightFormat format) {
  const std::string& a = declared.algo;
  switch (format) {
    case StoredWeightFormat::kNvfp4:
      return a == "NVFP4" || a == "W4A16_NVFP4";
    case StoredWeightFormat::kFp8PerTensor:
      return a == "FP8";
    case StoredWeightFormat::kFp8PerChannel:
      // quantforge writes weight-only per-tensor FP8 as FP8_PER_CHANNEL_PER_TOKEN (export.h).
      return a == "FP8_PER_CHANNEL_PER_TOKEN" || a == "FP8_PER_CHANNEL";
    case StoredWeightFormat::kMxfp8:
      return a == "MXFP8";
    case StoredWeightFormat::kMxfp4:
      return a == "MXFP4";
  }
  return false;
}

}  // namespace

namespace engine {

float ReadPositiveScalar(const Checkpoint& ckpt, const std::string& name) {
  const TensorInfo* info = ckpt.Find(name);
  if (info == nullptr) throw Error("missing scale tensor", {ckpt.Directory().string(), name});
  const bool f32 = info->dtype == DType::kF32;
  // BF16 / F16 scales are accepted too: compressed-tensors' converter casts k_scale / v_scale
  // to BF16 by default.
  if ((!f32 && info->dtype != DType::kBF16 && info->dtype != DType::kF16) ||
      NumElements(info->shape) != 1) {
    throw Error("expected one F32 (or BF16 / F16) value, found " +
                    std::string(DTypeName(info->dtype)) + " of " +
                    std::to_string(NumElements(info->shape)) + " elements",
                {ckpt.Directory().string(), name});
  }
  const std::byte* data = ckpt.View(*info).data.data();
  float value;
  if (f32) {
    std::memcpy(&value, data, 4);
  } else {
    uint16_t bits;
    std::memcpy(&bits, data, 2);
    value = info->dtype == DType::kBF16 ? DecodeBF16(bits) : DecodeFP16(bits);
  }
  if (!(value > 0.0f) || !std::isfinite(value)) {
    throw Error("scale must be positive and finite, found " + std::to_string(value),
                {ckpt.Directory().string(), name});
  }
  return value;
}

QuantizationScheme ReadScheme(const std::filesystem::path& dir, const Checkpoint& ckpt) {
  QuantizationScheme scheme;
  const std::filesystem::path config_path = dir / "config.json";
  const std::filesystem::path hf_path = dir / "hf_quant_config.json";
  Json qc;
  std::string qc_path = config_path.string();
  if (std::filesystem::exists(config_path)) {
    const Json config = ReadJson(config_path);
    if (config.contains("quantization_config")) qc = config["quantization_config"];
  }
  std::optional<ModelOptConfig> modelopt;
  if (std::filesystem::exists(hf_path)) {
    // vLLM reads the legacy file first; it wins over the inline form.
    const Json hf = ReadJson(hf_path);
    if (!hf.contains("quantization") || !hf["quantization"].is_object()) {
      throw Error("no \"quantization\" object", {.path = hf_path.string()});
    }
    qc_path = hf_path.string();
    modelopt = ParseModelOpt(hf["quantization"], qc_path);
    scheme.layout = "modelopt";
  } else if (qc.is_object()) {
    const std::string method = StrOr(qc, "quant_method");
    if (method == "modelopt") {
      modelopt = ParseModelOpt(qc, qc_path);
      scheme.layout = "modelopt";
    } else if (method == "compressed-tensors") {
      scheme.layout = "compressed-tensors";
      const std::string format = StrOr(qc, "format");
      if (format == "pack-quantized" || format == "int-quantized" || format == "marlin-24") {
        throw Error("compressed-tensors format '" + format + "' is not simulated",
                    {.path = qc_path});
      }
    } else {
      throw Error("quantization_config.quant_method '" + method +
                      "' unknown (modelopt, compressed-tensors)",
                  {.path = qc_path});
    }
  } else if (!qc.is_null()) {
    throw Error("quantization_config is not an object", {.path = qc_path});
  }

  const std::string dir_name = ckpt.Directory().string();
  std::vector<std::string> kv_attn;  // attention modules, from their k_proj weights
  bool kv_tensors = false;
  for (const TensorInfo& info : ckpt.Tensors()) {
    const std::string& name = info.name;
    if (name.ends_with(".k_scale") || name.ends_with(".v_scale")) kv_tensors = true;
    for (const char* leaf : {".k_proj.weight", ".k_proj.weight_packed"}) {
      if (name.ends_with(leaf)) kv_attn.push_back(name.substr(0, name.size() - strlen(leaf)));
    }
    if (!name.ends_with(".weight_scale")) continue;
    const std::string module = name.substr(0, name.size() - strlen(".weight_scale"));
    if (scheme.layout == "none") {
      throw Error("quantized tensor in a checkpoint without quantization_config", {dir_name, name});
    }
    const std::optional<Declared> declared =
        modelopt ? ModelOptDeclared(*modelopt, module, qc_path) : CtDeclared(qc, module, qc_path);
    if (!declared) {
      throw Error("module is quantized but the config excludes it (or does not list it)",
                  {qc_path, module});
    }
    LinearQuantization linear;
    linear.algo = declared->algo;
    linear.weight = DetectFormat(ckpt, module, scheme.layout);
    if (!Agrees(*declared, linear.weight)) {
      throw Error("tensors are " + std::string(StoredWeightFormatName(linear.weight)) +
                      ", the config declares " + declared->algo,
                  {qc_path, module});
    }
    linear.input.kind = declared->input;
    const bool ct = scheme.layout == "compressed-tensors";
    if (linear.input.kind == InputQuantKind::kNvfp4) {
      const float s =
          ReadPositiveScalar(ckpt, module + (ct ? ".input_global_scale" : ".input_scale"));
      // compressed-tensors stores the divisor; vLLM inverts it in F32 at load.
      linear.input.input_scale = ct ? 1.0f / s : s;
    } else if (linear.input.kind == InputQuantKind::kFp8Static) {
      linear.input.input_scale = ReadPositiveScalar(ckpt, module + ".input_scale");
    }
    scheme.linears.emplace(module, std::move(linear));
  }

  const bool kv_declared = (modelopt && modelopt->kv_fp8) ||
                           (!modelopt && qc.is_object() && qc.contains("kv_cache_scheme") &&
                            !qc["kv_cache_scheme"].is_null());
  if (!modelopt && kv_declared) {
    const Json& s = qc["kv_cache_scheme"];
    if (!s.is_object() || s.value("num_bits", 0) != 8 || StrOr(s, "type") != "float") {
      throw Error("kv_cache_scheme is not FP8 (num_bits 8, type float)", {.path = qc_path});
    }
  }
  if (kv_tensors && !kv_declared) {
    throw Error("k_scale / v_scale tensors present but no KV-cache quantization declared",
                {.path = qc_path});
  }
  if (kv_declared) {
    int64_t missing = 0;
    for (const std::string& attn : kv_attn) {
      KvQuantization kv;
      // Model Optimizer's names first, then the "<attn>.k_scale" form vLLM also remaps.
      for (const auto& [names, scale] :
           {std::pair{std::array{attn + ".k_proj.k_scale", attn + ".k_scale"}, &kv.k_scale},
            std::pair{std::array{attn + ".v_proj.v_scale", attn + ".v_scale"}, &kv.v_scale}}) {
        const auto it = std::find_if(names.begin(), names.end(),
                                     [&](const std::string& n) { return ckpt.Find(n) != nullptr; });
        if (it == names.end()) {
          ++missing;
        } else {
          *scale = ReadPositiveScalar(ckpt, *it);
        }
      }
      scheme.kv.emplace(attn, kv);
    }
    if (missing > 0) {
      log::Warn(
          "{}: FP8 KV cache declared but {} k_scale / v_scale tensors missing; using 1.0 "
          "for them, as vLLM does",
          dir_name, missing);
    }
  }
  return scheme;
}

}  // namespace engine
}  // namespace qf
