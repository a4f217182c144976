// RunCompare: quantize -> dequantize -> error, per weight, per format and algorithm.
#include "quantforge/compare.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "quantforge/checkpoint.h"
#include "quantforge/error.h"
#include "quantforge/quantize.h"
#include "quantforge/recipe.h"

namespace qf {
namespace {

struct Variant {
  std::string format;
  std::string algorithm;
};

std::vector<Variant> Variants(const CompareOptions& options) {
  std::vector<Variant> variants;
  for (const std::string& f : options.formats) {
    if (f == "nvfp4") {
      for (const std::string& a : options.algorithms) {
        if (!ParseAlgorithm(a)) {
          throw Error("unknown algorithm '" + a + "' (max, mse, four_over_six)");
        }
        variants.push_back({f, a});
      }
    } else if (f == "mxfp4" || f == "mxfp8" || f == "fp8" || f == "fp8_per_channel") {
      variants.push_back({f, "-"});
    } else {
      throw Error("unknown format '" + f + "' (nvfp4, mxfp4, mxfp8, fp8, fp8_per_channel)");
    }
  }
  return variants;
}

int64_t BlockOf(const std::string& format) {
  if (format == "nvfp4") return kNvfp4BlockSize;
  if (format == "mxfp4" || format == "mxfp8") return kMxBlockSize;
  return 1;
}

// Fake quantization: the values a serving engine would compute with.
std::vector<float> RoundTrip(const TensorView& view, const Variant& v, ThreadPool* pool) {
  std::vector<float> out(static_cast<size_t>(view.NumElements()));
  if (v.format == "nvfp4") {
    Nvfp4Options o;
    o.algorithm = *ParseAlgorithm(v.algorithm);
    DequantizeNvfp4(QuantizeNvfp4(view, o, pool), out, pool);
  } else if (v.format == "mxfp4" || v.format == "mxfp8") {
    const MxElement e = v.format == "mxfp4" ? MxElement::kE2M1 : MxElement::kE4M3;
    DequantizeMx(QuantizeMx(view, e, MxScaleRule::kOcpFloor, pool), out, pool);
  } else {
    const Fp8Granularity g =
        v.format == "fp8" ? Fp8Granularity::kPerTensor : Fp8Granularity::kPerChannel;
    DequantizeFp8(QuantizeFp8(view, g, std::nullopt, pool), out, pool);
  }
  return out;
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

std::vector<const TensorInfo*> SelectWeights(const Checkpoint& checkpoint,
                                             const CompareOptions& options) {
  std::vector<TensorDesc> descs;
  for (const TensorInfo& info : checkpoint.Tensors()) {
    descs.push_back(TensorDesc{info.name, info.dtype, info.shape});
  }
  // Without a recipe any preset serves to find the linear weights (is_linear_weight does not
  // depend on the rules).
  const Recipe recipe = LoadRecipe(options.recipe.empty() ? "W4A16_NVFP4_CFG" : options.recipe);
  const std::vector<TensorPlan> plans = PlanCheckpoint(recipe, descs);
  std::vector<const TensorInfo*> selected;
  for (const TensorPlan& p : plans) {
    if (!p.is_linear_weight) continue;
    if (!options.recipe.empty() && !p.weight.enabled()) continue;
    if (!options.tensor_glob.empty() && !GlobMatch(options.tensor_glob, p.tensor)) continue;
    selected.push_back(checkpoint.Find(p.tensor));
  }
  if (selected.empty()) {
    throw Error("no linear weights selected (check --recipe and --tensors)",
                {.path = checkpoint.Directory().string()});
  }
  return selected;
}

}  // namespace

CompareReport RunCompare(const CompareOptions& options, ThreadPool* pool) {
  const std::vector<Variant> variants = Variants(options);
  const Checkpoint checkpoint = Checkpoint::Open(options.model);
  const std::vector<const TensorInfo*> weights = SelectWeights(checkpoint, options);

  CompareReport report;
  report.num_tensors = static_cast<int64_t>(weights.size());
  for (const TensorInfo* info : weights) {
    const TensorView view = checkpoint.View(*info);
    const std::vector<float> original = ToFloat(view, pool);
    for (const Variant& v : variants) {
      const std::vector<float> approx = RoundTrip(view, v, pool);
      report.rows.push_back(CompareRow{info->name, v.format, v.algorithm,
                                       view.Cols() % BlockOf(v.format) != 0,
                                       ComputeError(original, approx, pool)});
    }
    checkpoint.ReleasePages(*info);
  }

  // Medians per variant, and NVFP4 algorithms against max over the same tensors.
  std::map<std::string, std::vector<double>> mse_by_tensor_max;
  for (const Variant& v : variants) {
    std::vector<double> mse, rel, sqnr;
    for (const CompareRow& r : report.rows) {
      if (r.format != v.format || r.algorithm != v.algorithm) continue;
      mse.push_back(r.error.mse);
      rel.push_back(r.error.rel_rms);
      sqnr.push_back(r.error.sqnr_db);
    }
    report.summary.push_back(CompareSummaryRow{v.format, v.algorithm,
                                               static_cast<int64_t>(mse.size()), Median(mse),
                                               Median(rel), Median(sqnr)});
  }
  std::map<std::string, double> max_mse;  // tensor -> NVFP4 max mse
  for (const CompareRow& r : report.rows) {
    if (r.format == "nvfp4" && r.algorithm == "max") max_mse[r.tensor] = r.error.mse;
  }
  if (!max_mse.empty()) {
    for (const Variant& v : variants) {
      if (v.format != "nvfp4" || v.algorithm == "max") continue;
      std::vector<double> reductions, alg_mse, base_mse;
      for (const CompareRow& r : report.rows) {
        if (r.format != "nvfp4" || r.algorithm != v.algorithm) continue;
        const double base = max_mse.at(r.tensor);
        alg_mse.push_back(r.error.mse);
        base_mse.push_back(base);
        if (base > 0) reductions.push_back(1.0 - r.error.mse / base);
      }
      const double median_base = Median(base_mse);
      report.nvfp4_reductions_vs_max.push_back(CompareReduction{
          v.algorithm, Median(reductions),
          median_base > 0 ? 1.0 - Median(alg_mse) / median_base : 0.0});
    }
  }
  return report;
}

std::string CompareReportText(const CompareReport& report, bool per_tensor) {
  std::string out;
  if (per_tensor) {
    out += fmt::format("{:<52} {:<16} {:<14} {:>12} {:>9} {:>8}\n", "tensor", "format",
                       "algorithm", "mse", "rel rms", "sqnr dB");
    for (const CompareRow& r : report.rows) {
      out += fmt::format("{:<52} {:<16} {:<14} {:>12.4e} {:>9.5f} {:>8.2f}{}\n", r.tensor,
                         r.format, r.algorithm, r.error.mse, r.error.rel_rms, r.error.sqnr_db,
                         r.padded ? "  (padded)" : "");
    }
    out += "\n";
  }
  out += fmt::format("median over {} weights:\n", report.num_tensors);
  out += fmt::format("{:<16} {:<14} {:>12} {:>9} {:>8}\n", "format", "algorithm", "mse",
                     "rel rms", "sqnr dB");
  for (const CompareSummaryRow& s : report.summary) {
    out += fmt::format("{:<16} {:<14} {:>12.4e} {:>9.5f} {:>8.2f}\n", s.format, s.algorithm,
                       s.median_mse, s.median_rel_rms, s.median_sqnr_db);
  }
  for (const CompareReduction& r : report.nvfp4_reductions_vs_max) {
    out += fmt::format(
        "nvfp4 {} vs max: median per-tensor MSE reduction {:.1f}%, median MSE reduction "
        "{:.1f}%\n",
        r.algorithm, 100.0 * r.median_of_reductions, 100.0 * r.reduction_of_medians);
  }
  return out;
}

std::string CompareReportJson(const CompareReport& report) {
  nlohmann::json j;
  j["num_tensors"] = report.num_tensors;
  for (const CompareRow& r : report.rows) {
    j["rows"].push_back({{"tensor", r.tensor},
                         {"format", r.format},
                         {"algorithm", r.algorithm},
                         {"padded", r.padded},
                         {"mse", r.error.mse},
                         {"rel_rms", r.error.rel_rms},
                         {"sqnr_db", r.error.sqnr_db}});
  }
  for (const CompareSummaryRow& s : report.summary) {
    j["summary"].push_back({{"format", s.format},
                            {"algorithm", s.algorithm},
                            {"tensors", s.tensors},
                            {"median_mse", s.median_mse},
                            {"median_rel_rms", s.median_rel_rms},
                            {"median_sqnr_db", s.median_sqnr_db}});
  }
  for (const CompareReduction& r : report.nvfp4_reductions_vs_max) {
    j["nvfp4_reductions_vs_max"].push_back(
        {{"algorithm", r.algorithm},
         {"median_of_reductions", r.median_of_reductions},
         {"reduction_of_medians", r.reduction_of_medians}});
  }
  return j.dump();
}

}  // namespace qf
