// `quantforge demo`: quantizes one generated Llama-like weight tensor (synth layer: heavy-tailed
// body, row gains, outlier columns) with every format and algorithm quantforge implements, and
// prints an aligned error table: bits per element (scales included), MSE, relative RMS error,
// SQNR and the time to quantize. The reference is the F32 tensor, so the BF16 row shows what
// storing the master weights in BF16 costs. The README's first command runs it.
#include <fmt/core.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "quantforge/error.h"
#include "quantforge/formats.h"
#include "quantforge/metrics.h"
#include "quantforge/quantize.h"
#include "quantforge/synth.h"
#include "tools/quantforge/commands.h"

namespace qf::cli {
namespace {

struct DemoFlags {
  int64_t rows = 4096;
  int64_t cols = 4096;
  uint64_t seed = 0;
};

struct Row {
  std::string format;
  std::string algorithm;
  double bits_per_element = 0;
  ErrorStats error;
  double seconds = 0;
};

// Runs `quantize` (which returns the storage bits and fills `recon`), timing the quantize step
// only: `quantize` calls `stop` between quantizing and dequantizing.
using Quantizer =
    std::function<double(std::vector<float>& recon, const std::function<void()>& stop)>;

Row Measure(std::string format, std::string algorithm, const std::vector<float>& original,
            ThreadPool* pool, const Quantizer& quantize) {
  std::vector<float> recon(original.size());
  const auto start = std::chrono::steady_clock::now();
  auto end = start;
  const double bits = quantize(recon, [&] { end = std::chrono::steady_clock::now(); });
  Row row{std::move(format), std::move(algorithm), 0.0, {}, 0.0};
  row.bits_per_element = bits / static_cast<double>(original.size());
  row.error = ComputeError(original, recon, pool);
  row.seconds = std::chrono::duration<double>(end - start).count();
  return row;
}

int RunDemo(const DemoFlags& flags, Context& context) {
  if (flags.rows <= 0 || flags.cols <= 0) {
    throw Error("demo: --rows and --cols must be positive, found " + std::to_string(flags.rows) +
                " x " + std::to_string(flags.cols));
  }
  ThreadPool* pool = context.pool.get();
  const std::string name = "demo.mlp.up_proj.weight";
  const WeightStats stats = LinearWeightStats(flags.cols);
  const WeightGenerator gen(stats, SynthTensorKey(flags.seed, name), flags.rows, flags.cols);
  std::vector<float> weights(static_cast<size_t>(flags.rows * flags.cols));
  GenerateWeights(stats, SynthTensorKey(flags.seed, name), flags.rows, flags.cols, weights, pool);
  const TensorView view = MakeView(std::span<const float>(weights), {flags.rows, flags.cols}, name);
  const double n = static_cast<double>(weights.size());

  fmt::print(
      "quantforge demo: a generated tensor (no model needed): [{}, {}] F32, Llama-like synthetic "
      "weights, seed {}:\n  Student-t body (df {}), std {:.4g}, log-normal row gains (sigma {}), "
      "{} outlier input columns (x{}-{}), {} isolated outliers; {} threads.\n\n",
      flags.rows, flags.cols, flags.seed, stats.student_t_df, stats.std, stats.row_scale_sigma,
      gen.OutlierColumns().size(), stats.outlier_column_min_gain, stats.outlier_column_max_gain,
      gen.IsolatedOutliers().size(), pool->NumWorkers());

  std::vector<Row> rows;
  rows.push_back(Measure("BF16", "rne", weights, pool, [&](auto& recon, const auto& stop) {
    std::vector<uint16_t> bits(weights.size());
    for (size_t i = 0; i < weights.size(); ++i) bits[i] = EncodeBF16(weights[i]);
    stop();
    for (size_t i = 0; i < weights.size(); ++i) recon[i] = DecodeBF16(bits[i]);
    return 16.0 * n;
  }));

  const auto nvfp4 = [&](std::string label, Nvfp4Options options) {
    rows.push_back(
        Measure("NVFP4", std::move(label), weights, pool, [&](auto& recon, const auto& stop) {
          const Nvfp4Tensor q = QuantizeNvfp4(view, options, pool);
          stop();
          DequantizeNvfp4(q, recon, pool);
          return 8.0 * (q.codes.size() + q.block_scales.size()) + 32.0;
        }));
  };
  Nvfp4Options options;
  options.algorithm = BlockScaleAlgorithm::kMax;
  nvfp4("max", options);
  options.algorithm = BlockScaleAlgorithm::kMse;
  nvfp4("mse", options);
  options.mse.fp8_scale_sweep = true;
  nvfp4("mse fp8_scale_sweep", options);
  options = Nvfp4Options{};
  options.algorithm = BlockScaleAlgorithm::kFourOverSix;
  nvfp4("four_over_six", options);

  const auto mx = [&](std::string format, MxElement element) {
    rows.push_back(
        Measure(std::move(format), "ocp_floor", weights, pool, [&](auto& recon, const auto& stop) {
          const MxTensor q = QuantizeMx(view, element, MxScaleRule::kOcpFloor, pool);
          stop();
          DequantizeMx(q, recon, pool);
          return 8.0 * (q.codes.size() + q.scales.size());
        }));
  };
  mx("MXFP4", MxElement::kE2M1);
  mx("MXFP8", MxElement::kE4M3);

  const auto fp8 = [&](std::string label, Fp8Granularity granularity) {
    rows.push_back(
        Measure("FP8", std::move(label), weights, pool, [&](auto& recon, const auto& stop) {
          const Fp8Tensor q = QuantizeFp8(view, granularity, std::nullopt, pool);
          stop();
          DequantizeFp8(q, recon, pool);
          return 8.0 * q.codes.size() + 32.0 * q.scales.size();
        }));
  };
  fp8("per_tensor", Fp8Granularity::kPerTensor);
  fp8("per_channel", Fp8Granularity::kPerChannel);

  fmt::print("{:<6}  {:<20}  {:>9}  {:>11}  {:>9}  {:>8}  {:>9}\n", "format", "algorithm",
             "bits/elem", "MSE", "rel RMS", "SQNR dB", "time ms");
  for (const Row& row : rows) {
    fmt::print("{:<6}  {:<20}  {:>9.4f}  {:>11.4e}  {:>9.5f}  {:>8.2f}  {:>9.1f}\n", row.format,
               row.algorithm, row.bits_per_element, row.error.mse, row.error.rel_rms,
               row.error.sqnr_db, row.seconds * 1e3);
  }
  fmt::print(
      "\nbits/elem counts codes and every scale (NVFP4: E4M3 per 16 + one F32; MX: E8M0 per 32; "
      "FP8: F32 per tensor or per row). Errors are against the F32 tensor; time is quantization "
      "only.\n");
  return 0;
}

}  // namespace

Action RegisterDemo(CLI::App& app) {
  CLI::App* sub = app.add_subcommand(
      "demo", "Quantize a generated Llama-like tensor and print its error table");
  auto flags = std::make_shared<DemoFlags>();
  sub->add_option("--rows", flags->rows, "Rows (output features) of the generated tensor")
      ->default_val(flags->rows);
  sub->add_option("--cols", flags->cols, "Columns (input features, the block dimension)")
      ->default_val(flags->cols);
  sub->add_option("--seed", flags->seed, "Seed of the generated tensor")->default_val(flags->seed);
  return [flags](Context& context) { return RunDemo(*flags, context); };
}

}  // namespace qf::cli
