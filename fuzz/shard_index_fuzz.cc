// libFuzzer target: arbitrary bytes as model.safetensors.index.json. The parser may only return
// or throw qf::Error; every accepted shard name must be a plain relative path.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "quantforge/error.h"
#include "src/io/safetensors_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto shard_of =
        qf::io::ParseShardIndex(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz-index");
    for (const auto& [tensor, shard] : shard_of) {
      QF_CHECK(!shard.empty() && shard.front() != '/');
      // No component may be "..", "." or empty ("..x" is a legal file name).
      const std::string wrapped = "/" + shard + "/";
      QF_CHECK(wrapped.find("/../") == std::string::npos && wrapped.find("/./") == std::string::npos &&
               wrapped.find("//") == std::string::npos);
    }
  } catch (const qf::Error&) {
  }
  return 0;
}
