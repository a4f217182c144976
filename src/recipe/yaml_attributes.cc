// The attribute (`cfg`) and `algorithm` schemas: ModelOpt QuantizerAttributeConfig and the
// QuantizeAlgorithmConfig subclasses, key by key. Unknown keys are errors (typo protection, as
// ModelOpt's pydantic models forbid extras); legal keys quantforge cannot honour are recorded in
// QuantizerConfig::unsupported_attributes or AlgorithmConfig::ignored_keys.
#include <algorithm>
#include <array>
#include <cctype>
#include <string>

#include "src/recipe/yaml_doc.h"

namespace qf::recipe_internal {
namespace {

struct FloatFormat {
  int exponent_bits;
  int mantissa_bits;
  NumBits num_bits;
};
// ModelOpt's allowed (E, M) pairs for num_bits.
constexpr std::array<FloatFormat, 8> kFloatFormats = {{
    {4, 3, NumBits::kE4M3},
    {5, 2, NumBits::kE5M2},
    {2, 1, NumBits::kE2M1},
    {1, 2, NumBits::kE1M2},
    {0, 3, NumBits::kE0M3},
    {3, 0, NumBits::kE3M0},
    {3, 2, NumBits::kE3M2},
    {2, 3, NumBits::kE2M3},
}};

// Parses "eEmM" / "EeMm", "(E,M)", "(E, M)" or a two-element YAML list into (E, M). Returns false
// when the text is none of these shapes.
bool ParseExponentMantissa(const YAML::Node& node, int* e, int* m) {
  if (node.IsSequence()) {
    if (node.size() != 2) return false;
    int64_t values[2];
    for (int i = 0; i < 2; ++i) {
      if (!node[i].IsScalar() || !YAML::convert<int64_t>::decode(node[i], values[i])) return false;
      if (values[i] < 0 || values[i] > 16) return false;
    }
    *e = static_cast<int>(values[0]);
    *m = static_cast<int>(values[1]);
    return true;
  }
  if (!node.IsScalar()) return false;
  std::string text;
  for (char c : node.Scalar()) {
    if (c != ' ') text.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  auto digits = [&](size_t& i, int* out) {
    const size_t start = i;
    int value = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) && i - start < 2) {
      value = value * 10 + (text[i++] - '0');
    }
    *out = value;
    return i > start;
  };
  size_t i = 0;
  if (!text.empty() && text[0] == 'e') {  // ^[Ee](\d+)[Mm](\d+)$
    ++i;
    if (!digits(i, e) || i >= text.size() || text[i++] != 'm' || !digits(i, m)) return false;
    return i == text.size();
  }
  if (!text.empty() && text[0] == '(') {  // a Python tuple written as a string
    ++i;
    if (!digits(i, e) || i >= text.size() || text[i++] != ',' || !digits(i, m)) return false;
    return i + 1 == text.size() && text[i] == ')';
  }
  return false;
}

void ParseNumBits(const YamlDoc& doc, const YAML::Node& node, QuantizerConfig* cfg) {
  int64_t bits = 0;
  if (node.IsScalar() && YAML::convert<int64_t>::decode(node, bits)) {
    if (bits < 1 || bits > 32)
      Fail(doc, node, "num_bits " + std::to_string(bits) + " is out of range");
    cfg->num_bits = NumBits::kInt;
    cfg->int_bits = static_cast<int>(bits);
    return;
  }
  int e = 0, m = 0;
  if (!ParseExponentMantissa(node, &e, &m)) {
    Fail(doc, node,
         "unknown num_bits format" +
             (node.IsScalar() ? " '" + node.Scalar() + "'" : std::string()) +
             ": expected an integer, eXmY (e2m1, e4m3), (E,M) or [E, M]");
  }
  for (const FloatFormat& format : kFloatFormats) {
    if (format.exponent_bits == e && format.mantissa_bits == m) {
      cfg->num_bits = format.num_bits;
      return;
    }
  }
  Fail(doc, node,
       "unknown num_bits format E" + std::to_string(e) + "M" + std::to_string(m) +
           ": ModelOpt allows (4,3) (5,2) (2,1) (1,2) (0,3) (3,0) (3,2) (2,3)");
}

ScaleBits ParseScaleBits(const YamlDoc& doc, const YAML::Node& node) {
  if (node.IsNull()) return ScaleBits::kNone;
  int64_t bits = 0;
  if (node.IsScalar() && YAML::convert<int64_t>::decode(node, bits) && bits >= 1 && bits <= 32) {
    return ScaleBits::kOther;  // integer scales (ModelOpt double quantisation)
  }
  int e = 0, m = 0;
  if (ParseExponentMantissa(node, &e, &m)) {
    if (e == 4 && m == 3) return ScaleBits::kE4M3;
    if (e == 8 && m == 0) return ScaleBits::kE8M0;
    for (const FloatFormat& format : kFloatFormats) {
      if (format.exponent_bits == e && format.mantissa_bits == m) return ScaleBits::kOther;
    }
  }
  Fail(doc, node,
       "unknown scale_bits format" +
           (node.IsScalar() ? " '" + node.Scalar() + "'" : std::string()) +
           ": expected e4m3, e8m0, another (E,M) pair or an integer");
}

ScaleType ParseScaleType(const YamlDoc& doc, const YAML::Node& node) {
  const std::string type = ReadString(doc, node, "type");
  if (type == "static") return ScaleType::kStatic;
  if (type == "dynamic") return ScaleType::kDynamic;
  Fail(doc, node, "unknown type '" + type + "': expected static or dynamic");
}

constexpr std::string_view kBlockKeys[] = {
    "-1", "-2", "...", "type", "scale_bits", "scale_block_sizes", "four_over_six"};

BlockSizes ParseBlockSizes(YamlLoader& loader, const YamlDoc& doc, const YAML::Node& node) {
  BlockSizes blocks;
  for (const Field& field : loader.MergedMapping(doc, node, "block_sizes")) {
    const YamlDoc& fdoc = *field.doc;
    int64_t axis = 0;
    if (YAML::convert<int64_t>::decode(field.key_node, axis)) {
      std::optional<int64_t> size;
      if (!field.value.IsNull()) {
        size = ReadInt(fdoc, field.value, "block_sizes." + field.key);
        if (*size <= 0) Fail(fdoc, field.value, "block size must be positive or null");
      }
      if (axis == -1) {
        blocks.has_last_dim = true;
        blocks.last_dim = size;
      } else {
        blocks.other_axes.emplace_back(static_cast<int>(axis), size);
      }
    } else if (field.key == "type") {
      blocks.type = ParseScaleType(fdoc, field.value);
    } else if (field.key == "scale_bits") {
      blocks.scale_bits = ParseScaleBits(fdoc, field.value);
    } else if (field.key == "scale_block_sizes") {
      blocks.has_scale_block_sizes = !field.value.IsNull();
    } else if (field.key == "four_over_six") {
      blocks.four_over_six = ReadBool(fdoc, field.value, "four_over_six");
    } else {
      FailUnknownKey(field, "block_sizes", kBlockKeys);
    }
  }
  return blocks;
}

constexpr std::string_view kAttributeKeys[] = {"num_bits",
                                               "axis",
                                               "block_sizes",
                                               "type",
                                               "use_constant_amax",
                                               "constant_amax",
                                               "effective_bits",
                                               "fake_quant",
                                               "unsigned",
                                               "narrow_range",
                                               "learn_amax",
                                               "bias",
                                               "trt_high_precision_dtype",
                                               "calibrator",
                                               "rotate",
                                               "pass_through_bwd",
                                               "backend",
                                               "backend_extra_args"};

}  // namespace

QuantizerConfig ParseQuantizerAttributes(YamlLoader& loader, const std::vector<Field>& fields) {
  QuantizerConfig cfg;
  auto unsupported_if = [&](bool condition, const std::string& what) {
    if (condition) cfg.unsupported_attributes.push_back(what);
  };
  for (const Field& field : fields) {
    const YamlDoc& doc = *field.doc;
    const YAML::Node& value = field.value;
    const std::string& key = field.key;
    if (key == "num_bits") {
      ParseNumBits(doc, value, &cfg);
    } else if (key == "axis") {
      if (value.IsSequence()) {
        cfg.unsupported_attributes.push_back("axis tuple");
      } else if (!value.IsNull()) {
        cfg.axis = static_cast<int>(ReadInt(doc, value, "axis"));
      }
    } else if (key == "block_sizes") {
      if (!value.IsNull()) cfg.block_sizes = ParseBlockSizes(loader, doc, value);
    } else if (key == "type") {
      cfg.type = ParseScaleType(doc, value);
    } else if (key == "use_constant_amax") {
      cfg.use_constant_amax = ReadBool(doc, value, key);
    } else if (key == "constant_amax") {
      if (!value.IsNull()) cfg.constant_amax = ReadDouble(doc, value, key);
    } else if (key == "effective_bits") {
      if (!value.IsNull()) {
        cfg.effective_bits = ReadDouble(doc, value, key);
        if (!(*cfg.effective_bits > 0 && *cfg.effective_bits <= 16)) {
          Fail(doc, value, "effective_bits must be in (0, 16]");
        }
      }
    } else if (key == "fake_quant" || key == "pass_through_bwd") {
      ReadBool(doc, value, key);  // simulation / training switches: no effect on the export
    } else if (key == "unsigned" || key == "narrow_range" || key == "learn_amax") {
      unsupported_if(ReadBool(doc, value, key), key);
    } else if (key == "bias") {
      unsupported_if(!value.IsNull(), "bias (affine quantization)");
    } else if (key == "rotate") {
      unsupported_if(value.IsMap() || (!value.IsNull() && ReadBool(doc, value, key)),
                     "rotate (Hadamard rotation)");
    } else if (key == "calibrator") {
      unsupported_if(!value.IsScalar() || value.Scalar() != "max", "calibrator other than max");
    } else if (key == "backend") {
      unsupported_if(!value.IsNull(), "backend");
    } else if (key == "trt_high_precision_dtype" || key == "backend_extra_args") {
      // TensorRT / custom-backend hints: no effect on the checkpoint.
    } else if (key == "enable") {
      Fail(doc, field.key_node,
           "'enable' belongs on the quant_cfg entry, next to cfg, not inside it");
    } else {
      FailUnknownKey(field, "cfg", kAttributeKeys);
    }
  }
  if (cfg.axis && cfg.block_sizes) {
    Fail(*fields.front().doc, fields.front().key_node, "axis and block_sizes cannot both be set");
  }
  return cfg;
}

namespace {

struct MethodEntry {
  std::string_view name;
  AlgorithmMethod method;
  std::vector<std::string_view> keys;  // besides method, moe_calib_experts_ratio, layerwise
};

const std::vector<MethodEntry>& MethodTable() {
  static const std::vector<MethodEntry> kTable = {
      {"max",
       AlgorithmMethod::kMax,
       {"shared_states", "distributed_sync", "sync_expert_weight_amax",
        "skip_forward_without_activation_calib"}},
      {"mse",
       AlgorithmMethod::kMse,
       {"shared_states", "step_size", "start_multiplier", "stop_multiplier", "fp8_scale_sweep",
        "distributed_sync"}},
      {"local_hessian",
       AlgorithmMethod::kLocalHessian,
       {"shared_states", "step_size", "start_multiplier", "stop_multiplier", "fp8_scale_sweep",
        "block_size", "distributed_sync", "debug"}},
      {"gptq",
       AlgorithmMethod::kGptq,
       {"perc_damp", "percdamp", "block_size", "act_order", "fused"}},
      {"smoothquant", AlgorithmMethod::kSmoothQuant, {"alpha"}},
      {"awq_lite", AlgorithmMethod::kAwqLite, {"alpha_step", "debug"}},
      {"awq_clip",
       AlgorithmMethod::kAwqClip,
       {"max_co_batch_size", "max_tokens_per_batch", "min_clip_ratio", "shrink_step", "debug"}},
      {"awq_full",
       AlgorithmMethod::kAwqFull,
       {"alpha_step", "max_co_batch_size", "max_tokens_per_batch", "min_clip_ratio", "shrink_step",
        "debug"}},
      {"svdquant", AlgorithmMethod::kSvdQuant, {"lowrank", "skip_layers"}},
      {"nvfp4_act_headroom",
       AlgorithmMethod::kNvfp4ActHeadroom,
       {"anchor_percentile", "upper_percentile", "rho", "weight_scale_algorithm"}},
      {"lsq",
       AlgorithmMethod::kLsq,
       {"learnable_amax", "tied_amax", "quantize_pre_scale", "scale_algorithm"}},
  };
  return kTable;
}

const MethodEntry& FindMethod(const YamlDoc& doc, const YAML::Node& node) {
  const std::string name = ReadString(doc, node, "method");
  std::string known;
  for (const MethodEntry& entry : MethodTable()) {
    if (entry.name == name) return entry;
    known += (known.empty() ? "" : ", ") + std::string(entry.name);
  }
  Fail(doc, node, "unknown algorithm '" + name + "' (ModelOpt's are: " + known + ")");
}

AlgorithmConfig ParseOneAlgorithm(YamlLoader& loader, const YamlDoc& doc, const YAML::Node& node) {
  AlgorithmConfig algorithm;
  if (node.IsNull()) {
    algorithm.method = AlgorithmMethod::kNone;
    return algorithm;
  }
  if (node.IsScalar()) {
    algorithm.method = FindMethod(doc, node).method;
    if (algorithm.method == AlgorithmMethod::kLocalHessian) algorithm.mse.fp8_scale_sweep = true;
    return algorithm;
  }
  const std::vector<Field> fields = loader.MergedMapping(doc, node, "algorithm");
  const Field* method_field = nullptr;
  for (const Field& field : fields) {
    if (field.key == "method") method_field = &field;
  }
  if (!method_field) Fail(doc, node, "algorithm mapping needs a 'method'");
  if (method_field->value.IsNull()) {
    if (fields.size() > 1) Fail(doc, node, "'method: null' (no calibration) takes no parameters");
    algorithm.method = AlgorithmMethod::kNone;
    return algorithm;
  }
  const MethodEntry& entry = FindMethod(*method_field->doc, method_field->value);
  algorithm.method = entry.method;
  if (algorithm.method == AlgorithmMethod::kLocalHessian) algorithm.mse.fp8_scale_sweep = true;
  for (const Field& field : fields) {
    const YamlDoc& fdoc = *field.doc;
    const std::string& key = field.key;
    if (key == "method") continue;
    const bool known = key == "moe_calib_experts_ratio" || key == "layerwise" ||
                       std::find(entry.keys.begin(), entry.keys.end(), key) != entry.keys.end();
    if (!known) {
      std::vector<std::string_view> all = {"method", "moe_calib_experts_ratio", "layerwise"};
      all.insert(all.end(), entry.keys.begin(), entry.keys.end());
      FailUnknownKey(field, "algorithm '" + std::string(entry.name) + "'", all);
    }
    if (field.value.IsNull()) continue;  // null means "the default"
    MseParams& mse = algorithm.mse;
    GptqParams& gptq = algorithm.gptq;
    const bool is_mse =
        entry.method == AlgorithmMethod::kMse || entry.method == AlgorithmMethod::kLocalHessian;
    if (is_mse && key == "start_multiplier") {
      mse.start_multiplier = ReadDouble(fdoc, field.value, key);
    } else if (is_mse && key == "stop_multiplier") {
      mse.stop_multiplier = ReadDouble(fdoc, field.value, key);
    } else if (is_mse && key == "step_size") {
      mse.step_size = ReadDouble(fdoc, field.value, key);
    } else if (is_mse && key == "fp8_scale_sweep") {
      mse.fp8_scale_sweep = ReadBool(fdoc, field.value, key);
    } else if (entry.method == AlgorithmMethod::kGptq &&
               (key == "perc_damp" || key == "percdamp")) {
      gptq.perc_damp = ReadDouble(fdoc, field.value, key);
      if (!(gptq.perc_damp > 0 && gptq.perc_damp <= 1))
        Fail(fdoc, field.value, key + " must be in (0, 1]");
    } else if (entry.method == AlgorithmMethod::kGptq && key == "block_size") {
      gptq.block_size = static_cast<int>(ReadInt(fdoc, field.value, key));
      if (gptq.block_size <= 0) Fail(fdoc, field.value, "block_size must be positive");
    } else if (entry.method == AlgorithmMethod::kGptq && key == "act_order") {
      gptq.act_order = ReadBool(fdoc, field.value, key);
    } else if (entry.method == AlgorithmMethod::kGptq && key == "fused") {
      gptq.fused = ReadBool(fdoc, field.value, key);
    } else {
      algorithm.ignored_keys.push_back(key);
    }
  }
  const MseParams& mse = algorithm.mse;
  if (!(mse.start_multiplier > 0 && mse.stop_multiplier > 0 && mse.step_size > 0) ||
      mse.stop_multiplier < mse.start_multiplier) {
    Fail(doc, node,
         "mse multipliers need 0 < start_multiplier <= stop_multiplier and step_size > 0");
  }
  return algorithm;
}

}  // namespace

std::vector<AlgorithmConfig> ParseAlgorithms(YamlLoader& loader, const YamlDoc& doc,
                                             const YAML::Node& node) {
  std::vector<AlgorithmConfig> algorithms;
  if (node.IsSequence()) {
    if (node.size() == 0) Fail(doc, node, "algorithm list is empty");
    for (const YAML::Node& item : node) algorithms.push_back(ParseOneAlgorithm(loader, doc, item));
  } else {
    algorithms.push_back(ParseOneAlgorithm(loader, doc, node));
  }
  return algorithms;
}

}  // namespace qf::recipe_internal
