// SummaryText: the table `quantforge quantize` prints when it is done.
#include <fmt/format.h>

#include "quantforge/pipeline.h"

namespace qf {
namespace {

std::string HumanBytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024.0 && unit < 4) {
    value /= 1024.0;
    ++unit;
  }
  return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.2f} {}", value, units[unit]);
}

}  // namespace

std::string SummaryText(const QuantizeSummary& s) {
  std::string out = fmt::format("{:<26} {:>8} {:>14} {:>12} {:>12} {:>7}\n", "format", "tensors",
                                "elements", "bytes in", "bytes out", "bits/el");
  for (const FormatSummary& f : s.formats) {
    const double bpe = f.elements == 0 ? 0.0 : 8.0 * static_cast<double>(f.bytes_out) / f.elements;
    out += fmt::format("{:<26} {:>8} {:>14} {:>12} {:>12} {:>7.3f}\n", f.format, f.tensors,
                       f.elements, HumanBytes(f.bytes_in), HumanBytes(f.bytes_out), bpe);
  }
  out += fmt::format("total: {} in, {} out ({:.1f}%), linear weights {:.3f} bits per element, "
                     "quant_algo {}, {:.2f} s\n",
                     HumanBytes(s.bytes_in), HumanBytes(s.bytes_out),
                     s.bytes_in == 0 ? 0.0 : 100.0 * s.bytes_out / s.bytes_in, s.weight_bpe,
                     s.quant_algo, s.seconds);
  if (!s.excluded.empty()) {
    out += fmt::format("{} linear weights left unquantized:\n", s.excluded.size());
    for (const std::string& e : s.excluded) out += "  " + e + "\n";
  }
  for (const std::string& n : s.notes) out += "note: " + n + "\n";
  out += "written to " + s.out.string() + "\n";
  return out;
}

}  // namespace qf
