// The sweep report writers on a hand-made report: JSON parses with every point, CSV has one row
// per point, the SVG has axes, ticks, labels and a legend, and the HTML is self-contained (no
// scripts, no external URLs) with the plot inlined. Also RunSweep end to end on stories260K with
// small settings (skipped when ../shared is absent).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "quantforge/autoquant_report.h"

namespace qf {
namespace {

SweepReport HandMadeReport() {
  SweepReport r;
  r.model = "models/tiny & <odd>";
  r.formats = "nvfp4,fp8,none";
  r.total_elements = 1000;
  r.min_bpe = 5.35;
  r.max_bpe = 16;
  r.reference_perplexity = 10.0;
  r.reference_nll = std::log(10.0);
  const auto add = [&](SweepPointKind kind, std::string label, double budget, double bpe,
                       double ppl, double kl) {
    SweepPoint p;
    p.kind = kind;
    p.label = std::move(label);
    p.budget_bpe = budget;
    p.bpe = bpe;
    p.evaluated = true;
    p.perplexity = ppl;
    p.nll = std::log(ppl);
    p.kl = kl;
    p.top1 = 0.9;
    p.score = kind == SweepPointKind::kUniform ? -1.0 : 1.5;
    p.proved_optimal = kind == SweepPointKind::kAutoQuant;
    p.recipe = "recipes/x.yaml";
    r.points.push_back(p);
  };
  add(SweepPointKind::kUniform, "NVFP4 max", 0, 4.5, 11.0, 0.2);
  add(SweepPointKind::kUniform, "FP8", 0, 8.0, 10.1, 0.02);
  add(SweepPointKind::kUniform, "BF16", 0, 16.0, 10.0, 0.0);
  add(SweepPointKind::kAutoQuant, "AutoQuantize 6.00", 6.0, 5.99, 10.4, 0.1);
  add(SweepPointKind::kRandom, "random 6.00 (seed 1)", 6.0, 5.97, 10.8, 0.15);
  add(SweepPointKind::kAutoQuant, "AutoQuantize 7.00", 7.0, 6.95, 10.2, 0.05);
  add(SweepPointKind::kAutoQuant, "AutoQuantize 5.00", 5.0, 0, 0, 0);
  r.points.back().evaluated = false;
  r.points.back().note = "infeasible: the minimum is 5.35";
  return r;
}

TEST(SweepReport, JsonAndCsvCarryEveryPoint) {
  const SweepReport r = HandMadeReport();
  const nlohmann::json json = nlohmann::json::parse(SweepReportJson(r));
  ASSERT_EQ(json["points"].size(), r.points.size());
  EXPECT_EQ(json["points"][3]["kind"], "autoquant");
  EXPECT_EQ(json["points"][3]["bpe"], 5.99);
  EXPECT_TRUE(json["points"][0]["score"].is_null());  // uniform, not scored
  EXPECT_TRUE(json["points"].back()["perplexity"].is_null());
  EXPECT_EQ(json["points"].back()["note"], "infeasible: the minimum is 5.35");
  const std::string csv = SweepReportCsv(r);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), static_cast<long>(r.points.size() + 1));
  EXPECT_NE(csv.find("\nrandom,random 6.00 (seed 1),6,5.97,"), std::string::npos) << csv;
}

TEST(SweepReport, SvgHasAxesTicksLabelsAndLegend) {
  const std::string svg = SweepPlotSvg(HandMadeReport());
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("bits per element (decoder Linear weights, scales included)"),
            std::string::npos);
  EXPECT_NE(svg.find("perplexity (lower is better)"), std::string::npos);
  EXPECT_NE(svg.find("AutoQuantize (solved per budget)"), std::string::npos);
  EXPECT_NE(svg.find("uniform NVFP4 four_over_six"), std::string::npos);
  EXPECT_NE(svg.find("<polyline"), std::string::npos);  // the AutoQuantize line
  // Tick labels on the BPE axis: 4.5 .. 16 padded gives steps of 2.
  EXPECT_NE(svg.find(">8</text>"), std::string::npos);
  EXPECT_NE(svg.find(">16</text>"), std::string::npos);
  EXPECT_EQ(svg.find("<script"), std::string::npos);
}

TEST(SweepReport, HtmlIsSelfContained) {
  const std::string html = SweepReportHtml(HandMadeReport());
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("models/tiny &amp; &lt;odd&gt;"), std::string::npos);  // escaped
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  // The only URL is the SVG namespace name, which is never fetched.
  const std::regex url("https?://[^\"]*");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), url); it != std::sregex_iterator();
       ++it) {
    EXPECT_EQ(it->str(), "http://www.w3.org/2000/svg");
  }
  EXPECT_NE(html.find("infeasible: the minimum is 5.35"), std::string::npos);
}

// Renders the report with tools/render_report.sh (headless Chromium) and checks the PNG is a real
// picture: tens of kilobytes and many distinct colours (tests/autoquant/png_stats.py decodes it).
// Skipped where chromium is absent (CI).
TEST(SweepReport, RendersInHeadlessChromium) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("qf_autoquant_render_" + std::to_string(getpid()));
  WriteSweepReport(HandMadeReport(), dir);
  const std::filesystem::path png = dir / "report.png";
  const std::string script = std::string(QF_SOURCE_DIR) + "/tools/render_report.sh";
  const int status = std::system(("sh '" + script + "' '" + (dir / "report.html").string() + "' '" +
                                  png.string() + "' 1100 1300 >/dev/null 2>&1")
                                     .c_str());
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code == 77) {
    std::filesystem::remove_all(dir);
    GTEST_SKIP() << "chromium not installed: tools/render_report.sh skipped";
  }
  ASSERT_EQ(code, 0) << "render_report.sh failed";
  ASSERT_TRUE(std::filesystem::exists(png));
  EXPECT_GT(std::filesystem::file_size(png), 20'000u);
  FILE* pipe = popen(("python3 '" + std::string(QF_SOURCE_DIR) +
                      "/tests/autoquant/png_stats.py' '" + png.string() + "' 2>&1")
                         .c_str(),
                     "r");
  ASSERT_NE(pipe, nullptr);
  char buffer[256] = {};
  const std::string out = fgets(buffer, sizeof(buffer), pipe) ? buffer : "";
  pclose(pipe);
  std::istringstream fields(out);
  int64_t width = 0, height = 0, colours = 0;
  fields >> width >> height >> colours;
  EXPECT_EQ(width, 1100) << out;
  EXPECT_EQ(height, 1300) << out;
  EXPECT_GT(colours, 16) << out;  // text antialiasing and six marker colours
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qf
