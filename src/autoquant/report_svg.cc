// The sweep plot, hand-made SVG 1.1 (no scripts, no external references, so it can be inlined in
// the HTML report): left panel achieved BPE against perplexity, right panel against KL divergence
// to the unquantized model. AutoQuantize points are joined by a line in BPE order, random
// baselines are triangles, uniform references labelled squares; a shared legend sits below.
// Axis ticks are "nice" numbers (1, 2 or 5 times a power of ten, four to eight per axis).
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "fmt/core.h"
#include "quantforge/autoquant_report.h"
#include "src/autoquant/xml_escape.h"

namespace qf {
namespace {

constexpr double kPanelWidth = 500.0;
constexpr double kPanelHeight = 420.0;
constexpr double kLeft = 78.0, kRight = 22.0, kTop = 44.0, kBottom = 64.0;
constexpr double kLegendHeight = 56.0;

constexpr const char* kAutoColor = "#1f77b4";
constexpr const char* kRandomColor = "#ff7f0e";

const char* UniformColor(const std::string& label) {
  if (label == "NVFP4 max") return "#2ca02c";
  if (label == "NVFP4 four_over_six") return "#9467bd";
  if (label == "FP8") return "#d62728";
  return "#555555";  // BF16
}


struct Range {
  double lo = 0.0, hi = 1.0;
};

// Pads [lo, hi] by 6% each side (a unit when it is one value) and returns ticks on 1/2/5 steps.
Range PaddedRange(double lo, double hi, bool from_zero) {
  if (!(lo <= hi)) return {0.0, 1.0};
  if (hi - lo < 1e-12 * std::max(1.0, std::abs(hi))) {
    const double d = std::max(std::abs(hi) * 0.05, 1e-3);
    lo -= d;
    hi += d;
  }
  const double pad = 0.06 * (hi - lo);
  Range r{lo - pad, hi + pad};
  if (from_zero && lo >= 0.0) r.lo = 0.0;
  return r;
}

std::vector<double> NiceTicks(const Range& r) {
  const double raw = (r.hi - r.lo) / 8.0;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  double step = power;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * power;
    if (step >= raw) break;
  }
  std::vector<double> ticks;
  for (double t = std::ceil(r.lo / step) * step; t <= r.hi + 1e-9 * step; t += step) {
    ticks.push_back(std::abs(t) < 1e-12 * step ? 0.0 : t);
  }
  return ticks;
}

std::string TickLabel(double v) { return fmt::format("{:.6g}", v); }

std::string Triangle(double x, double y, const char* color) {
  return fmt::format(
      "<polygon points=\"{:.1f},{:.1f} {:.1f},{:.1f} {:.1f},{:.1f}\" fill=\"{}\" "
      "stroke=\"#000\" stroke-width=\"0.6\"/>\n",
      x, y - 6, x - 5.5, y + 4, x + 5.5, y + 4, color);
}

std::string Square(double x, double y, const char* color) {
  return fmt::format(
      "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"10\" height=\"10\" fill=\"{}\" stroke=\"#000\" "
      "stroke-width=\"0.6\"/>\n",
      x - 5, y - 5, color);
}

std::string Circle(double x, double y, const char* color) {
  return fmt::format(
      "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4.5\" fill=\"{}\" stroke=\"#000\" "
      "stroke-width=\"0.6\"/>\n",
      x, y, color);
}

std::string Panel(const SweepReport& report, double x0, const std::string& title,
                  const std::string& y_label, const std::function<double(const SweepPoint&)>& y_of,
                  bool y_from_zero) {
  std::vector<const SweepPoint*> points;
  for (const SweepPoint& p : report.points) {
    if (p.evaluated && std::isfinite(y_of(p))) points.push_back(&p);
  }
  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo;
  double y_lo = x_lo, y_hi = -x_lo;
  for (const SweepPoint* p : points) {
    x_lo = std::min(x_lo, p->bpe);
    x_hi = std::max(x_hi, p->bpe);
    y_lo = std::min(y_lo, y_of(*p));
    y_hi = std::max(y_hi, y_of(*p));
  }
  const Range xr = PaddedRange(x_lo, x_hi, false);
  const Range yr = PaddedRange(y_lo, y_hi, y_from_zero);
  const double left = x0 + kLeft, right = x0 + kPanelWidth - kRight;
  const double top = kTop, bottom = kPanelHeight - kBottom;
  const auto sx = [&](double v) { return left + (v - xr.lo) / (xr.hi - xr.lo) * (right - left); };
  const auto sy = [&](double v) { return bottom - (v - yr.lo) / (yr.hi - yr.lo) * (bottom - top); };

  std::string svg;
  svg += fmt::format(
      "<text x=\"{:.1f}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" "
      "font-weight=\"bold\">{}</text>\n",
      (left + right) / 2, XmlEscape(title));
  svg += fmt::format(
      "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"#fff\" "
      "stroke=\"#333\"/>\n",
      left, top, right - left, bottom - top);
  for (double t : NiceTicks(xr)) {
    const double x = sx(t);
    svg += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#ddd\"/>"
        "<line x1=\"{0:.1f}\" y1=\"{2:.1f}\" x2=\"{0:.1f}\" y2=\"{3:.1f}\" stroke=\"#333\"/>"
        "<text x=\"{0:.1f}\" y=\"{4:.1f}\" text-anchor=\"middle\" font-size=\"12\">{5}</text>\n",
        x, top, bottom, bottom + 5, bottom + 19, TickLabel(t));
  }
  for (double t : NiceTicks(yr)) {
    const double y = sy(t);
    svg += fmt::format(
        "<line x1=\"{1:.1f}\" y1=\"{0:.1f}\" x2=\"{2:.1f}\" y2=\"{0:.1f}\" stroke=\"#ddd\"/>"
        "<line x1=\"{3:.1f}\" y1=\"{0:.1f}\" x2=\"{1:.1f}\" y2=\"{0:.1f}\" stroke=\"#333\"/>"
        "<text x=\"{4:.1f}\" y=\"{5:.1f}\" text-anchor=\"end\" font-size=\"12\">{6}</text>\n",
        y, left, right, left - 5, left - 8, y + 4, TickLabel(t));
  }
  svg += fmt::format(
      "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"13\">bits per element "
      "(decoder Linear weights, scales included)</text>\n",
      (left + right) / 2, bottom + 42);
  svg += fmt::format(
      "<text transform=\"translate({:.1f},{:.1f}) rotate(-90)\" text-anchor=\"middle\" "
      "font-size=\"13\">{}</text>\n",
      x0 + 20, (top + bottom) / 2, XmlEscape(y_label));

  std::vector<const SweepPoint*> solved;
  for (const SweepPoint* p : points) {
    if (p->kind == SweepPointKind::kAutoQuant) solved.push_back(p);
  }
  std::sort(solved.begin(), solved.end(),
            [](const SweepPoint* a, const SweepPoint* b) { return a->bpe < b->bpe; });
  if (solved.size() > 1) {
    std::string line;
    for (const SweepPoint* p : solved)
      line += fmt::format("{:.1f},{:.1f} ", sx(p->bpe), sy(y_of(*p)));
    svg += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>\n",
                       line, kAutoColor);
  }
  for (const SweepPoint* p : points) {
    const double x = sx(p->bpe), y = sy(y_of(*p));
    switch (p->kind) {
      case SweepPointKind::kAutoQuant:
        svg += Circle(x, y, kAutoColor);
        break;
      case SweepPointKind::kRandom:
        svg += Triangle(x, y, kRandomColor);
        break;
      case SweepPointKind::kUniform:
        svg += Square(x, y, UniformColor(p->label));
        svg += fmt::format(
            "<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"{}\" "
            "fill=\"#222\">{}</text>\n",
            x < (left + right) / 2 ? x + 8 : x - 8, y - 8, x < (left + right) / 2 ? "start" : "end",
            XmlEscape(p->label));
        break;
    }
  }
  return svg;
}

}  // namespace

std::string SweepPlotSvg(const SweepReport& report) {
  const double width = 2 * kPanelWidth;
  const double height = kPanelHeight + kLegendHeight;
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}\" height=\"{1:.0f}\" "
      "viewBox=\"0 0 {0:.0f} {1:.0f}\" font-family=\"DejaVu Sans, Arial, sans-serif\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"#fafafa\"/>\n",
      width, height);
  svg += Panel(
      report, 0.0, "Perplexity vs bits per element", "perplexity (lower is better)",
      [](const SweepPoint& p) { return p.perplexity; }, false);
  svg += Panel(
      report, kPanelWidth, "KL divergence to the unquantized model",
      "KL(P_bf16 || P_quant), nats/token", [](const SweepPoint& p) { return p.kl; }, true);
  // Legend.
  double y = kPanelHeight + 12;
  double x = 90;
  const auto entry = [&](const std::string& marker, const std::string& label) {
    svg += marker;
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"12\">{}</text>\n", x + 12,
                       y + 4, XmlEscape(label));
    x += 24 + 7.0 * static_cast<double>(label.size());
  };
  entry(fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" "
                    "stroke-width=\"2\"/>",
                    x - 8, y, x + 8, y, kAutoColor) +
            Circle(x, y, kAutoColor),
        "AutoQuantize (solved per budget)");
  entry(Triangle(x, y, kRandomColor), "random assignment, same budget");
  x = 90;  // second row: the uniform references
  y += 24;
  for (const char* label : {"NVFP4 max", "NVFP4 four_over_six", "FP8", "BF16"}) {
    entry(Square(x, y, UniformColor(label)), std::string("uniform ") + label);
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace qf
