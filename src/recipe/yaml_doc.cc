// Loading YAML config files, resolving `imports:` / `$import`, and typed scalar reads that fail
// with file and line.
//
// Import resolution: a path in `imports:` is tried relative to the importing file's folder and
// then each of its ancestors (with "", ".yaml", ".yml" appended; ModelOpt resolves against the
// modelopt_recipes/ root), then in the built-in library (src/recipe/presets/, quantforge's
// restatement of ModelOpt's configs/numerics and configs/ptq/units snippets), so ModelOpt recipe
// files load unchanged whether or not a modelopt_recipes tree is around them. Built-in configs
// and text parsed from memory only import built-ins, so presets never depend on the disk.
#include "src/recipe/yaml_doc.h"

#include <fstream>
#include <sstream>
#include <string>

#include "quantforge/error.h"
#include "src/recipe/recipe_internal.h"

namespace qf::recipe_internal {
namespace {

constexpr int kMaxImportDepth = 32;
constexpr std::uintmax_t kMaxRecipeBytes = 16u << 20;  // recipes are a few KB; refuse huge files

std::string ReadTextFile(const std::filesystem::path& path) {
  std::error_code ec;
  const std::uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) throw Error("cannot read recipe file: " + ec.message(), {path.string()});
  if (size > kMaxRecipeBytes) {
    throw Error("recipe file is " + std::to_string(size) + " bytes; the limit is " +
                    std::to_string(kMaxRecipeBytes),
                {path.string()});
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open recipe file", {path.string()});
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// yaml-cpp 0.7's LoadAll never returns on some malformed input (e.g. a document starting with
// " , x"), so documents are split here and each is parsed with Load. A separator is a line
// starting with "---" followed by nothing or whitespace; every piece keeps its original line
// numbers (earlier lines become empty) so error marks stay right. Text before the first
// separator that holds only comments is not a document, as in YAML.
std::vector<std::string> SplitDocuments(std::string_view text) {
  std::vector<std::string> pieces(1);
  size_t line_start = 0;
  size_t num_lines = 0;
  while (line_start < text.size()) {
    size_t line_end = text.find('\n', line_start);
    if (line_end == std::string_view::npos) line_end = text.size();
    std::string_view line = text.substr(line_start, line_end - line_start);
    const bool separator = line.substr(0, 3) == "---" && (line.size() == 3 || line[3] == ' ' ||
                                                          line[3] == '\t' || line[3] == '\r');
    if (separator) {
      pieces.emplace_back(num_lines, '\n');
      pieces.back() += "   ";  // keep the columns of anything after the marker
      line.remove_prefix(3);
    }
    pieces.back().append(line);
    pieces.back().push_back('\n');
    ++num_lines;
    line_start = line_end + 1;
  }
  auto blank = [](const std::string& piece) {
    size_t i = 0;
    while (i < piece.size()) {
      i = piece.find_first_not_of(" \t\r\n", i);
      if (i == std::string::npos) return true;
      if (piece[i] != '#') return false;
      i = piece.find('\n', i);
    }
    return true;
  };
  if (pieces.size() > 1 && blank(pieces.front())) pieces.erase(pieces.begin());
  return pieces;
}

}  // namespace

std::string Where(const YamlDoc& doc, const YAML::Node& node) {
  const YAML::Mark mark = node.IsDefined() ? node.Mark() : YAML::Mark::null_mark();
  if (mark.is_null()) return doc.file;
  return doc.file + ":" + std::to_string(mark.line + 1);
}

void Fail(const YamlDoc& doc, const YAML::Node& node, const std::string& problem) {
  throw Error(problem, {Where(doc, node)});
}

const YamlDoc& YamlLoader::Load(std::string_view text, std::string file,
                                std::filesystem::path dir) {
  YamlDoc doc;
  doc.file = std::move(file);
  doc.dir = std::move(dir);
  std::vector<YAML::Node> documents;
  try {
    for (const std::string& piece : SplitDocuments(text)) documents.push_back(YAML::Load(piece));
  } catch (const YAML::Exception& e) {
    throw Error("YAML syntax error: " + e.msg,
                {doc.file + (e.mark.is_null() ? "" : ":" + std::to_string(e.mark.line + 1))});
  }
  if (documents.size() > 2) {
    Fail(doc, documents[2],
         "expected at most two YAML documents (imports, then body); found " +
             std::to_string(documents.size()));
  }
  YAML::Node imports;
  if (documents.size() == 2) {
    const YAML::Node& header = documents[0];
    if (!header.IsMap() || header.size() != 1 || !header["imports"]) {
      Fail(doc, header, "the first of two YAML documents must hold only 'imports:'");
    }
    imports = header["imports"];
    doc.body = documents[1];
  } else if (documents.size() == 1) {
    doc.body = documents[0];
    const YAML::Node& body = doc.body;  // const: operator[] must not insert keys
    if (body.IsMap() && body["imports"]) imports = body["imports"];
  }
  if (imports && !imports.IsNull()) {
    if (!imports.IsMap()) Fail(doc, imports, "'imports' must map names to config paths");
    for (const auto& item : imports) {
      const std::string alias = ReadString(doc, item.first, "imports");
      if (doc.imports.count(alias)) Fail(doc, item.first, "import '" + alias + "' defined twice");
      doc.imports[alias] = ReadString(doc, item.second, "imports." + alias);
    }
  }
  docs_.push_back(std::move(doc));
  return docs_.back();
}

const YamlDoc& YamlLoader::LoadPath(const YamlDoc& from, const YAML::Node& where,
                                    const std::string& path) {
  // The importing file's folder, then its ancestors: ModelOpt resolves `huggingface/...` and
  // `configs/...` against the modelopt_recipes/ root, which is an ancestor of any file in it.
  for (std::filesystem::path dir = from.dir; !dir.empty(); dir = dir.parent_path()) {
    for (const char* ext : {"", ".yaml", ".yml"}) {
      const std::filesystem::path candidate = dir / (path + ext);
      std::error_code ec;
      if (!std::filesystem::is_regular_file(candidate, ec)) continue;
      const std::string key = std::filesystem::weakly_canonical(candidate, ec).string();
      if (auto it = by_path_.find(key); it != by_path_.end()) return *it->second;
      const YamlDoc& doc =
          Load(ReadTextFile(candidate), candidate.string(), candidate.parent_path());
      by_path_[key] = &doc;
      return doc;
    }
    if (dir == dir.parent_path()) break;  // reached the root
  }
  const BuiltinConfig* builtin = FindBuiltinConfig(path);
  if (!builtin) {
    Fail(from, where,
         "import path '" + path + "' is neither a file under the folders of " + from.file +
             " nor a built-in config (e.g. configs/numerics/nvfp4)");
  }
  const std::string key = "builtin:" + std::string(builtin->path);
  if (auto it = by_path_.find(key); it != by_path_.end()) return *it->second;
  const YamlDoc& doc = Load(builtin->text, key, {});
  by_path_[key] = &doc;
  return doc;
}

std::vector<const YamlDoc*> YamlLoader::Import(const YamlDoc& from, const YAML::Node& aliases) {
  std::vector<YAML::Node> names;
  if (aliases.IsSequence()) {
    for (const YAML::Node& alias : aliases) names.push_back(alias);
  } else {
    names.push_back(aliases);
  }
  std::vector<const YamlDoc*> result;
  for (const YAML::Node& alias_node : names) {
    const std::string alias = ReadString(from, alias_node, "$import");
    auto it = from.imports.find(alias);
    if (it == from.imports.end()) {
      Fail(from, alias_node, "$import '" + alias + "' is not declared under 'imports:'");
    }
    result.push_back(&LoadPath(from, alias_node, it->second));
  }
  return result;
}

YamlLoader::ExpandScope::ExpandScope(YamlLoader& loader, const YamlDoc& doc,
                                     const YAML::Node& where)
    : loader_(loader) {
  if (++loader_.depth_ > kMaxImportDepth) {
    --loader_.depth_;
    Fail(doc, where,
         "imports nest deeper than " + std::to_string(kMaxImportDepth) +
             " levels (an import cycle?)");
  }
}

std::vector<Field> YamlLoader::MergedMapping(const YamlDoc& doc, const YAML::Node& map,
                                             std::string_view what) {
  if (!map.IsMap()) Fail(doc, map, std::string(what) + " must be a mapping");
  ExpandScope scope(*this, doc, map);
  std::vector<Field> fields;
  std::vector<Field> inline_fields;
  for (const auto& item : map) {
    const std::string key = ReadString(doc, item.first, what);
    if (key == "imports" && map.is(doc.body)) continue;  // the file's own import table
    if (key == "$import") {
      for (const YamlDoc* snippet : Import(doc, item.second)) {
        for (Field& field : MergedMapping(*snippet, snippet->body, what)) {
          std::erase_if(fields, [&](const Field& f) { return f.key == field.key; });
          fields.push_back(std::move(field));
        }
      }
      continue;
    }
    for (const Field& seen : inline_fields) {
      if (seen.key == key) {
        Fail(doc, item.first, "key '" + key + "' appears twice in " + std::string(what));
      }
    }
    inline_fields.push_back({key, item.first, item.second, &doc});
  }
  for (Field& field : inline_fields) {
    std::erase_if(fields, [&](const Field& f) { return f.key == field.key; });
    fields.push_back(std::move(field));
  }
  return fields;
}

bool ReadBool(const YamlDoc& doc, const YAML::Node& node, std::string_view key) {
  bool value = false;
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value)) {
    Fail(doc, node, "'" + std::string(key) + "' must be true or false");
  }
  return value;
}

double ReadDouble(const YamlDoc& doc, const YAML::Node& node, std::string_view key) {
  double value = 0;
  if (!node.IsScalar() || !YAML::convert<double>::decode(node, value)) {
    Fail(doc, node, "'" + std::string(key) + "' must be a number");
  }
  return value;
}

int64_t ReadInt(const YamlDoc& doc, const YAML::Node& node, std::string_view key) {
  int64_t value = 0;
  if (!node.IsScalar() || !YAML::convert<int64_t>::decode(node, value)) {
    Fail(doc, node, "'" + std::string(key) + "' must be an integer");
  }
  return value;
}

std::string ReadString(const YamlDoc& doc, const YAML::Node& node, std::string_view key) {
  if (!node.IsScalar()) Fail(doc, node, "'" + std::string(key) + "' must be a string");
  return node.Scalar();
}

void FailUnknownKey(const Field& field, std::string_view where,
                    std::span<const std::string_view> known) {
  std::string list;
  for (std::string_view name : known) list += (list.empty() ? "" : ", ") + std::string(name);
  Fail(*field.doc, field.key_node,
       "unknown key '" + field.key + "' in " + std::string(where) + " (expected one of: " + list +
           ")");
}

}  // namespace qf::recipe_internal
