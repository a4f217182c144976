// `quantforge demo`: placeholder until the numerics layer lands.
#include "tools/quantforge/commands.h"

namespace qf::cli {

Action RegisterDemo(CLI::App& app) {
  app.add_subcommand("demo", "Quantize a generated tensor and print its error table");
  return [](Context&) { return 0; };
}

}  // namespace qf::cli
