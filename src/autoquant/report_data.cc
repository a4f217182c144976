// The sweep report as data: report.json (everything, one object) and report.csv (one row per
// point), and WriteSweepReport, which writes them with the SVG plot and the HTML page.
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "fmt/core.h"
#include "quantforge/autoquant_report.h"
#include "quantforge/error.h"

namespace qf {
namespace {

nlohmann::json Number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

// RFC 4180: quote a field holding a comma, quote or newline, doubling the quotes.
std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

void WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << text;
  file.close();
  if (!file) throw Error("cannot write '" + path.string() + "'");
}

}  // namespace

std::string SweepReportJson(const SweepReport& report) {
  nlohmann::json points = nlohmann::json::array();
  for (const SweepPoint& p : report.points) {
    points.push_back({{"kind", SweepPointKindName(p.kind)},
                      {"label", p.label},
                      {"budget_bpe", p.budget_bpe > 0 ? Number(p.budget_bpe) : nlohmann::json()},
                      {"evaluated", p.evaluated},
                      {"note", p.note},
                      {"bpe", Number(p.bpe)},
                      {"score", p.score >= 0 ? Number(p.score) : nlohmann::json()},
                      {"gap", Number(p.gap)},
                      {"proved_optimal", p.proved_optimal},
                      {"nll", p.evaluated ? Number(p.nll) : nlohmann::json()},
                      {"perplexity", p.evaluated ? Number(p.perplexity) : nlohmann::json()},
                      {"kl", p.evaluated ? Number(p.kl) : nlohmann::json()},
                      {"top1", p.evaluated ? Number(p.top1) : nlohmann::json()},
                      {"recipe", p.recipe},
                      {"group_formats", p.group_formats}});
  }
  const nlohmann::json json = {
      {"model", report.model},
      {"calib", report.calib},
      {"data", report.data},
      {"formats", report.formats},
      {"calib_sequences", report.calib_sequences},
      {"calib_seq_len", report.calib_seq_len},
      {"eval_tokens", report.eval_tokens},
      {"eval_seq_len", report.eval_seq_len},
      {"total_elements", report.total_elements},
      {"min_bpe", Number(report.min_bpe)},
      {"max_bpe", Number(report.max_bpe)},
      {"reference_nll", Number(report.reference_nll)},
      {"reference_perplexity", Number(report.reference_perplexity)},
      {"kl_definition", "mean over predicted tokens of KL(P_unquantized || P_quantized), nats"},
      {"bpe_definition",
       "bits per element of the decoder Linear weights, scales included (NVFP4 4.5, FP8 8, BF16 "
       "16); embeddings and lm_head not counted"},
      {"groups", report.group_names},
      {"points", points}};
  return json.dump(2) + "\n";
}

std::string SweepReportCsv(const SweepReport& report) {
  std::string out =
      "kind,label,budget_bpe,bpe,score,gap,proved_optimal,nll,perplexity,kl,top1,evaluated,note,"
      "recipe\n";
  const auto num = [](double v, bool present) {
    return present && std::isfinite(v) ? fmt::format("{:.9g}", v) : std::string();
  };
  for (const SweepPoint& p : report.points) {
    out += fmt::format(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", SweepPointKindName(p.kind),
        CsvField(p.label), num(p.budget_bpe, p.budget_bpe > 0), num(p.bpe, p.evaluated),
        num(p.score, p.score >= 0), num(p.gap, true), p.proved_optimal ? 1 : 0,
        num(p.nll, p.evaluated), num(p.perplexity, p.evaluated), num(p.kl, p.evaluated),
        num(p.top1, p.evaluated), p.evaluated ? 1 : 0, CsvField(p.note), CsvField(p.recipe));
  }
  return out;
}

void WriteSweepReport(const SweepReport& report, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  WriteFile(dir / "report.json", SweepReportJson(report));
  WriteFile(dir / "report.csv", SweepReportCsv(report));
  WriteFile(dir / "plot.svg", SweepPlotSvg(report));
  WriteFile(dir / "report.html", SweepReportHtml(report));
}

}  // namespace qf
