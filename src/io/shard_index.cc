// model.safetensors.index.json: the map from tensor name to shard file of a sharded checkpoint.
// Shard names come from an untrusted file, so they must be plain relative paths; the reader
// additionally resolves symlinks and checks the result stays inside the checkpoint directory.
#include <nlohmann/json.hpp>

#include "quantforge/error.h"
#include "src/io/safetensors_format.h"

namespace qf::io {
namespace {

// Why each rule: absolute paths and ".." escape the directory; "." and empty components and
// backslashes are never written by Hugging Face and would let two spellings name one file.
void CheckShardName(const std::string& shard, const std::string& tensor, const std::string& path) {
  const auto fail = [&](const std::string& why) {
    throw Error("shard path '" + shard + "' " + why + " (expected a file name inside the directory)",
                {path, tensor});
  };
  if (shard.empty()) fail("is empty");
  if (shard.front() == '/') fail("is absolute");
  if (shard.find('\\') != std::string::npos) fail("contains a backslash");
  if (shard.find('\0') != std::string::npos) fail("contains a NUL byte");
  size_t start = 0;
  while (start <= shard.size()) {
    const size_t slash = std::min(shard.find('/', start), shard.size());
    const std::string_view component(shard.data() + start, slash - start);
    if (component == "..") fail("leaves the checkpoint directory ('..')");
    if (component == "." || component.empty()) fail("has an empty or '.' component");
    start = slash + 1;
  }
}

}  // namespace

std::map<std::string, std::string> ParseShardIndex(std::string_view json_text,
                                                   const std::string& path) {
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(json_text.begin(), json_text.end());
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(std::string("index is not valid JSON: ") + e.what(),
                {path, {}, e.byte > 0 ? e.byte - 1 : 0});
  } catch (const nlohmann::json::exception& e) {  // e.g. out_of_range on "1e999"
    throw Error(std::string("index is not valid JSON: ") + e.what(), {path});
  }
  if (!root.is_object() || !root.contains("weight_map")) {
    throw Error("index must be a JSON object with a \"weight_map\" key", {path});
  }
  const nlohmann::json& weight_map = root["weight_map"];
  if (!weight_map.is_object()) {
    throw Error(std::string("weight_map must be an object of tensor name -> shard file (found ") +
                    weight_map.type_name() + ")",
                {path});
  }
  std::map<std::string, std::string> shard_of;
  for (const auto& [tensor, shard] : weight_map.items()) {
    if (!shard.is_string()) {
      throw Error(std::string("weight_map value must be a shard file name string (found ") +
                      shard.type_name() + ")",
                  {path, tensor});
    }
    CheckShardName(shard.get<std::string>(), tensor, path);
    shard_of[tensor] = shard.get<std::string>();
  }
  return shard_of;
}

}  // namespace qf::io
