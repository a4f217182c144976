// `quantforge quantize`: a Hugging Face checkpoint in, a quantized checkpoint out (the main job).
//
// Without --model it runs on an embedded default: a small Llama-shaped checkpoint with realistic
// heavy-tailed weights, generated into a temporary directory (and removed afterwards), so the
// README's first command works on a fresh machine with no model at hand.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "quantforge/checkpoint.h"
#include "quantforge/error.h"
#include "quantforge/pipeline.h"
#include "quantforge/synth.h"
#include "src/util/format.h"
#include "tools/quantforge/commands.h"
#include "tools/quantforge/progress.h"

namespace qf::cli {
namespace {

struct QuantizeArgs {
  std::string model;
  std::string recipe = "W4A16_NVFP4_CFG";
  std::string out;
  std::string format = "modelopt";
  bool overwrite = false;
  bool weight_only = false;
  uint64_t shard_bytes = 5'000'000'000;
  std::string non_finite = "error";
  uint64_t seed = 0;
  bool no_fsync = false;
  std::string default_preset = "small";
  std::string calib;
  std::string tokenizer;
  int64_t calib_samples = 128;
  int64_t seq_len = 0;
};

extern "C" void OnInterrupt(int) { RequestCancel(); }

// A peak from /proc/self/status so far: "VmHWM:" (resident) or "VmPeak:" (address space, what
// prlimit --as bounds); 0 where unavailable.
uint64_t ProcStatusBytes(std::string_view key) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with(key)) return std::stoull(line.substr(key.size())) * 1024;  // in kB
  }
  return 0;
}

// Layer-by-layer calibration on stderr: a progress line redrawn on a terminal ("calib: layer
// 3/32, 12345 tokens/s"), and one summary line always, with the memory estimate next to the
// measured peak (which, calibration coming first, is calibration's).
class CalibrationReport {
 public:
  explicit CalibrationReport(bool is_terminal) : is_terminal_(is_terminal) {}

  void Update(const CalibrationProgress& p) {
    // Whole-model tokens per second: token-layers done over the number of layers.
    const double token_layers = static_cast<double>(p.layer * p.num_tokens + p.tokens_done);
    const double rate =
        p.seconds > 0 ? token_layers / static_cast<double>(p.num_layers) / p.seconds : 0.0;
    if (p.finished) {
      if (drawn_) std::fputs("\r\033[K", stderr);
      std::fprintf(stderr,
                   "calib: %lld sequences x %lld tokens, %lld layers in %.1f s (%.0f tokens/s); "
                   "memory estimate %s + fixed overhead; peak RSS %s, address space %s\n",
                   static_cast<long long>(p.sequences), static_cast<long long>(p.seq_len),
                   static_cast<long long>(p.num_layers), p.seconds, rate,
                   FormatBytes(p.estimated_bytes).c_str(),
                   FormatBytes(ProcStatusBytes("VmHWM:")).c_str(),
                   FormatBytes(ProcStatusBytes("VmPeak:")).c_str());
      return;
    }
    if (!is_terminal_ || p.seconds - last_draw_ < 0.1) return;
    last_draw_ = p.seconds;
    drawn_ = true;
    std::fprintf(stderr, "\r\033[Kcalib: layer %lld/%lld, %.0f tokens/s",
                 static_cast<long long>(p.layer + 1), static_cast<long long>(p.num_layers), rate);
  }

 private:
  bool is_terminal_;
  bool drawn_ = false;
  double last_draw_ = -1.0;
};

// Removes the generated default model however the job ends.
class TempDir {
 public:
  explicit TempDir(std::filesystem::path path) : path_(std::move(path)) {}
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

int Run(const QuantizeArgs& args, Context& context) {
  QuantizeOptions options;
  options.recipe = args.recipe;
  options.out = args.out;
  options.overwrite = args.overwrite;
  options.weight_only = args.weight_only;
  options.max_shard_bytes = args.shard_bytes;
  options.sync_to_disk = !args.no_fsync;
  options.calib_data = args.calib;
  options.tokenizer = args.tokenizer;
  options.calib_samples = args.calib_samples;
  options.calib_seq_len = args.seq_len;
  CalibrationReport calib_report(context.is_terminal);
  options.calib_progress = [&](const CalibrationProgress& p) { calib_report.Update(p); };
  const std::optional<ExportFormat> format = ParseExportFormat(args.format);
  if (!format) throw Error("unknown --format '" + args.format + "' (modelopt, compressed-tensors)");
  options.format = *format;
  options.non_finite =
      args.non_finite == "keep" ? NonFinitePolicy::kKeepUnquantized : NonFinitePolicy::kError;

  std::optional<TempDir> generated;
  if (args.model.empty()) {
    generated.emplace(std::filesystem::temp_directory_path() /
                      ("quantforge-default-model-" + std::to_string(getpid())));
    const std::optional<LlamaShape> shape = LlamaPreset(args.default_preset);
    if (!shape) throw Error("unknown --default-model preset '" + args.default_preset + "'");
    std::fprintf(stderr,
                 "quantforge: no --model given: generating the '%s' Llama-shaped BF16 checkpoint "
                 "(hidden %lld, %lld layers, vocab %lld, heavy-tailed weights with outliers, "
                 "seed %llu) in %s\n",
                 args.default_preset.c_str(), static_cast<long long>(shape->hidden),
                 static_cast<long long>(shape->layers), static_cast<long long>(shape->vocab),
                 static_cast<unsigned long long>(args.seed), generated->path().c_str());
    std::filesystem::create_directories(generated->path());
    GenerateLlamaCheckpoint(generated->path(), *shape,
                            SynthCheckpointOptions{.dtype = DType::kBF16, .seed = args.seed},
                            context.pool.get());
    options.model = generated->path();
  } else {
    options.model = args.model;
  }

  std::signal(SIGINT, OnInterrupt);
  std::signal(SIGTERM, OnInterrupt);
  ProgressBar bar("quantize", context.is_terminal);
  QuantizeSummary summary;
  try {
    summary = RunQuantize(options, context.pool.get(), [&](const QuantizeProgress& p) {
      bar.Update(p.tensors_done, p.tensors_total, p.bytes_done, p.bytes_total, p.current);
    });
  } catch (const Error&) {
    bar.Finish();
    if (CancelRequested()) {
      std::fprintf(stderr, "quantforge: interrupted; nothing was written to %s\n",
                   args.out.c_str());
      return 130;
    }
    throw;
  }
  bar.Finish();
  std::fputs(SummaryText(summary).c_str(), stdout);
  return 0;
}

}  // namespace

Action RegisterQuantize(CLI::App& app) {
  auto args = std::make_shared<QuantizeArgs>();
  CLI::App* sub = app.add_subcommand(
      "quantize", "Quantize a Hugging Face checkpoint with a recipe and export it");
  sub->add_option("--model", args->model,
                  "Checkpoint directory or .safetensors file (default: a generated Llama-shaped "
                  "checkpoint)");
  sub->add_option("--recipe", args->recipe,
                  "Preset name (e.g. NVFP4_DEFAULT_CFG, W4A16_NVFP4_CFG, FP8_DEFAULT_CFG; join "
                  "with '+') or a Model Optimizer YAML recipe file")
      ->capture_default_str();
  sub->add_option("--out", args->out, "Output directory (refused if it exists)")->required();
  sub->add_option("--format", args->format, "Export layout: modelopt or compressed-tensors")
      ->capture_default_str();
  sub->add_flag("--overwrite", args->overwrite, "Replace an existing output directory");
  sub->add_flag("--weight-only", args->weight_only,
                "Drop input and KV-cache quantizers (they need calibration data)");
  sub->add_option("--calib", args->calib,
                  "Calibration data (text, JSONL with \"text\" or \"input_ids\"): static input "
                  "scales (NVFP4 W4A4, FP8 W8A8) and FP8 KV scales from the unquantized model's "
                  "activation max; the Hessians of algorithms gptq and local_hessian (required "
                  "by them)");
  sub->add_option("--calib-samples", args->calib_samples,
                  "Calibration sequences (clipped to the data)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--seq-len", args->seq_len,
                  "Tokens per calibration sequence, BOS included (default: min(512, the model's "
                  "max_position_embeddings); longer than the context is an error)")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 30));
  sub->add_option("--tokenizer", args->tokenizer,
                  "tokenizer.json, SentencePiece .model or llama2.c .bin for --calib (default: "
                  "found in the model directory)");
  sub->add_option("--shard-size", args->shard_bytes, "Maximum bytes per output shard")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  sub->add_flag("--no-fsync", args->no_fsync,
                "Do not fsync the shards before the final rename (faster; the output is still "
                "complete or absent, but a power loss may lose recently written bytes)");
  sub->add_option("--on-nonfinite", args->non_finite,
                  "Weights holding NaN/Inf: 'error' (default) or 'keep' them unquantized")
      ->check(CLI::IsMember({"error", "keep"}));
  sub->add_option("--seed", args->seed, "Seed of the generated default model")
      ->capture_default_str();
  sub->add_option("--default-model", args->default_preset,
                  "Preset of the generated model used without --model (tiny, small, 1b, 8b)")
      ->capture_default_str();
  return [args](Context& context) { return Run(*args, context); };
}

}  // namespace qf::cli
