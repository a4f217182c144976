// Internal: the safetensors header parser and serializer, shared by the reader, the writer, the
// fuzz target and the tests. Public callers use quantforge/checkpoint.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "quantforge/checkpoint.h"

namespace qf::io {

// The reference implementation (huggingface/safetensors, MAX_HEADER_SIZE) refuses headers over
// 100 MB; a larger one is corrupt or hostile, and we check it before touching the bytes.
inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;
inline constexpr uint64_t kHeaderLengthBytes = 8;  // the little-endian u64 N in front

struct ParsedHeader {
  uint64_t data_start = 0;  // 8 + N: absolute offset of the data section
  std::vector<TensorInfo> tensors;  // sorted by name; offsets absolute; `file` left empty
  std::map<std::string, std::string> metadata;  // "__metadata__", empty when absent
};

// Parses and fully validates a header. `file_prefix` holds the first bytes of the file (at least
// 8 + N of them, or the whole file when it is shorter); `file_size` is the size of the whole
// file; `path` only names the file in errors. Validation follows the reference implementation
// (Metadata::validate in safetensors/src/tensor.rs): tensors sorted by data_offsets must tile the
// data section exactly (first at 0, each beginning where the previous ended, the last ending at
// the end of the file), and each tensor's byte length equals product(shape) * dtype size. We are
// stricter where the reference is lax: unknown keys in an entry, duplicate names and dtypes we do
// not support are errors. Throws qf::Error.
ParsedHeader ParseSafetensorsHeader(std::span<const std::byte> file_prefix, uint64_t file_size,
                                    const std::string& path);

// The full header: the 8-byte little-endian length, then the JSON padded with spaces to a
// multiple of 8 bytes (as the reference writer does, so the data section starts 8-aligned).
// `tensors` carry data offsets relative to the data section (they do not depend on the header's
// own size). JSON: "__metadata__" first, then the tensors sorted by name, each
// {"dtype","shape","data_offsets"} in that key order, compact, like the reference serializer.
std::string SerializeHeader(const std::vector<TensorInfo>& tensors,
                            const std::map<std::string, std::string>& metadata);

// Parses model.safetensors.index.json: returns tensor name -> shard file name. Validates that
// weight_map is an object of string -> string and each shard name is a plain relative path
// (no absolute path, no "." or ".." component, no backslash or NUL). Symlinks are checked by the
// caller, which knows the directory. Throws qf::Error naming `path`.
std::map<std::string, std::string> ParseShardIndex(std::string_view json_text,
                                                   const std::string& path);

}  // namespace qf::io
