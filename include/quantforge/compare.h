// Reconstruction error of a checkpoint's weights under several formats and algorithms, without
// writing anything: the numbers a user needs to pick a format, and the evidence behind claims such
// as "four-over-six cuts the median MSE of the routed-expert weights by 16.4% against max".
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "quantforge/metrics.h"
#include "quantforge/thread_pool.h"

namespace qf {

struct CompareOptions {
  std::filesystem::path model;
  // Empty: every linear weight. Otherwise only the weights this recipe quantizes.
  std::string recipe;
  // Formats: nvfp4, mxfp4, mxfp8, fp8 (per tensor), fp8_per_channel.
  std::vector<std::string> formats = {"nvfp4", "mxfp4", "mxfp8", "fp8"};
  // NVFP4 block-scale algorithms: max, mse, four_over_six. Other formats use their one rule.
  std::vector<std::string> algorithms = {"max", "mse", "four_over_six"};
  // Optional glob over tensor names (e.g. '*experts*') to restrict the comparison.
  std::string tensor_glob;
};

struct CompareRow {
  std::string tensor;
  std::string format;     // "nvfp4"
  std::string algorithm;  // "four_over_six"; "-" for single-rule formats
  bool padded = false;    // last dimension zero-padded to the block size (simulation only)
  ErrorStats error;
};

struct CompareSummaryRow {
  std::string format;
  std::string algorithm;
  int64_t tensors = 0;
  double median_mse = 0.0;
  double median_rel_rms = 0.0;
  double median_sqnr_db = 0.0;
};

// One algorithm against NVFP4 max over the same tensors.
struct CompareReduction {
  std::string algorithm;
  double median_of_reductions = 0.0;  // median over tensors of 1 - mse(alg) / mse(max)
  double reduction_of_medians = 0.0;  // 1 - median mse(alg) / median mse(max)
};

struct CompareReport {
  std::vector<CompareRow> rows;
  std::vector<CompareSummaryRow> summary;
  std::vector<CompareReduction> nvfp4_reductions_vs_max;
  int64_t num_tensors = 0;
};

CompareReport RunCompare(const CompareOptions& options, ThreadPool* pool);
std::string CompareReportText(const CompareReport& report, bool per_tensor);
std::string CompareReportJson(const CompareReport& report);  // one line

}  // namespace qf
