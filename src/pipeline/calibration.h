// Max calibration for the quantize job: runs the unquantized model over calibration sequences
// with the engine's amax observers and returns the activation amax of every quantizer, named as
// Model Optimizer names them ("<module>.input_quantizer", "<attn>.k_bmm_quantizer",
// "<attn>.v_bmm_quantizer").
//
// Like Model Optimizer's max calibration, activations are observed on the unquantized model (the
// weight quantizers do not act during calibration). This first version loads the whole model in
// memory (F32); layer-by-layer streaming is future work.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "quantforge/thread_pool.h"
#include "src/pipeline/job_plan.h"

namespace qf {

struct CalibrationOptions {
  std::filesystem::path data;       // LoadEvalData's formats
  std::filesystem::path tokenizer;  // empty: FindTokenizer(model_dir)
  int64_t samples = 128;
  int64_t seq_len = 512;
};

struct CalibrationResult {
  std::map<std::string, float> amax;  // quantizer name -> max |activation|
  int64_t sequences = 0;
  int64_t seq_len = 0;
  std::string tokenizer;  // describes the tokenizer used ("" for input_ids data)
};

// The calibration sequences cut from `stream`: seq_len is clipped to `max_positions`; each
// sequence is [bos] + the next seq_len - 1 stream tokens (seq_len stream tokens without a BOS),
// consecutive and non-overlapping from the start of the stream, at most `samples` of them.
// Deterministic. Throws qf::Error (naming `data`) when the stream is too short for one sequence.
std::vector<std::vector<int32_t>> CalibrationSequences(std::span<const int32_t> stream,
                                                       std::optional<int32_t> bos,
                                                       int64_t samples, int64_t seq_len,
                                                       int64_t max_positions,
                                                       const std::string& data);

// Loads the model in `model_dir` and the data, and observes every activation site. Throws
// qf::Error for a missing data file, a missing tokenizer (text data), no or too few tokens.
CalibrationResult Calibrate(const std::filesystem::path& model_dir,
                            const CalibrationOptions& options, ThreadPool* pool);

// Fills the job's input amax (max over each fused group and each MoE layer's routed experts:
// loaders need one input_scale per fused GEMM) and the KV jobs' k/v amax. Throws qf::Error naming
// a quantizer the forward pass never observed.
void ApplyCalibration(JobPlan& job, const std::map<std::string, float>& amax);

}  // namespace qf
