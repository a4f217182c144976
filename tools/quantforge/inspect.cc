// `quantforge inspect DIR [--json]`: what a checkpoint (original or quantized, Model Optimizer or
// compressed-tensors layout) holds: per tensor its format, dtype, shape and bytes; the counts per
// format, total bytes and the effective bits per element (scales included); the quantization
// config it declares. With --json the last line of stdout is one JSON object with at least "bpe"
// and "tensors" (each with "name", "format", "shape", "bytes"). The logic lives in the export
// layer (InspectCheckpoint); this file only parses flags and prints.
#include <cstdio>
#include <string>

#include "quantforge/export.h"
#include "tools/quantforge/commands.h"

namespace qf::cli {

Action RegisterInspect(CLI::App& app) {
  struct Flags {
    std::string path;
    bool json = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* sub = app.add_subcommand(
      "inspect",
      "Show a checkpoint's tensors, formats, bytes, bits per element and quantization config");
  sub->add_option("dir", flags->path, "Checkpoint directory (or one .safetensors file)")
      ->required();
  sub->add_flag("--json", flags->json, "Also print one JSON object as the last line of stdout");
  return [flags](Context&) {
    const InspectReport report = InspectCheckpoint(flags->path);
    std::fputs(InspectReportText(report).c_str(), stdout);
    if (flags->json) std::printf("%s\n", InspectReportJson(report).c_str());
    return 0;
  };
}

}  // namespace qf::cli
