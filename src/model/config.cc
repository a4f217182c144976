// config.json -> ModelConfig. The supported architectures are a table (data), each row saying
// which optional parts the family has; defaults follow transformers' configuration classes.
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "quantforge/error.h"
#include "quantforge/model.h"

namespace qf {
namespace {

struct ArchitectureTraits {
  std::string_view name;
  bool always_qkv_bias;         // Qwen2Attention: q/k/v Linear(bias=True) regardless of config
  bool honours_attention_bias;  // LlamaConfig.attention_bias / mlp_bias apply
  // Qwen2 has sliding_window in every config but applies it only with use_sliding_window.
  bool sliding_window_needs_flag;
};

constexpr ArchitectureTraits kArchitectures[] = {
    {"LlamaForCausalLM", false, true, false},
    {"MistralForCausalLM", false, false, false},
    {"Qwen2ForCausalLM", true, false, true},
};

using Json = nlohmann::json;

int64_t GetInt(const Json& json, const char* key, const std::string& path,
               std::optional<int64_t> fallback = std::nullopt) {
  const auto it = json.find(key);
  if (it == json.end() || it->is_null()) {
    if (fallback) return *fallback;
    throw Error(std::string("config.json has no '") + key + "' (required)", {path});
  }
  if (!it->is_number_integer()) {
    throw Error(std::string("'") + key + "' must be an integer, found " + it->dump(), {path});
  }
  return it->get<int64_t>();
}

double GetDouble(const Json& json, const char* key, const std::string& path, double fallback) {
  const auto it = json.find(key);
  if (it == json.end() || it->is_null()) return fallback;
  if (!it->is_number()) {
    throw Error(std::string("'") + key + "' must be a number, found " + it->dump(), {path});
  }
  return it->get<double>();
}

bool GetBool(const Json& json, const char* key, bool fallback) {
  const auto it = json.find(key);
  if (it == json.end() || !it->is_boolean()) return fallback;
  return it->get<bool>();
}

std::string SupportedList() {
  std::string list;
  for (const auto& arch : kArchitectures) {
    if (!list.empty()) list += ", ";
    list += arch.name;
  }
  return list;
}

RopeScaling ParseRopeScaling(const Json& json, const std::string& path) {
  RopeScaling scaling;
  const auto it = json.find("rope_scaling");
  if (it == json.end() || it->is_null()) return scaling;
  if (!it->is_object()) throw Error("'rope_scaling' must be an object or null", {path});
  // transformers accepts both "rope_type" (new) and "type" (old).
  std::string type;
  if (it->contains("rope_type"))
    type = (*it)["rope_type"].get<std::string>();
  else if (it->contains("type"))
    type = (*it)["type"].get<std::string>();
  if (type == "default" || type.empty()) return scaling;
  scaling.factor = GetDouble(*it, "factor", path, 1.0);
  if (type == "linear") {
    scaling.kind = RopeScalingKind::kLinear;
  } else if (type == "llama3") {
    scaling.kind = RopeScalingKind::kLlama3;
    scaling.low_freq_factor = GetDouble(*it, "low_freq_factor", path, 1.0);
    scaling.high_freq_factor = GetDouble(*it, "high_freq_factor", path, 4.0);
    scaling.original_max_position_embeddings =
        GetInt(*it, "original_max_position_embeddings", path, 8192);
    if (!(scaling.high_freq_factor > scaling.low_freq_factor)) {
      throw Error("rope_scaling llama3 needs high_freq_factor > low_freq_factor", {path});
    }
  } else {
    throw Error("unsupported rope_scaling type '" + type + "' (supported: default, linear, llama3)",
                {path});
  }
  if (!(scaling.factor > 0.0)) throw Error("rope_scaling factor must be positive", {path});
  return scaling;
}

}  // namespace

std::vector<std::string_view> SupportedArchitectures() {
  std::vector<std::string_view> names;
  for (const auto& arch : kArchitectures) names.push_back(arch.name);
  return names;
}

ModelConfig ParseModelConfig(std::string_view json_text, const std::string& path) {
  Json json;
  try {
    json = Json::parse(json_text);
  } catch (const Json::exception& e) {
    throw Error(std::string("config.json is not valid JSON: ") + e.what(), {path});
  }
  if (!json.is_object()) throw Error("config.json must hold an object", {path});
  ModelConfig config;
  const auto archs = json.find("architectures");
  if (archs == json.end() || !archs->is_array() || archs->empty() || !(*archs)[0].is_string()) {
    throw Error("config.json has no 'architectures' list; supported: " + SupportedList(), {path});
  }
  config.architecture = (*archs)[0].get<std::string>();
  const ArchitectureTraits* traits = nullptr;
  for (const auto& arch : kArchitectures) {
    if (arch.name == config.architecture) traits = &arch;
  }
  if (traits == nullptr) {
    throw Error(
        "unsupported architecture '" + config.architecture + "'; supported: " + SupportedList(),
        {path});
  }

  config.hidden_size = GetInt(json, "hidden_size", path);
  config.intermediate_size = GetInt(json, "intermediate_size", path);
  config.num_hidden_layers = GetInt(json, "num_hidden_layers", path);
  config.num_attention_heads = GetInt(json, "num_attention_heads", path);
  config.num_key_value_heads =
      GetInt(json, "num_key_value_heads", path, config.num_attention_heads);
  config.vocab_size = GetInt(json, "vocab_size", path);
  config.max_position_embeddings = GetInt(json, "max_position_embeddings", path);
  if (config.num_attention_heads <= 0 || config.hidden_size <= 0) {
    throw Error("hidden_size and num_attention_heads must be positive", {path});
  }
  config.head_dim = GetInt(json, "head_dim", path, config.hidden_size / config.num_attention_heads);
  config.rms_norm_eps = GetDouble(json, "rms_norm_eps", path, 1e-6);
  config.rope_theta = GetDouble(json, "rope_theta", path, 10000.0);
  config.rope_scaling = ParseRopeScaling(json, path);
  config.tie_word_embeddings = GetBool(json, "tie_word_embeddings", false);
  if (traits->always_qkv_bias) config.qkv_bias = true;
  if (traits->honours_attention_bias) {
    config.qkv_bias = config.o_bias = GetBool(json, "attention_bias", false);
    config.mlp_bias = GetBool(json, "mlp_bias", false);
  }
  if (!traits->sliding_window_needs_flag || GetBool(json, "use_sliding_window", false)) {
    config.sliding_window = GetInt(json, "sliding_window", path, 0);
  }
  if (json.contains("bos_token_id") && json["bos_token_id"].is_number_integer()) {
    config.bos_token_id = json["bos_token_id"].get<int64_t>();
  }
  if (json.contains("eos_token_id") && json["eos_token_id"].is_number_integer()) {
    config.eos_token_id = json["eos_token_id"].get<int64_t>();
  }
  if (const auto act = json.find("hidden_act");
      act != json.end() && act->is_string() && *act != "silu") {
    throw Error("unsupported hidden_act '" + act->get<std::string>() + "' (supported: silu)",
                {path});
  }

  const struct {
    const char* name;
    int64_t value;
  } sizes[] = {{"intermediate_size", config.intermediate_size},
               {"num_hidden_layers", config.num_hidden_layers},
               {"num_key_value_heads", config.num_key_value_heads},
               {"head_dim", config.head_dim},
               {"vocab_size", config.vocab_size},
               {"max_position_embeddings", config.max_position_embeddings}};
  for (const auto& size : sizes) {
    if (size.value <= 0) {
      throw Error(
          std::string("'") + size.name + "' must be positive, found " + std::to_string(size.value),
          {path});
    }
  }
  if (config.num_attention_heads % config.num_key_value_heads != 0) {
    throw Error("num_attention_heads (" + std::to_string(config.num_attention_heads) +
                    ") must be a multiple of num_key_value_heads (" +
                    std::to_string(config.num_key_value_heads) + ")",
                {path});
  }
  if (config.head_dim % 2 != 0) {
    throw Error("head_dim must be even for RoPE, found " + std::to_string(config.head_dim), {path});
  }
  if (config.sliding_window < 0) throw Error("sliding_window must not be negative", {path});
  return config;
}

ModelConfig LoadModelConfig(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / "config.json";
  std::ifstream file(path, std::ios::binary);
  if (!file)
    throw Error("cannot open config.json (is this a Hugging Face model directory?)",
                {path.string()});
  std::stringstream text;
  text << file.rdbuf();
  return ParseModelConfig(text.str(), path.string());
}

}  // namespace qf
