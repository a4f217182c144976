// libFuzzer target: arbitrary bytes as a whole safetensors file through the header parser. The
// parser may only return or throw qf::Error; anything else (a crash, a sanitizer report, another
// exception type escaping) is a bug. When it parses, every tensor must lie inside the input.
#include <cstddef>
#include <cstdint>
#include <span>

#include "quantforge/error.h"
#include "src/io/safetensors_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> file = std::as_bytes(std::span(data, size));
  try {
    const qf::io::ParsedHeader header = qf::io::ParseSafetensorsHeader(file, size, "fuzz-input");
    for (const qf::TensorInfo& info : header.tensors) {
      QF_CHECK(header.data_start <= info.data_begin && info.data_begin <= info.data_end &&
               info.data_end <= size);
    }
    // A prefix shorter than the file (what a streaming reader would pass) must be safe too.
    qf::io::ParseSafetensorsHeader(file.first(size / 2), size, "fuzz-input");
  } catch (const qf::Error&) {
  }
  return 0;
}
