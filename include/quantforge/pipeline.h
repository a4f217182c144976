// The quantize job: read a Hugging Face checkpoint, decide every tensor with a recipe, quantize
// tensor by tensor, and write a checkpoint that serving engines load unchanged.
//
// Streaming: tensors are read from the memory-mapped input one at a time, quantized, written at
// their final offset and their pages released, so resident memory stays bounded by the largest
// tensor times a small constant (docs/PIPELINE.md gives the formula). Output goes to a temporary
// directory next to the target that is renamed only when complete; the input is never modified.
// The same input and recipe give byte-identical output for any thread count.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "quantforge/export.h"
#include "quantforge/thread_pool.h"

namespace qf {

// What to do with a weight that holds NaN or Inf.
enum class NonFinitePolicy {
  kError,            // refuse the checkpoint, naming the tensor and the first bad element
  kKeepUnquantized,  // leave that weight in its original dtype, listed as excluded
};

// Layer-by-layer calibration progress (quantize --calib): after each batch of each decoder
// layer, and once at the end with `finished` set.
struct CalibrationProgress {
  int64_t layer = 0;  // the decoder layer running, 0-based
  int64_t num_layers = 0;
  int64_t tokens_done = 0;  // tokens through `layer` so far
  int64_t num_tokens = 0;   // sequences * seq_len
  int64_t sequences = 0;
  int64_t seq_len = 0;
  double seconds = 0.0;          // since the first layer started
  uint64_t estimated_bytes = 0;  // EstimateLayerwiseMemory(...).Total() (model.h)
  bool finished = false;
};
using CalibrationProgressCallback = std::function<void(const CalibrationProgress&)>;

struct QuantizeOptions {
  std::filesystem::path model;  // checkpoint directory or .safetensors file
  std::string recipe;           // preset name(s) joined by '+', or a YAML file
  std::filesystem::path out;    // output directory (must not exist unless overwrite)
  ExportFormat format = ExportFormat::kModelOpt;
  bool overwrite = false;
  // Drop the recipe's input and KV-cache quantizers (which need activation statistics) and
  // export weights only (NVFP4 becomes W4A16_NVFP4, FP8 becomes W8A16).
  bool weight_only = false;
  uint64_t max_shard_bytes = 5'000'000'000;
  bool sync_to_disk = true;  // fsync the shards before the final rename (WriterOptions)
  NonFinitePolicy non_finite = NonFinitePolicy::kError;
  // Calibration (src/pipeline/calibration.h): with a data file, recipes with static input scales
  // (NVFP4 W4A4, FP8 W8A8) and FP8 KV caches are calibrated on the unquantized model and exported
  // with input_scale / k_scale / v_scale. Empty: such recipes are refused unless weight_only.
  std::filesystem::path calib_data;  // text, JSONL "text" or JSONL "input_ids"
  std::filesystem::path tokenizer;   // empty: found in the model directory
  int64_t calib_samples = 128;       // sequences, clipped to the data
  int64_t calib_seq_len = 0;         // tokens per sequence; 0: min(512, max_position_embeddings)
  CalibrationProgressCallback calib_progress;  // may be empty
};

struct QuantizeProgress {
  size_t tensors_done = 0;
  size_t tensors_total = 0;
  uint64_t bytes_done = 0;  // input bytes processed
  uint64_t bytes_total = 0;
  std::string_view current;  // tensor being processed
};
using ProgressCallback = std::function<void(const QuantizeProgress&)>;

struct FormatSummary {
  std::string format;  // "nvfp4", "fp8", "unquantized BF16", ...
  int64_t tensors = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  int64_t elements = 0;
};

struct QuantizeSummary {
  std::filesystem::path out;
  std::string quant_algo;  // what the config declares: NVFP4, W4A16_NVFP4, FP8, MIXED_PRECISION...
  std::vector<FormatSummary> formats;  // linear weights by format, then "other tensors"
  std::vector<std::string> excluded;   // "module: reason", linear weights left unquantized
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  // Bits per element of the linear weights, scales included (NVFP4 alone: 4.5).
  double weight_bpe = 0.0;
  double seconds = 0.0;
  std::vector<std::string> notes;  // e.g. "algorithm mse applied to FP8 weights as max"
};

QuantizeSummary RunQuantize(const QuantizeOptions& options, ThreadPool* pool,
                            const ProgressCallback& progress = {});

// The summary as an aligned text table (for the CLI).
std::string SummaryText(const QuantizeSummary& summary);

}  // namespace qf
