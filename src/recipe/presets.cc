// Built-in presets by Model Optimizer's names, and the entry points that load recipes: by preset
// name, from a YAML file, or several joined with '+'.
//
// The presets are data: each name points at a YAML file under src/recipe/presets/configs/
// (embedded at build time), written like ModelOpt's configs/ptq/presets/{model,kv}/*.yaml: a
// disable-all entry, the format units, then default_disabled_quantizers (and, for Mamba-MoE,
// mamba_moe_disabled_quantizers). They go through the same parser as user files.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "quantforge/error.h"
#include "src/recipe/recipe_internal.h"
#include "src/recipe/yaml_doc.h"

namespace qf {
namespace recipe_internal {
namespace {

constexpr PresetEntry kPresets[] = {
    {"FP8_2D_BLOCKWISE_WEIGHT_ONLY_CFG", "configs/ptq/presets/model/fp8_2d_blockwise_weight_only"},
    {"FP8_AFFINE_KV_CFG", "configs/ptq/presets/kv/fp8_affine"},
    {"FP8_DEFAULT_CFG", "configs/ptq/presets/model/fp8"},
    {"FP8_KV_CFG", "configs/ptq/presets/kv/fp8"},
    {"FP8_PER_CHANNEL_PER_TOKEN_CFG", "configs/ptq/presets/model/fp8_per_channel_per_token"},
    {"INT4_AWQ_CFG", "configs/ptq/presets/model/int4_awq"},
    {"INT4_BLOCKWISE_WEIGHT_ONLY_CFG", "configs/ptq/presets/model/int4_blockwise_weight_only"},
    {"INT8_DEFAULT_CFG", "configs/ptq/presets/model/int8"},
    {"INT8_SMOOTHQUANT_CFG", "configs/ptq/presets/model/int8_smoothquant"},
    {"INT8_WEIGHT_ONLY_CFG", "configs/ptq/presets/model/int8_weight_only"},
    {"MAMBA_MOE_FP8_AGGRESSIVE_CFG", "configs/ptq/presets/model/mamba_moe_fp8_aggressive"},
    {"MAMBA_MOE_FP8_CONSERVATIVE_CFG", "configs/ptq/presets/model/mamba_moe_fp8_conservative"},
    {"MAMBA_MOE_NVFP4_AGGRESSIVE_CFG", "configs/ptq/presets/model/mamba_moe_nvfp4_aggressive"},
    {"MAMBA_MOE_NVFP4_CONSERVATIVE_CFG", "configs/ptq/presets/model/mamba_moe_nvfp4_conservative"},
    {"MXFP4_DEFAULT_CFG", "configs/ptq/presets/model/mxfp4"},
    {"MXFP4_MLP_WEIGHT_ONLY_CFG", "configs/ptq/presets/model/mxfp4_mlp_weight_only"},
    {"MXFP6_DEFAULT_CFG", "configs/ptq/presets/model/mxfp6"},
    {"MXFP8_DEFAULT_CFG", "configs/ptq/presets/model/mxfp8"},
    {"MXINT8_DEFAULT_CFG", "configs/ptq/presets/model/mxint8"},
    {"NVFP4_AFFINE_KV_CFG", "configs/ptq/presets/kv/nvfp4_affine"},
    {"NVFP4_AWQ_CLIP_CFG", "configs/ptq/presets/model/nvfp4_awq_clip"},
    {"NVFP4_AWQ_FULL_CFG", "configs/ptq/presets/model/nvfp4_awq_full"},
    {"NVFP4_AWQ_LITE_CFG", "configs/ptq/presets/model/nvfp4_awq_lite"},
    {"NVFP4_DEFAULT_CFG", "configs/ptq/presets/model/nvfp4"},
    {"NVFP4_EXPERTS_ONLY_CFG", "configs/ptq/presets/model/nvfp4_experts_only"},
    {"NVFP4_FOUR_OVER_SIX_CFG", "configs/ptq/presets/model/nvfp4_four_over_six"},
    {"NVFP4_FP8_MHA_CONFIG", "configs/ptq/presets/model/nvfp4_fp8_mha"},
    {"NVFP4_KV_CFG", "configs/ptq/presets/kv/nvfp4"},
    {"NVFP4_KV_ROTATE_CFG", "configs/ptq/presets/kv/nvfp4_rotate"},
    {"NVFP4_MLP_ONLY_CFG", "configs/ptq/presets/model/nvfp4_mlp_only"},
    {"NVFP4_MLP_WEIGHT_ONLY_CFG", "configs/ptq/presets/model/nvfp4_mlp_weight_only"},
    {"NVFP4_OMLP_ONLY_CFG", "configs/ptq/presets/model/nvfp4_omlp_only"},
    {"NVFP4_SVDQUANT_DEFAULT_CFG", "configs/ptq/presets/model/nvfp4_svdquant"},
    {"NVFP4_W4A4_WEIGHT_LOCAL_HESSIAN_CFG",
     "configs/ptq/presets/model/nvfp4_w4a4_weight_local_hessian"},
    {"NVFP4_W4A4_WEIGHT_MSE_FP8_SWEEP_CFG",
     "configs/ptq/presets/model/nvfp4_w4a4_weight_mse_fp8_sweep"},
    {"W4A16_NVFP4_CFG", "configs/ptq/presets/model/w4a16_nvfp4"},
    {"W4A8_AWQ_BETA_CFG", "configs/ptq/presets/model/w4a8_awq_beta"},
    {"W4A8_MXFP4_FP8_CFG", "configs/ptq/presets/model/w4a8_mxfp4_fp8"},
    {"W4A8_NVFP4_FP8_CFG", "configs/ptq/presets/model/w4a8_nvfp4_fp8"},
};

std::string Upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::span<const PresetEntry> PresetTable() { return kPresets; }

const PresetEntry* FindPreset(std::string_view name) {
  const std::string upper = Upper(name);
  for (const PresetEntry& entry : kPresets) {
    if (entry.name == upper || std::string(entry.name) == upper + "_CFG" ||
        std::string(entry.name) == upper + "_CONFIG") {
      return &entry;
    }
  }
  return nullptr;
}

const BuiltinConfig* FindBuiltinConfig(std::string_view path) {
  for (std::string_view ext : {".yaml", ".yml"}) {
    if (path.size() > ext.size() && path.substr(path.size() - ext.size()) == ext) {
      path.remove_suffix(ext.size());
      break;
    }
  }
  for (const BuiltinConfig& config : BuiltinConfigs()) {
    if (config.path == path) return &config;
  }
  return nullptr;
}

}  // namespace recipe_internal

using recipe_internal::YamlLoader;

Recipe ParseRecipe(std::string_view yaml_text, std::string_view source_name) {
  YamlLoader loader;
  const std::string name(source_name);
  std::filesystem::path dir = std::filesystem::path(name).parent_path();
  const recipe_internal::YamlDoc& doc = loader.Load(yaml_text, name, dir);
  return recipe_internal::ParseRecipeDocument(loader, doc, name);
}

namespace {

Recipe LoadOne(std::string_view spec) {
  YamlLoader loader;
  if (const recipe_internal::PresetEntry* preset = recipe_internal::FindPreset(spec)) {
    const recipe_internal::BuiltinConfig* config =
        recipe_internal::FindBuiltinConfig(preset->config_path);
    QF_CHECK(config != nullptr);
    const auto& doc = loader.Load(config->text, "builtin:" + std::string(config->path), {});
    return recipe_internal::ParseRecipeDocument(loader, doc, std::string(preset->name));
  }
  const std::filesystem::path path{std::string(spec)};
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec)) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("cannot open recipe file", {path.string()});
    std::ostringstream text;
    text << in.rdbuf();
    const auto& doc =
        loader.Load(text.str(), path.string(), std::filesystem::absolute(path).parent_path());
    return recipe_internal::ParseRecipeDocument(loader, doc, path.string());
  }
  // ModelOpt config paths resolve too (e.g. configs/ptq/presets/kv/fp8_cast).
  if (const recipe_internal::BuiltinConfig* config = recipe_internal::FindBuiltinConfig(spec)) {
    const auto& doc = loader.Load(config->text, "builtin:" + std::string(config->path), {});
    return recipe_internal::ParseRecipeDocument(loader, doc, std::string(config->path));
  }
  throw Error("recipe '" + std::string(spec) +
              "' is neither a built-in preset (see PresetNames(), e.g. NVFP4_DEFAULT_CFG) nor a "
              "readable file");
}

}  // namespace

Recipe LoadRecipe(std::string_view name_or_path) {
  if (name_or_path.empty()) throw Error("empty recipe name");
  // A whole spec that names a preset or an existing file wins over splitting at '+'.
  std::error_code ec;
  if (name_or_path.find('+') == std::string_view::npos ||
      recipe_internal::FindPreset(name_or_path) ||
      std::filesystem::is_regular_file(std::filesystem::path(std::string(name_or_path)), ec)) {
    return LoadOne(name_or_path);
  }
  Recipe recipe;
  size_t begin = 0;
  bool first = true;
  while (begin <= name_or_path.size()) {
    size_t end = name_or_path.find('+', begin);
    if (end == std::string_view::npos) end = name_or_path.size();
    const std::string_view part = name_or_path.substr(begin, end - begin);
    if (part.empty()) throw Error("recipe '" + std::string(name_or_path) + "' has an empty part");
    recipe = first ? LoadOne(part) : WithKvCache(std::move(recipe), LoadOne(part));
    first = false;
    begin = end + 1;
  }
  return recipe;
}

std::vector<std::string> PresetNames() {
  std::vector<std::string> names;
  for (const recipe_internal::PresetEntry& entry : recipe_internal::PresetTable()) {
    names.emplace_back(entry.name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace qf
