// Synthetic LLM weights and checkpoints with the statistics of trained Llama-class models, for
// tests, benchmarks, the demo and the embedded default checkpoint (no real model needed).
//
// Why these statistics (what block quantizers are sensitive to):
//   - Body: Student-t with df ~ 5, scaled to unit variance then to `std`. Trained LLM weight
//     matrices are heavier-tailed than Gaussian: excess kurtosis of a few units per matrix
//     (df = 5 gives kurtosis 9, df = 6 gives 6; a normal has 3). Heavy tails are what separates
//     max scaling from MSE / four-over-six scale search.
//   - Scale: std = 1 / sqrt(fan_in) by default (0.0156 at hidden 4096, 0.0095 at 11008), which
//     is the magnitude trained Llama-2/3 projections have (~0.01-0.03).
//   - Per-output-row scale: log-normal, sigma 0.25 (rows of q/k/up differ by ~2x between the
//     5th and 95th percentile), so per-channel FP8 and per-block scales see varied rows.
//   - Outlier input columns ("outlier features", Dettmers et al. 2022, LLM.int8()): ~0.1% of
//     the input columns (at least one) carry a 10x-100x gain (log-uniform). Every 16- or
//     32-element block that contains one is dominated by it; the tensor amax (hence the NVFP4
//     global scale and the FP8 per-tensor scale) is set by them.
//   - Rare isolated huge outliers: about one element per million is replaced by
//     +-std * g, g log-uniform in [50, 500] (the "massive weights" seen in a few matrices).
//   - Optional all-zero rows (pruned or dead units) and all-zero 16-element blocks, off by
//     default; they exercise the zero-scale paths.
//
// Determinism: every random quantity is a pure function of (key, counter) through SplitMix64
// (Steele, Lea, Flood 2014: output n of the generator seeded with k is Mix64(k + (n + 1) * phi)),
// so element (r, c) depends only on the key, r and c: the output is identical for any thread
// count and any row range it is generated in. key = SynthTensorKey(seed, tensor name). Values go
// through libm's logf/expf (sqrtf is exact), so they are bit-reproducible on one glibc and CPU
// family; glibc picks FMA or non-FMA variants by CPU, which may differ in a last bit in rare
// cases. Tests compare generated data against itself, never against stored bytes.
// Speed: ~25 ns per element per core (libm's expf/logf are a quarter of it), 80 MB/s of BF16.
// BF16 outputs are qf::EncodeBF16 (round to nearest even) of exactly the F32 values.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quantforge/tensor.h"
#include "quantforge/thread_pool.h"

namespace qf {

struct WeightStats {
  float std = 0.02f;              // standard deviation of the body (before row/column gains)
  float student_t_df = 5.0f;      // degrees of freedom of the body; > 2 (finite variance)
  float row_scale_sigma = 0.25f;  // per-row gain exp(sigma * N(0,1) - sigma^2 / 2), mean 1
  float outlier_column_fraction = 0.001f;  // share of input columns that are outlier features
  int64_t min_outlier_columns = 1;         // at least this many (capped at cols)
  float outlier_column_min_gain = 10.0f;   // gains log-uniform in [min, max]
  float outlier_column_max_gain = 100.0f;
  double isolated_outlier_rate = 1e-6;      // expected isolated outliers per element
  float isolated_outlier_min_gain = 50.0f;  // |value| = std * gain, gain log-uniform in [min, max]
  float isolated_outlier_max_gain = 500.0f;
  float zero_row_fraction = 0.0f;    // share of rows that are all zero
  float zero_block_fraction = 0.0f;  // share of 16-element row blocks that are all zero
};

// Defaults for a linear layer's weight [out, in]: std = 1 / sqrt(fan_in).
WeightStats LinearWeightStats(int64_t fan_in);

// The key of one tensor: a hash of the seed and the tensor's name (or any stable label).
uint64_t SynthTensorKey(uint64_t seed, std::string_view tensor_name);

// The weights of one [rows, cols] tensor. Construction draws the per-row gains, the outlier
// columns and the isolated-outlier positions (O(rows + cols) memory); values are then computed
// on demand, any range, from any thread.
class WeightGenerator {
 public:
  WeightGenerator(const WeightStats& stats, uint64_t key, int64_t rows, int64_t cols);

  int64_t Rows() const { return rows_; }
  int64_t Cols() const { return cols_; }
  float At(int64_t row, int64_t col) const;
  // Rows [row_begin, row_end) into out ((row_end - row_begin) * cols values).
  void FillRows(int64_t row_begin, int64_t row_end, std::span<float> out) const;
  void FillRowsBF16(int64_t row_begin, int64_t row_end, std::span<uint16_t> out) const;

  const std::vector<int64_t>& OutlierColumns() const { return outlier_columns_; }  // sorted
  // Flat indices (row * cols + col) of the isolated outliers, sorted, unique.
  const std::vector<int64_t>& IsolatedOutliers() const { return isolated_; }
  bool IsZeroRow(int64_t row) const;

 private:
  // Row `row`, columns [col_begin, col_end), into out: the one definition of every value.
  void FillRowRange(int64_t row, int64_t col_begin, int64_t col_end, float* out) const;

  WeightStats stats_;
  uint64_t key_ = 0;
  int64_t rows_ = 0;
  int64_t cols_ = 0;
  float t_scale_ = 1.0f;         // sqrt((df - 2) / df): Student-t to unit variance
  std::vector<float> row_gain_;  // std * row scale, 0 for a zero row
  std::vector<float> col_gain_;  // 1, or the outlier gain
  std::vector<int64_t> outlier_columns_;
  std::vector<int64_t> isolated_;
  std::vector<float> isolated_value_;  // in std units, signed
};

// Whole tensors, parallel over fixed 16-row tasks (independent of the thread count).
void GenerateWeights(const WeightStats& stats, uint64_t key, int64_t rows, int64_t cols,
                     std::span<float> out, ThreadPool* pool = nullptr);
void GenerateWeightsBF16(const WeightStats& stats, uint64_t key, int64_t rows, int64_t cols,
                         std::span<uint16_t> out, ThreadPool* pool = nullptr);

// ----------------------------------------------------------------------------------------------
// Synthetic Hugging Face checkpoints. Tensors are generated and written one at a time through
// qf::CheckpointWriter, so memory is bounded by the largest tensor. `dir` must exist (callers
// usually pass an OutputTransaction's Dir()); config.json and generation_config.json are written
// next to the shards.

struct LlamaShape {
  int64_t hidden = 0;
  int64_t intermediate = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t vocab = 0;
  bool tie_embeddings = false;
};

// Nemotron-H (NemotronHForCausalLM): a hybrid stack whose layer kinds come from a pattern string
// as in its config's hybrid_override_pattern: 'M' Mamba-2 mixer, '*' attention, '-' MLP (relu^2,
// up/down), 'E' mixture of experts (router, routed experts, shared expert).
struct NemotronHShape {
  int64_t hidden = 0;
  std::string pattern;  // one character per layer
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t intermediate = 0;  // '-' layers
  int64_t num_experts = 0;   // 'E' layers
  int64_t experts_per_token = 0;
  int64_t moe_intermediate = 0;
  int64_t shared_intermediate = 0;
  int64_t mamba_heads = 0;
  int64_t mamba_head_dim = 0;
  int64_t ssm_state = 0;
  int64_t n_groups = 0;
  int64_t conv_kernel = 4;
  int64_t vocab = 0;
};

struct SynthCheckpointOptions {
  DType dtype = DType::kBF16;  // kBF16 or kF32
  uint64_t seed = 0;
  uint64_t max_shard_bytes = 5'000'000'000;
};

// Presets: "tiny" (0.5 MB in BF16), "small" (67 MB), "1b" (Llama-3.2-1B shape, 2.5 GB),
// "8b" (Llama-3-8B shape, 16 GB). nullopt for an unknown name.
std::optional<LlamaShape> LlamaPreset(std::string_view name);
// Presets: "tiny" (pattern ME*-ME, 0.3 MB), "small" (ME*EME-E, tens of MB).
std::optional<NemotronHShape> NemotronHPreset(std::string_view name);
std::vector<std::string> SynthPresetNames();

struct SynthCheckpointSummary {
  int64_t num_tensors = 0;
  uint64_t num_bytes = 0;  // tensor data bytes
  std::vector<std::string> shard_files;
};

SynthCheckpointSummary GenerateLlamaCheckpoint(const std::filesystem::path& dir,
                                               const LlamaShape& shape,
                                               const SynthCheckpointOptions& options,
                                               ThreadPool* pool = nullptr);
SynthCheckpointSummary GenerateNemotronHCheckpoint(const std::filesystem::path& dir,
                                                   const NemotronHShape& shape,
                                                   const SynthCheckpointOptions& options,
                                                   ThreadPool* pool = nullptr);

}  // namespace qf
