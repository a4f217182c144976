// SummaryText: the table `quantforge quantize` prints when it is done.
#include <fmt/format.h>

#include "quantforge/pipeline.h"
#include "src/util/format.h"

namespace qf {

std::string SummaryText(const QuantizeSummary& s) {
  std::string out = fmt::format("{:<26} {:>8} {:>14} {:>12} {:>12} {:>7}\n", "format", "tensors",
                                "elements", "bytes in", "bytes out", "bits/el");
  for (const FormatSummary& f : s.formats) {
    const double bpe = f.elements == 0 ? 0.0 : 8.0 * static_cast<double>(f.bytes_out) / f.elements;
    out += fmt::format("{:<26} {:>8} {:>14} {:>12} {:>12} {:>7.3f}\n", f.format, f.tensors,
                       f.elements, FormatBytes(f.bytes_in), FormatBytes(f.bytes_out), bpe);
  }
  out += fmt::format("total: {} in, {} out ({:.1f}%), linear weights {:.3f} bits per element, "
                     "quant_algo {}, {:.2f} s\n",
                     FormatBytes(s.bytes_in), FormatBytes(s.bytes_out),
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
