// The sweep report as one self-contained HTML page: inline CSS, the SVG plot inlined, the table
// of every point, and the run's parameters. No scripts, fonts, images or links to fetch, so it
// renders the same offline and in headless Chromium (tools/render_report.sh).
#include <cmath>

#include "fmt/core.h"
#include "quantforge/autoquant_report.h"
#include "src/autoquant/xml_escape.h"

namespace qf {
namespace {

std::string Cell(double v, const char* spec, bool present) {
  return present && std::isfinite(v) ? fmt::format(fmt::runtime(spec), v) : "&ndash;";
}

}  // namespace

std::string SweepReportHtml(const SweepReport& report) {
  std::string html =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<title>quantforge AutoQuantize sweep</title>\n<style>\n"
      "body{font-family:'DejaVu Sans',Arial,sans-serif;margin:24px;color:#222;background:#fff}\n"
      "h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:22px 0 8px}\n"
      "table{border-collapse:collapse;font-size:13px}\n"
      "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}\n"
      "th{background:#eef2f7}td.l,th.l{text-align:left}\n"
      "tr.autoquant td{background:#eaf2fb}tr.random td{background:#fff4e8}\n"
      "tr.uniform td{background:#f3f3f3}tr.skipped td{color:#999}\n"
      "dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px;font-size:13px}\n"
      "dt{font-weight:bold}dd{margin:0}p.note{font-size:13px;max-width:1000px}\n"
      "</style>\n</head>\n<body>\n<h1>AutoQuantize sweep</h1>\n<dl>\n";
  const auto item = [&](const std::string& key, const std::string& value) {
    html += "<dt>" + XmlEscape(key) + "</dt><dd>" + XmlEscape(value) + "</dd>\n";
  };
  item("model", report.model);
  item("candidate formats", report.formats);
  item("calibration", fmt::format("{} ({} sequences x {} tokens)", report.calib,
                                  report.calib_sequences, report.calib_seq_len));
  item("evaluation", fmt::format("{} ({} predicted tokens, sequences of {})", report.data,
                                 report.eval_tokens, report.eval_seq_len));
  item("counted elements", fmt::format("{} (decoder Linear weights; embeddings and lm_head not "
                                       "counted)",
                                       report.total_elements));
  item("achievable BPE", fmt::format("{:.4f} to {:.4f}", report.min_bpe, report.max_bpe));
  item("unquantized model", fmt::format("perplexity {:.4f}, nll {:.5f}",
                                        report.reference_perplexity, report.reference_nll));
  html += "</dl>\n<h2>Bits per element against perplexity and KL divergence</h2>\n";
  html += SweepPlotSvg(report);
  html +=
      "<p class=\"note\">Bits per element include the block scales (NVFP4 4.5, FP8 8, BF16 16). "
      "KL is the mean over predicted tokens of KL(P<sub>unquantized</sub> || "
      "P<sub>quantized</sub>) in nats; top-1 is the fraction of positions whose most likely "
      "token agrees. Each point is simulated as its exported (modelopt layout) checkpoint is "
      "served: weights fake-quantized in memory, NVFP4 layers W4A16, and the inputs of FP8 / MX "
      "layers quantized at run time (per-token FP8, per-32 MX). Each random assignment meets "
      "the same budget as the AutoQuantize point beside it.</p>\n";
  html +=
      "<h2>All points</h2>\n<table>\n<tr><th class=\"l\">kind</th><th class=\"l\">label</th>"
      "<th>budget</th><th>achieved BPE</th><th>score</th><th>gap</th><th>perplexity</th>"
      "<th>&Delta; ppl</th><th>KL</th><th>top-1</th><th class=\"l\">recipe / note</th></tr>\n";
  for (const SweepPoint& p : report.points) {
    const std::string kind(SweepPointKindName(p.kind));
    const double delta =
        100.0 * (p.perplexity / std::max(report.reference_perplexity, 1e-300) - 1.0);
    html += fmt::format(
        "<tr class=\"{}{}\"><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td>"
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
        "<td class=\"l\">{}</td></tr>\n",
        kind, p.evaluated ? "" : " skipped", kind, XmlEscape(p.label),
        Cell(p.budget_bpe, "{:.2f}", p.budget_bpe > 0), Cell(p.bpe, "{:.4f}", p.evaluated),
        Cell(p.score, "{:.4g}", p.score >= 0),
        p.kind == SweepPointKind::kAutoQuant && p.evaluated
            ? (p.proved_optimal ? std::string("0 (optimal)") : fmt::format("{:.3g}", p.gap))
            : std::string("&ndash;"),
        Cell(p.perplexity, "{:.4f}", p.evaluated), Cell(delta, "{:+.2f}%", p.evaluated),
        Cell(p.kl, "{:.5f}", p.evaluated), Cell(100.0 * p.top1, "{:.2f}%", p.evaluated),
        XmlEscape(p.evaluated && !p.note.empty() ? p.recipe + "; " + p.note
                                              : (p.evaluated ? p.recipe : p.note)));
  }
  html += "</table>\n</body>\n</html>\n";
  return html;
}

}  // namespace qf
