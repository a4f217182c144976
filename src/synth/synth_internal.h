// Internals of the synthetic checkpoint writers (src/synth only): the per-tensor plan the
// architecture files build and the one writer loop that generates and streams it.
#pragma once

#include <filesystem>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "quantforge/checkpoint.h"
#include "quantforge/synth.h"

namespace qf::synth_internal {

enum class TensorKind {
  kMatrix,  // weight generator with `stats` over the [prod(shape[:-1]), shape[-1]] view
  kNorm,    // RMSNorm gain: positive, around 1
  kBias,    // small biases
  kALog,    // Mamba-2 A_log
  kD,       // Mamba-2 D
  kDtBias,  // Mamba-2 dt_bias
};

struct PlannedTensor {
  TensorSpec spec;
  TensorKind kind = TensorKind::kMatrix;
  WeightStats stats;  // kMatrix only
};

// A linear weight [rows, cols] with LinearWeightStats(cols); a non-matrix tensor.
PlannedTensor Matrix(std::string name, DType dtype, int64_t rows, int64_t cols);
PlannedTensor Small(std::string name, DType dtype, Shape shape, TensorKind kind);

// Throws qf::Error "<arch> shape: <name> must be > 0" for the first non-positive dimension.
void CheckPositive(const char* arch, std::initializer_list<std::pair<const char*, int64_t>> dims);

// Generates and writes every tensor of `plan` in order into `dir` (sharded as options say).
void WriteCheckpoint(const std::filesystem::path& dir, const std::vector<PlannedTensor>& plan,
                     const SynthCheckpointOptions& options, ThreadPool* pool,
                     SynthCheckpointSummary* summary);

void WriteJson(const std::filesystem::path& path, const nlohmann::ordered_json& json);
// config.json as given, and the generation_config.json both architectures share (BOS 1, EOS 2,
// greedy).
void WriteConfigs(const std::filesystem::path& dir, const nlohmann::ordered_json& config);

}  // namespace qf::synth_internal
