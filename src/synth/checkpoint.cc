// Synthetic Hugging Face checkpoints (Llama and Nemotron-H tensor names and config.json keys)
// written through qf::CheckpointWriter one tensor at a time: memory is one buffer the size of
// the largest tensor, whatever the checkpoint size. Every tensor's values come from the weight
// generator keyed by (seed, tensor name), so a checkpoint is identical for any thread count and
// any shard size.
#include "quantforge/checkpoint.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "quantforge/error.h"
#include "quantforge/formats.h"
#include "quantforge/synth.h"
#include "src/synth/synth_internal.h"
#include "src/util/aligned_buffer.h"

namespace qf {
namespace synth_internal {
namespace {

// Values of one [rows, cols] view of a tensor as floats (non-matrix kinds only: small tensors).
std::vector<float> SmallTensorValues(const PlannedTensor& t, uint64_t seed) {
  const int64_t n = NumElements(t.spec.shape);
  std::vector<float> v(static_cast<size_t>(n));
  const uint64_t key = SynthTensorKey(seed, t.spec.name);
  WeightStats noise;
  noise.outlier_column_fraction = 0.0f;
  noise.min_outlier_columns = 0;
  noise.isolated_outlier_rate = 0.0;
  noise.row_scale_sigma = 0.0f;
  switch (t.kind) {
    case TensorKind::kNorm:  // RMSNorm gains: positive, around 1 (1 + 0.1 * heavy-tailed noise)
      noise.std = 0.1f;
      GenerateWeights(noise, key, 1, n, v);
      for (float& x : v) x = std::max(1.0f + x, 0.05f);
      break;
    case TensorKind::kBias:  // small biases
      noise.std = 0.02f;
      GenerateWeights(noise, key, 1, n, v);
      break;
    case TensorKind::kALog:  // Mamba-2 init: A spread over [1, 16], stored as log(A)
      for (int64_t h = 0; h < n; ++h) v[h] = std::log(1.0f + 15.0f * (h + 0.5f) / n);
      break;
    case TensorKind::kD:  // Mamba-2 skip gain: 1 plus a little noise
      noise.std = 0.05f;
      GenerateWeights(noise, key, 1, n, v);
      for (float& x : v) x += 1.0f;
      break;
    case TensorKind::kDtBias:  // inverse softplus of dt, dt log-spaced over [1e-3, 1e-1]
      for (int64_t h = 0; h < n; ++h) {
        const double dt = 1e-3 * std::pow(100.0, (h + 0.5) / n);
        v[h] = static_cast<float>(dt + std::log(-std::expm1(-dt)));
      }
      break;
    case TensorKind::kMatrix:
      QF_CHECK(false);
  }
  return v;
}

}  // namespace

void WriteCheckpoint(const std::filesystem::path& dir, const std::vector<PlannedTensor>& plan,
                     const SynthCheckpointOptions& options, ThreadPool* pool,
                     SynthCheckpointSummary* summary) {
  if (options.dtype != DType::kBF16 && options.dtype != DType::kF32) {
    throw Error("synthetic checkpoint: dtype must be BF16 or F32, found " +
                std::string(DTypeName(options.dtype)));
  }
  std::vector<TensorSpec> specs;
  size_t max_bytes = 0;
  for (const PlannedTensor& t : plan) {
    specs.push_back(t.spec);
    max_bytes = std::max(max_bytes,
                         static_cast<size_t>(NumElements(t.spec.shape)) * DTypeSize(t.spec.dtype));
  }
  WriterOptions writer_options;
  writer_options.max_shard_bytes = options.max_shard_bytes;
  CheckpointWriter writer(dir, std::move(specs), writer_options);
  // One buffer for every tensor: the memory bound. Words of 4 bytes keep it aligned for floats.
  AlignedBuffer<uint32_t> buffer((max_bytes + 3) / 4);
  for (const PlannedTensor& t : plan) {
    ThrowIfCancelled();
    const int64_t n = NumElements(t.spec.shape);
    const int64_t cols = t.spec.shape.empty() ? 1 : t.spec.shape.back();
    const int64_t rows = cols == 0 ? 0 : n / cols;
    const size_t num_bytes = static_cast<size_t>(n) * DTypeSize(t.spec.dtype);
    const bool bf16 = t.spec.dtype == DType::kBF16;
    auto* f32 = reinterpret_cast<float*>(buffer.data());
    auto* b16 = reinterpret_cast<uint16_t*>(buffer.data());
    if (t.kind == TensorKind::kMatrix) {
      const uint64_t key = SynthTensorKey(options.seed, t.spec.name);
      if (bf16) {
        GenerateWeightsBF16(t.stats, key, rows, cols, std::span(b16, n), pool);
      } else {
        GenerateWeights(t.stats, key, rows, cols, std::span(f32, n), pool);
      }
    } else {
      const std::vector<float> v = SmallTensorValues(t, options.seed);
      for (int64_t i = 0; i < n; ++i) {
        if (bf16) {
          b16[i] = EncodeBF16(v[i]);
        } else {
          f32[i] = v[i];
        }
      }
    }
    writer.Write(t.spec.name,
                 std::span(reinterpret_cast<const std::byte*>(buffer.data()), num_bytes));
    summary->num_bytes += num_bytes;
    ++summary->num_tensors;
  }
  writer.Finish();
  summary->shard_files = writer.ShardFiles();
}

void WriteJson(const std::filesystem::path& path, const nlohmann::ordered_json& json) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << json.dump(2) << "\n";
  out.close();
  if (!out) throw Error("cannot write " + path.string());
}

void WriteConfigs(const std::filesystem::path& dir, const nlohmann::ordered_json& config) {
  WriteJson(dir / "config.json", config);
  WriteJson(dir / "generation_config.json", {{"bos_token_id", 1},
                                             {"eos_token_id", 2},
                                             {"do_sample", false},
                                             {"transformers_version", "4.46.0"}});
}

PlannedTensor Matrix(std::string name, DType dtype, int64_t rows, int64_t cols) {
  return {{std::move(name), dtype, {rows, cols}}, TensorKind::kMatrix, LinearWeightStats(cols)};
}

PlannedTensor Small(std::string name, DType dtype, Shape shape, TensorKind kind) {
  return {{std::move(name), dtype, std::move(shape)}, kind, WeightStats{}};
}

void CheckPositive(const char* arch, std::initializer_list<std::pair<const char*, int64_t>> dims) {
  for (const auto& [name, value] : dims) {
    if (value <= 0) {
      throw Error(std::string(arch) + " shape: " + name + " must be > 0, found " +
                  std::to_string(value));
    }
  }
}

}  // namespace synth_internal
}  // namespace qf
