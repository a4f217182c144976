// AutoQuantize candidate formats: names and bits per element with the scales included.
//   NVFP4  4 value bits + one E4M3 scale per 16 values = 4 + 8/16 = 4.5 (ModelOpt's effective_bits)
//   MXFP4  4 + one E8M0 scale per 32 values = 4.25
//   FP8    8; the one F32 per-tensor scale adds 32/numel bits (0.008 for a 64x64 weight) and is
//          left out, as ModelOpt leaves it out
//   MXFP8  8 + 8/32 = 8.25
//   none   BF16, 16
#include <algorithm>
#include <array>
#include <string>

#include "quantforge/autoquant.h"
#include "quantforge/error.h"
#include "src/autoquant/format_table.h"

namespace qf {
namespace {

struct FormatRow {
  AutoFormat format;
  std::string_view name;
  int64_t quarter_bits;
};

constexpr std::array<FormatRow, 6> kFormats = {{
    {AutoFormat::kMxfp4, "mxfp4", 17},
    {AutoFormat::kNvfp4, "nvfp4", 18},
    {AutoFormat::kNvfp4FourOverSix, "nvfp4-4o6", 18},
    {AutoFormat::kFp8, "fp8", 32},
    {AutoFormat::kMxfp8, "mxfp8", 33},
    {AutoFormat::kNone, "none", 64},
}};

const FormatRow& RowOf(AutoFormat format) {
  for (const FormatRow& row : kFormats) {
    if (row.format == format) return row;
  }
  QF_CHECK(false);
  return kFormats[0];
}

std::string KnownNames() {
  std::string names;
  for (const FormatRow& row : kFormats)
    names += (names.empty() ? "" : ", ") + std::string(row.name);
  return names;
}

}  // namespace

std::string_view AutoFormatName(AutoFormat format) { return RowOf(format).name; }

std::optional<AutoFormat> ParseAutoFormat(std::string_view name) {
  for (const FormatRow& row : kFormats) {
    if (row.name == name) return row.format;
  }
  if (name == "bf16") return AutoFormat::kNone;
  if (name == "nvfp4_4o6" || name == "nvfp4-four-over-six") return AutoFormat::kNvfp4FourOverSix;
  return std::nullopt;
}

std::vector<AutoFormat> ParseAutoFormatList(std::string_view csv) {
  std::vector<AutoFormat> formats;
  size_t begin = 0;
  while (begin <= csv.size()) {
    const size_t end = std::min(csv.find(',', begin), csv.size());
    const std::string_view name = csv.substr(begin, end - begin);
    const std::optional<AutoFormat> format = ParseAutoFormat(name);
    if (!format) {
      throw Error("format '" + std::string(name) + "' in '" + std::string(csv) +
                  "' is unknown (expected one of " + KnownNames() + ")");
    }
    if (std::find(formats.begin(), formats.end(), *format) != formats.end()) {
      throw Error("format '" + std::string(name) + "' is listed twice in '" + std::string(csv) +
                  "'");
    }
    formats.push_back(*format);
    begin = end + 1;
  }
  if (std::find(formats.begin(), formats.end(), AutoFormat::kNone) == formats.end()) {
    formats.push_back(AutoFormat::kNone);
  }
  // The enum is declared in ascending bits; ties (nvfp4 / nvfp4-4o6) keep declaration order.
  std::sort(formats.begin(), formats.end());
  return formats;
}

double BitsPerElement(AutoFormat format) {
  return static_cast<double>(RowOf(format).quarter_bits) / 4.0;
}

int64_t QuarterBitsPerElement(AutoFormat format) { return RowOf(format).quarter_bits; }

}  // namespace qf

namespace qf::autoquant {

std::string_view NumericsConfigPath(AutoFormat format) {
  switch (format) {
    case AutoFormat::kMxfp4:
      return "configs/numerics/mxfp4";
    case AutoFormat::kNvfp4:
      return "configs/numerics/nvfp4";
    case AutoFormat::kNvfp4FourOverSix:
      return "configs/numerics/nvfp4_four_over_six";
    case AutoFormat::kFp8:
      return "configs/numerics/fp8";
    case AutoFormat::kMxfp8:
      return "configs/numerics/mxfp8";
    case AutoFormat::kNone:
      break;
  }
  return {};
}

std::string_view AlgorithmYaml(bool has_four_over_six) {
  // NVFP4_FOUR_OVER_SIX_CFG's algorithm: the pipeline maps exactly these multipliers on a static
  // four_over_six quantizer onto BlockScaleAlgorithm::kFourOverSix; dynamic NVFP4 and FP8 weights
  // in the same recipe stay max.
  return has_four_over_six ? "{method: mse, fp8_scale_sweep: false, start_multiplier: 1.0, "
                             "stop_multiplier: 1.5, step_size: 0.5}"
                           : "max";
}

bool PlannedAs(const QuantFormat& planned, AutoFormat format) {
  switch (format) {
    case AutoFormat::kMxfp4:
      return planned.kind == QuantKind::kMxfp4;
    case AutoFormat::kNvfp4:
      return planned.kind == QuantKind::kNvfp4 && !planned.four_over_six;
    case AutoFormat::kNvfp4FourOverSix:
      return planned.kind == QuantKind::kNvfp4 && planned.four_over_six;
    case AutoFormat::kFp8:
      return planned.kind == QuantKind::kFp8PerTensor;
    case AutoFormat::kMxfp8:
      return planned.kind == QuantKind::kMxfp8;
    case AutoFormat::kNone:
      return !planned.enabled();
  }
  return false;
}

std::optional<LinearQuantization> ServedQuantization(AutoFormat format) {
  switch (format) {
    case AutoFormat::kNvfp4:
    case AutoFormat::kNvfp4FourOverSix:
      return LinearQuantization{"W4A16_NVFP4", StoredWeightFormat::kNvfp4, {InputQuantKind::kNone}};
    case AutoFormat::kFp8:
      return LinearQuantization{"FP8_PER_CHANNEL_PER_TOKEN",
                                StoredWeightFormat::kFp8PerChannel,
                                {InputQuantKind::kFp8PerToken}};
    case AutoFormat::kMxfp8:
      return LinearQuantization{"MXFP8", StoredWeightFormat::kMxfp8, {InputQuantKind::kMxfp8}};
    case AutoFormat::kMxfp4:
      return LinearQuantization{"MXFP4", StoredWeightFormat::kMxfp4, {InputQuantKind::kMxfp4}};
    case AutoFormat::kNone:
      break;
  }
  return std::nullopt;
}

}  // namespace qf::autoquant
