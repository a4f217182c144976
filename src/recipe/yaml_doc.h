// Private to the recipe layer: a loaded YAML config file with its `imports:` table, `$import`
// resolution (ModelOpt modelopt/torch/opt/config_loader.py semantics), and error helpers that
// name the file and line. yaml-cpp types stay behind this header.
#pragma once

#include <yaml-cpp/yaml.h>

#include <deque>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quantforge/recipe.h"

namespace qf::recipe_internal {

// One config file. ModelOpt snippets come in two shapes: a single document (a mapping that may
// carry an `imports:` key next to its content), or two documents, the first holding only
// `imports:` and the second the body (a YAML document cannot be both a mapping and a list).
struct YamlDoc {
  std::string file;           // shown in errors: a path, or "builtin:configs/numerics/nvfp4"
  std::filesystem::path dir;  // for relative imports; empty for built-in configs
  std::map<std::string, std::string> imports;  // alias -> path
  YAML::Node body;
};

// A mapping's key/value pairs after `$import` merging: imported keys first, inline keys
// override them (shallow merge). Each value keeps the document it came from, for messages.
struct Field {
  std::string key;
  YAML::Node key_node;  // for the line number in messages
  YAML::Node value;
  const YamlDoc* doc = nullptr;
};

class YamlLoader {
 public:
  // Parses `text`; `file` names it in errors, `dir` resolves its relative imports.
  const YamlDoc& Load(std::string_view text, std::string file, std::filesystem::path dir);

  // Resolves `$import: alias` (a string, or a list of them) seen in `from`. Cycles and unknown
  // aliases are errors.
  std::vector<const YamlDoc*> Import(const YamlDoc& from, const YAML::Node& aliases);

  std::vector<Field> MergedMapping(const YamlDoc& doc, const YAML::Node& map,
                                   std::string_view what);

  // Bounds the nesting of imports while expanding them, which also catches import cycles.
  class ExpandScope {
   public:
    ExpandScope(YamlLoader& loader, const YamlDoc& doc, const YAML::Node& where);
    ~ExpandScope() { --loader_.depth_; }
    ExpandScope(const ExpandScope&) = delete;
    ExpandScope& operator=(const ExpandScope&) = delete;

   private:
    YamlLoader& loader_;
  };

 private:
  const YamlDoc& LoadPath(const YamlDoc& from, const YAML::Node& where, const std::string& path);

  std::deque<YamlDoc> docs_;                       // stable addresses
  std::map<std::string, const YamlDoc*> by_path_;  // resolved path -> loaded doc
  int depth_ = 0;                                  // current ExpandScope nesting
};

// "file:line: problem" as a qf::Error (line 1-based from the node's mark; omitted if unknown).
[[noreturn]] void Fail(const YamlDoc& doc, const YAML::Node& node, const std::string& problem);
std::string Where(const YamlDoc& doc, const YAML::Node& node);  // "file:line"

// Typed scalars; each fails naming the key and what was found.
bool ReadBool(const YamlDoc& doc, const YAML::Node& node, std::string_view key);
double ReadDouble(const YamlDoc& doc, const YAML::Node& node, std::string_view key);
int64_t ReadInt(const YamlDoc& doc, const YAML::Node& node, std::string_view key);
std::string ReadString(const YamlDoc& doc, const YAML::Node& node, std::string_view key);
[[noreturn]] void FailUnknownKey(const Field& field, std::string_view where,
                                 std::span<const std::string_view> known);

// The attribute and algorithm schemas (yaml_attributes.cc).
QuantizerConfig ParseQuantizerAttributes(YamlLoader& loader, const std::vector<Field>& fields);
std::vector<AlgorithmConfig> ParseAlgorithms(YamlLoader& loader, const YamlDoc& doc,
                                             const YAML::Node& node);

// A whole recipe document (yaml_recipe.cc); `name` becomes Recipe::name.
Recipe ParseRecipeDocument(YamlLoader& loader, const YamlDoc& doc, std::string name);

}  // namespace qf::recipe_internal
