// Parsing and validation of a safetensors header (see safetensors_format.h for the rules and
// their source). Every length is checked against the file size and the 100 MB cap before any
// byte is read, and every problem becomes a qf::Error naming the file, the tensor and the byte.
#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "quantforge/error.h"
#include "src/io/safetensors_format.h"

namespace qf::io {
namespace {

using nlohmann::json;

// Deepest valid nesting: root object (0) > tensor entry (1) > shape array (2). Rejecting deeper
// input early keeps hostile headers ("[[[[...") from building huge trees.
constexpr int kMaxJsonDepth = 3;

std::string SupportedDTypes() {
  return "F64 F32 F16 BF16 F8_E4M3 F8_E5M2 U8 I8 I16 I32 I64 BOOL";
}

std::string ShapeString(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string OffsetsString(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

// Compact, bounded rendering of a JSON value for "found ..." parts of messages.
std::string Found(const json& value) {
  std::string s = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

// Parses the JSON while rejecting duplicate keys (nlohmann would keep the last one silently)
// and nesting deeper than any valid header.
json ParseStrict(std::string_view text, const std::string& path) {
  std::vector<std::set<std::string>> keys_per_object;
  std::string duplicate;
  int duplicate_depth = 0;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth > kMaxJsonDepth) {
          throw Error("header JSON nests deeper than " + std::to_string(kMaxJsonDepth) +
                          " levels (a valid header is object > entry > shape)",
                      {path, {}, kHeaderLengthBytes});
        }
        if (event == json::parse_event_t::object_start) keys_per_object.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!keys_per_object.empty()) keys_per_object.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys_per_object.empty() && duplicate.empty() &&
            !keys_per_object.back().insert(parsed.get<std::string>()).second) {
          duplicate = parsed.get<std::string>();
          duplicate_depth = depth;
        }
        break;
      default:
        break;
    }
    return true;
  };
  json root;
  try {
    root = json::parse(text.begin(), text.end(), callback);
  } catch (const json::parse_error& e) {
    const uint64_t at = kHeaderLengthBytes + (e.byte > 0 ? e.byte - 1 : 0);
    throw Error(std::string("header is not valid UTF-8 JSON: ") + e.what(), {path, {}, at});
  } catch (const json::exception& e) {
    // out_of_range 406 ("number overflow parsing '2e308'"), found by the fuzzer: nlohmann
    // reports it outside parse_error.
    throw Error(std::string("header is not valid UTF-8 JSON: ") + e.what(), {path, {}, kHeaderLengthBytes});
  }
  if (!duplicate.empty()) {
    if (duplicate_depth <= 1) {
      throw Error("duplicate tensor name in header", {path, duplicate, kHeaderLengthBytes});
    }
    throw Error("duplicate key '" + duplicate + "' in a header entry", {path, {}, kHeaderLengthBytes});
  }
  return root;
}

// Byte offset (from the start of the header JSON) of each top-level key, keyed by the key's raw
// quoted text, so errors about an entry can point at it. Runs on JSON the parser accepted, so a
// plain scan suffices: depth counting outside strings, backslash escapes inside them.
std::map<std::string_view, uint64_t> TopLevelKeyOffsets(std::string_view text) {
  std::map<std::string_view, uint64_t> offsets;
  int depth = 0;
  bool expect_key = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"') {
      const size_t start = i;
      for (++i; i < text.size() && text[i] != '"'; ++i) {
        if (text[i] == '\\') ++i;
      }
      if (depth == 1 && expect_key) offsets.emplace(text.substr(start, i + 1 - start), start);
      expect_key = false;
    } else if (c == '{' || c == '[') {
      ++depth;
      expect_key = c == '{' && depth == 1;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == ',' && depth == 1) {
      expect_key = true;
    }
  }
  return offsets;
}

std::map<std::string, std::string> ParseMetadata(const json& value, uint64_t offset,
                                                 const std::string& path) {
  if (!value.is_object()) {
    throw Error("__metadata__ must be an object of strings (found " + Found(value) + ")",
                {path, {}, offset});
  }
  std::map<std::string, std::string> metadata;
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) {
      throw Error("__metadata__ value of '" + key + "' must be a string (found " + Found(item) + ")",
                  {path, {}, offset});
    }
    metadata[key] = item.get<std::string>();
  }
  return metadata;
}

// Entry fields, checked one by one so the message names the exact problem.
TensorInfo ParseEntry(const std::string& name, const json& entry, uint64_t entry_offset,
                      uint64_t data_start, uint64_t data_bytes, const std::string& path) {
  const ErrorContext where{path, name, entry_offset};
  if (!entry.is_object()) {
    throw Error("header entry must be an object (found " + Found(entry) + ")", where);
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(key)) throw Error(std::string("header entry lacks key '") + key + "'", where);
  }
  for (const auto& [key, unused] : entry.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      throw Error("unexpected key '" + key + "' in header entry (expected dtype, shape, data_offsets)",
                  where);
    }
  }
  TensorInfo info;
  info.name = name;

  const json& dtype = entry["dtype"];
  const std::optional<DType> parsed_dtype =
      dtype.is_string() ? ParseDType(dtype.get<std::string>()) : std::nullopt;
  if (!parsed_dtype) {
    throw Error("unsupported dtype " + Found(dtype) + " (expected one of " + SupportedDTypes() + ")",
                where);
  }
  info.dtype = *parsed_dtype;

  const json& shape = entry["shape"];
  if (!shape.is_array()) throw Error("shape must be an array (found " + Found(shape) + ")", where);
  for (const json& dim : shape) {
    // is_number_unsigned: nlohmann stores non-negative integer literals as unsigned; negative
    // ones are number_integer and 2.0 is number_float: both rejected.
    if (!dim.is_number_unsigned() ||
        dim.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      throw Error("shape must hold non-negative integers (found " + Found(shape) + ")", where);
    }
    info.shape.push_back(static_cast<int64_t>(dim.get<uint64_t>()));
  }

  const json& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned() || offsets[0].get<uint64_t>() > offsets[1].get<uint64_t>()) {
    throw Error("data_offsets must be two non-decreasing non-negative integers (found " +
                    Found(offsets) + ")",
                where);
  }
  const uint64_t begin = offsets[0].get<uint64_t>();
  const uint64_t end = offsets[1].get<uint64_t>();
  if (end > data_bytes) {
    throw Error("data_offsets " + OffsetsString(begin, end) + " end past the data section of " +
                    std::to_string(data_bytes) + " bytes",
                {path, name, data_start + std::min(begin, data_bytes)});
  }
  info.data_begin = data_start + begin;
  info.data_end = data_start + end;

  // Byte length = product(shape) * dtype size, every step checked for uint64 overflow.
  uint64_t num_bytes = DTypeSize(info.dtype);
  bool overflow = false;
  for (int64_t dim : info.shape) {
    const auto d = static_cast<uint64_t>(dim);
    if (d != 0 && num_bytes > std::numeric_limits<uint64_t>::max() / d) overflow = true;
    num_bytes = overflow ? 0 : num_bytes * d;
    if (overflow) break;
  }
  const std::string layout = "shape " + ShapeString(info.shape) + " x " +
                             std::string(DTypeName(info.dtype));
  if (overflow) throw Error(layout + " overflows 64 bits", {path, name, info.data_begin});
  if (num_bytes != end - begin) {
    throw Error(layout + " needs " + std::to_string(num_bytes) + " bytes but data_offsets " +
                    OffsetsString(begin, end) + " span " + std::to_string(end - begin),
                {path, name, info.data_begin});
  }
  return info;
}

// The reference rule: sorted by (begin, end), tensors tile [0, data_bytes) exactly.
void CheckTiling(const std::vector<TensorInfo>& tensors, uint64_t data_start, uint64_t data_bytes,
                 const std::string& path) {
  std::vector<const TensorInfo*> by_offset;
  by_offset.reserve(tensors.size());
  for (const TensorInfo& t : tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    if (a->data_begin != b->data_begin) return a->data_begin < b->data_begin;
    if (a->data_end != b->data_end) return a->data_end < b->data_end;
    return a->name < b->name;
  });
  uint64_t covered = data_start;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo* t : by_offset) {
    const auto rel = [&](uint64_t absolute) { return absolute - data_start; };
    if (t->data_begin < covered) {
      throw Error("data_offsets " + OffsetsString(rel(t->data_begin), rel(t->data_end)) +
                      " overlap tensor '" + previous->name + "' at " +
                      OffsetsString(rel(previous->data_begin), rel(previous->data_end)),
                  {path, t->name, t->data_begin});
    }
    if (t->data_begin > covered) {
      throw Error(std::to_string(t->data_begin - covered) + " bytes of the data section before it (" +
                      OffsetsString(rel(covered), rel(t->data_begin)) +
                      ") belong to no tensor: expected data_offsets to start at " +
                      std::to_string(rel(covered)) + ", found " + std::to_string(rel(t->data_begin)),
                  {path, t->name, covered});
    }
    covered = t->data_end;
    // An empty tensor covers nothing; keep the last tensor that did for overlap messages.
    if (previous == nullptr || t->data_end > t->data_begin) previous = t;
  }
  if (covered != data_start + data_bytes) {
    throw Error(std::to_string(data_start + data_bytes - covered) +
                    " bytes after the last tensor belong to no tensor (data section is " +
                    std::to_string(data_bytes) + " bytes, tensors cover " +
                    std::to_string(covered - data_start) + ")",
                {path, {}, covered});
  }
}

}  // namespace

ParsedHeader ParseSafetensorsHeader(std::span<const std::byte> file_prefix, uint64_t file_size,
                                    const std::string& path) {
  if (file_size < kHeaderLengthBytes || file_prefix.size() < kHeaderLengthBytes) {
    throw Error("file is " + std::to_string(file_size) +
                    " bytes, shorter than the 8-byte header length", {path, {}, 0});
  }
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) {
    header_bytes = (header_bytes << 8) | static_cast<uint8_t>(file_prefix[i]);
  }
  if (header_bytes > kMaxHeaderBytes) {
    throw Error("header length " + std::to_string(header_bytes) + " exceeds the cap of " +
                    std::to_string(kMaxHeaderBytes) + " bytes",
                {path, {}, 0});
  }
  if (header_bytes > file_size - kHeaderLengthBytes) {
    throw Error("header length " + std::to_string(header_bytes) + " exceeds the " +
                    std::to_string(file_size - kHeaderLengthBytes) +
                    " bytes that follow it (file is " + std::to_string(file_size) +
                    " bytes: truncated?)",
                {path, {}, 0});
  }
  if (file_prefix.size() < kHeaderLengthBytes + header_bytes) {
    throw Error("header of " + std::to_string(header_bytes) + " bytes not fully readable",
                {path, {}, kHeaderLengthBytes});
  }
  const std::string_view text(reinterpret_cast<const char*>(file_prefix.data()) + kHeaderLengthBytes,
                              header_bytes);
  const json root = ParseStrict(text, path);
  if (!root.is_object()) {
    throw Error("header must be a JSON object (found " + std::string(root.type_name()) + ")",
                {path, {}, kHeaderLengthBytes});
  }

  ParsedHeader header;
  header.data_start = kHeaderLengthBytes + header_bytes;
  const uint64_t data_bytes = file_size - header.data_start;
  const std::map<std::string_view, uint64_t> key_offsets = TopLevelKeyOffsets(text);
  for (const auto& [name, entry] : root.items()) {  // std::map order: sorted by name
    // The key as the file spells it; a name written with different escapes falls back to the
    // start of the header.
    const auto key = key_offsets.find(json(name).dump(-1, ' ', false, json::error_handler_t::replace));
    const uint64_t entry_offset = kHeaderLengthBytes + (key == key_offsets.end() ? 0 : key->second);
    if (name == "__metadata__") {
      header.metadata = ParseMetadata(entry, entry_offset, path);
      continue;
    }
    header.tensors.push_back(ParseEntry(name, entry, entry_offset, header.data_start, data_bytes, path));
  }
  CheckTiling(header.tensors, header.data_start, data_bytes, path);
  return header;
}

std::string SerializeHeader(const std::vector<TensorInfo>& tensors,
                            const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorInfo*> by_name;
  for (const TensorInfo& t : tensors) by_name.push_back(&t);
  std::sort(by_name.begin(), by_name.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->name < b->name; });
  std::string text = "{";
  if (!metadata.empty()) text += "\"__metadata__\":" + json(metadata).dump();
  for (const TensorInfo* t : by_name) {
    if (text.size() > 1) text += ",";
    text += json(t->name).dump() + ":{\"dtype\":\"" + std::string(DTypeName(t->dtype)) +
            "\",\"shape\":" + json(t->shape).dump() + ",\"data_offsets\":[" +
            std::to_string(t->data_begin) + "," + std::to_string(t->data_end) + "]}";
  }
  text += "}";
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string header(kHeaderLengthBytes, '\0');
  uint64_t n = text.size();
  for (size_t i = 0; i < kHeaderLengthBytes; ++i, n >>= 8) header[i] = static_cast<char>(n & 0xff);
  return header + text;
}

}  // namespace qf::io
