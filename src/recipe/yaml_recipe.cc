// Recipe files: the top level (`metadata:` + `quantize:`, or a bare QuantizeConfig with
// `algorithm:` and `quant_cfg:`), the `quant_cfg` entry list with its validation rules (ModelOpt
// config.py::QuantizerCfgEntry and normalize_quant_cfg_list, legacy dict forms included), and
// ParseRecipe.
#include <string>

#include "quantforge/error.h"
#include "src/recipe/yaml_doc.h"

namespace qf::recipe_internal {
namespace {

constexpr std::string_view kEntryKeys[] = {"quantizer_name", "parent_class", "cfg", "enable"};

class RecipeParser {
 public:
  explicit RecipeParser(YamlLoader& loader) : loader_(loader) {}

  void ParseQuantCfg(const YamlDoc& doc, const YAML::Node& node) {
    if (node.IsSequence()) {
      for (const YAML::Node& item : node) ParseListItem(doc, item);
    } else if (node.IsMap()) {
      // Legacy flat dict {pattern: cfg, ...}.
      for (const auto& item : node) ParseLegacyPair(doc, item.first, item.second);
    } else {
      Fail(doc, node, "quant_cfg must be a list of entries");
    }
  }

  std::vector<QuantizerRule> TakeRules() { return std::move(rules_); }

 private:
  void ParseListItem(const YamlDoc& doc, const YAML::Node& item) {
    if (!item.IsMap()) Fail(doc, item, "a quant_cfg entry must be a mapping");
    if (item.size() == 1 && item["$import"]) {
      // A snippet spliced into the list: a list of entries, or a single entry.
      YamlLoader::ExpandScope scope(loader_, doc, item);
      for (const YamlDoc* snippet : loader_.Import(doc, item["$import"])) {
        if (snippet->body.IsSequence()) {
          for (const YAML::Node& sub : snippet->body) ParseListItem(*snippet, sub);
        } else if (snippet->body.IsMap()) {
          ParseListItem(*snippet, snippet->body);
        } else if (!snippet->body.IsNull()) {
          Fail(*snippet, snippet->body, "an imported quant_cfg snippet must be a list or an entry");
        }
      }
      return;
    }
    if (item["quantizer_name"] || item["$import"]) {
      ParseEntry(doc, item, loader_.MergedMapping(doc, item, "quant_cfg entry"));
      return;
    }
    if (item.size() == 1) {  // legacy single-key entry {pattern: cfg}
      const auto pair = *item.begin();
      ParseLegacyPair(doc, pair.first, pair.second);
      return;
    }
    Fail(doc, item, "quant_cfg entry has no 'quantizer_name'");
  }

  // ModelOpt _dict_to_entry: "default" means "*"; "nn.Class" scopes a mapping of patterns.
  void ParseLegacyPair(const YamlDoc& doc, const YAML::Node& key_node, const YAML::Node& value) {
    std::string pattern = ReadString(doc, key_node, "quant_cfg key");
    if (pattern == "default") pattern = "*";
    if (pattern.rfind("nn.", 0) == 0) {
      if (!value.IsMap()) Fail(doc, value, "'" + pattern + "' must map quantizer patterns to cfgs");
      for (const auto& sub : value) AddLegacy(doc, sub.first, sub.second, pattern);
      return;
    }
    AddLegacy(doc, key_node, value, std::nullopt);
  }

  void AddLegacy(const YamlDoc& doc, const YAML::Node& key_node, const YAML::Node& value,
                 std::optional<std::string> parent_class) {
    QuantizerRule rule;
    rule.quantizer_name = ReadString(doc, key_node, "quant_cfg key");
    if (rule.quantizer_name == "default") rule.quantizer_name = "*";
    CheckPattern(doc, key_node, rule.quantizer_name);
    rule.parent_class = std::move(parent_class);
    rule.source = Where(doc, key_node);
    if (value.IsMap()) {
      std::vector<Field> fields = loader_.MergedMapping(doc, value, "cfg");
      std::vector<Field> cfg_fields;
      for (Field& field : fields) {
        if (field.key == "enable") {
          rule.enable = ReadBool(*field.doc, field.value, "enable");
        } else {
          cfg_fields.push_back(std::move(field));
        }
      }
      if (!cfg_fields.empty()) rule.cfg = ParseQuantizerAttributes(loader_, cfg_fields);
    } else if (value.IsSequence()) {
      rule.cfg = ParseSequential(doc, value, rule.enable);
    } else {
      Fail(doc, value, "the cfg of '" + rule.quantizer_name + "' must be a mapping");
    }
    Finish(doc, key_node, std::move(rule));
  }

  void ParseEntry(const YamlDoc& doc, const YAML::Node& item, const std::vector<Field>& fields) {
    QuantizerRule rule;
    rule.source = Where(doc, item);
    const Field* name = nullptr;
    const Field* cfg = nullptr;
    for (const Field& field : fields) {
      if (field.key == "quantizer_name") {
        name = &field;
      } else if (field.key == "parent_class") {
        if (!field.value.IsNull())
          rule.parent_class = ReadString(*field.doc, field.value, field.key);
      } else if (field.key == "cfg") {
        cfg = &field;
      } else if (field.key == "enable") {
        rule.enable = ReadBool(*field.doc, field.value, field.key);
      } else {
        FailUnknownKey(field, "quant_cfg entry", kEntryKeys);
      }
    }
    if (!name) Fail(doc, item, "quant_cfg entry has no 'quantizer_name'");
    rule.quantizer_name = ReadString(*name->doc, name->value, "quantizer_name");
    CheckPattern(*name->doc, name->value, rule.quantizer_name);
    if (!cfg && !rule.enable) {
      Fail(doc, item,
           "quant_cfg entry for '" + rule.quantizer_name +
               "' has neither 'cfg' nor 'enable' (an implicit enable is not allowed)");
    }
    bool cfg_given = cfg != nullptr;
    if (cfg && cfg->value.IsMap()) {
      const std::vector<Field> attributes = loader_.MergedMapping(*cfg->doc, cfg->value, "cfg");
      if (attributes.empty()) {
        cfg_given = CheckEmptyCfg(*cfg, rule);
      } else {
        rule.cfg = ParseQuantizerAttributes(loader_, attributes);
      }
    } else if (cfg && cfg->value.IsSequence()) {
      rule.cfg = ParseSequential(*cfg->doc, cfg->value, rule.enable);
      if (!rule.cfg) cfg_given = CheckEmptyCfg(*cfg, rule);
    } else if (cfg && !cfg->value.IsNull()) {
      Fail(*cfg->doc, cfg->value, "'cfg' must be a mapping of quantizer attributes (or a list)");
    }
    // `cfg: null` counts as given (ModelOpt's fields_set) and acts as an enable toggle.
    if (cfg_given && !rule.cfg && !rule.enable) rule.enable = true;
    Finish(doc, item, std::move(rule));
  }

  // ModelOpt _normalize_cfg_shape: an empty cfg with enable:false is dropped; with enable:true
  // (explicit or implied) it is a likely typo and an error. Returns whether cfg still counts.
  bool CheckEmptyCfg(const Field& cfg, const QuantizerRule& rule) {
    if (rule.enable == false) return false;
    Fail(*cfg.doc, cfg.value,
         "empty 'cfg' for '" + rule.quantizer_name +
             "' would reset it to defaults; drop 'cfg' and use enable: true, "
             "or give attributes");
  }

  // A list-valued cfg is a SequentialQuantizer (e.g. W4A8: int4 then fp8). Parsed for
  // validation; the first stage's attributes stand for the quantizer, marked unsupported.
  std::optional<QuantizerConfig> ParseSequential(const YamlDoc& doc, const YAML::Node& list,
                                                 std::optional<bool> /*enable*/) {
    std::vector<QuantizerConfig> stages;
    for (const YAML::Node& stage : list) {
      const std::vector<Field> fields = loader_.MergedMapping(doc, stage, "cfg");
      if (!fields.empty()) stages.push_back(ParseQuantizerAttributes(loader_, fields));
    }
    if (stages.empty()) return std::nullopt;
    QuantizerConfig first = stages.front();
    first.unsupported_attributes.push_back("sequential cfg of " + std::to_string(list.size()) +
                                           " quantizers");
    return first;
  }

  void CheckPattern(const YamlDoc& doc, const YAML::Node& node, const std::string& pattern) {
    try {
      ValidateGlob(pattern);
    } catch (const Error& e) {
      Fail(doc, node, "bad quantizer_name: " + e.problem());
    }
  }

  void Finish(const YamlDoc& doc, const YAML::Node& where, QuantizerRule rule) {
    if (!rule.cfg && !rule.enable) {
      Fail(doc, where,
           "quant_cfg entry for '" + rule.quantizer_name + "' has neither cfg nor enable");
    }
    rules_.push_back(std::move(rule));
  }

  YamlLoader& loader_;
  std::vector<QuantizerRule> rules_;
};

constexpr std::string_view kTopKeys[] = {"imports",   "metadata",  "quantize",
                                         "algorithm", "quant_cfg", "effective_bits"};
constexpr std::string_view kQuantizeKeys[] = {"algorithm", "quant_cfg", "effective_bits"};
constexpr std::string_view kMetadataKeys[] = {"recipe_type", "description"};

}  // namespace

Recipe ParseRecipeDocument(YamlLoader& loader, const YamlDoc& doc, std::string name) {
  Recipe recipe;
  recipe.name = std::move(name);
  if (!doc.body.IsMap()) {
    Fail(doc, doc.body, "a recipe must be a mapping with 'quantize:' (or 'quant_cfg:')");
  }
  std::vector<Field> top = loader.MergedMapping(doc, doc.body, "top level");
  std::vector<Field> config;  // the QuantizeConfig fields, wherever they sit
  const Field* quantize = nullptr;
  for (Field& field : top) {
    if (field.key == "metadata") {
      for (const Field& meta : loader.MergedMapping(*field.doc, field.value, "metadata")) {
        if (meta.key == "recipe_type") {
          const std::string type = ReadString(*meta.doc, meta.value, meta.key);
          if (type != "ptq") {
            Fail(*meta.doc, meta.value, "recipe_type '" + type + "' is not supported (only ptq)");
          }
        } else if (meta.key == "description") {
          if (!meta.value.IsNull())
            recipe.description = ReadString(*meta.doc, meta.value, meta.key);
        } else {
          FailUnknownKey(meta, "metadata", kMetadataKeys);
        }
      }
    } else if (field.key == "quantize") {
      quantize = &field;
    } else if (field.key == "algorithm" || field.key == "quant_cfg" ||
               field.key == "effective_bits") {
      config.push_back(field);
    } else if (field.key == "auto_quantize") {
      Fail(*field.doc, field.key_node, "auto_quantize recipes are not supported yet");
    } else {
      FailUnknownKey(field, "the recipe's top level", kTopKeys);
    }
  }
  if (quantize) {
    if (!config.empty()) {
      Fail(*config.front().doc, config.front().key_node,
           "'" + config.front().key + "' must sit inside 'quantize:', not next to it");
    }
    config = loader.MergedMapping(*quantize->doc, quantize->value, "quantize");
  }
  RecipeParser parser(loader);
  bool has_quant_cfg = false;
  for (const Field& field : config) {
    if (field.key == "algorithm") {
      recipe.algorithms = ParseAlgorithms(loader, *field.doc, field.value);
    } else if (field.key == "quant_cfg") {
      parser.ParseQuantCfg(*field.doc, field.value);
      has_quant_cfg = true;
    } else if (field.key == "effective_bits") {
      if (!field.value.IsNull())
        recipe.effective_bits = ReadDouble(*field.doc, field.value, field.key);
    } else {
      FailUnknownKey(field, "quantize", kQuantizeKeys);
    }
  }
  if (!has_quant_cfg) Fail(doc, doc.body, "the recipe has no 'quant_cfg'");
  if (recipe.algorithms.empty()) recipe.algorithms.push_back(AlgorithmConfig{});  // ModelOpt: max
  recipe.rules = parser.TakeRules();
  return recipe;
}

}  // namespace qf::recipe_internal
