// Synthetic Llama-like weights: Student-t body, log-normal row gains, outlier input columns,
// isolated huge outliers, optional zero rows and blocks. See include/quantforge/synth.h for the
// statistics and why they are realistic; this file pins down how each random quantity is drawn.
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "quantforge/error.h"
#include "quantforge/formats.h"
#include "quantforge/synth.h"

namespace qf {
namespace {

constexpr uint64_t kPhi = 0x9E3779B97F4A7C15ull;  // 2^64 / golden ratio, SplitMix64's increment
constexpr int64_t kZeroBlockSize = 16;            // the NVFP4 block: zero blocks hit its zero path
constexpr int kBodyAttemptBits = 6;               // up to 64 polar-method attempts per element

uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Output n of SplitMix64 seeded with `key`: a pure function of (key, n).
uint64_t Draw(uint64_t key, uint64_t n) { return Mix64(key + (n + 1) * kPhi); }

// Independent sub-streams of one tensor key, one per random quantity.
enum class Stream : uint64_t {
  kBody = 1,
  kRowGain,
  kOutlierColumnPick,
  kOutlierColumnGain,
  kIsolatedPosition,
  kIsolatedValue,
  kZeroRow,
  kZeroBlock,
};
uint64_t StreamKey(uint64_t key, Stream stream) {
  return Mix64(key ^ (static_cast<uint64_t>(stream) * 0xD1B54A32D192ED03ull));
}

double Uniform01(uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }  // [0, 1)

// Box-Muller on one 64-bit draw (32 bits per uniform): used for O(rows) quantities only.
double Normal(uint64_t bits) {
  const double u1 = (static_cast<double>(bits >> 32) + 1.0) * 0x1.0p-32;  // (0, 1]
  const double u2 = static_cast<double>(bits & 0xFFFFFFFFull) * 0x1.0p-32;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

// log-uniform in [lo, hi]
float LogUniform(uint64_t bits, float lo, float hi) {
  const double t = Uniform01(bits);
  return static_cast<float>(lo * std::exp(t * std::log(static_cast<double>(hi) / lo)));
}

// Student-t with `df` degrees of freedom by Bailey's polar method (Math. Comp. 62, 1994):
// (u, v) uniform in the unit disc, w = u^2 + v^2, t = u * sqrt(df * (w^(-2/df) - 1) / w).
// Attempt k of element `idx` uses draw (idx << 6) | k; acceptance is pi/4 per attempt, so 64
// failures (probability 0.215^64 ~ 1e-43) never happen in practice and give 0.
float StudentT(uint64_t body_key, uint64_t idx, float df, float neg_two_over_df) {
  for (uint64_t k = 0; k < (1u << kBodyAttemptBits); ++k) {
    const uint64_t bits = Draw(body_key, (idx << kBodyAttemptBits) | k);
    const float u = static_cast<float>(static_cast<int32_t>(bits >> 32)) * 0x1.0p-31f;
    const float v = static_cast<float>(static_cast<int32_t>(bits & 0xFFFFFFFFull)) * 0x1.0p-31f;
    const float uu = u * u;
    const float vv = v * v;
    const float w = uu + vv;
    if (w > 0.0f && w <= 1.0f) {
      const float p = std::exp(neg_two_over_df * std::log(w));
      return u * std::sqrt(df * (p - 1.0f) / w);
    }
  }
  return 0.0f;
}

void CheckStats(const WeightStats& s, int64_t rows, int64_t cols) {
  const auto fail = [](const std::string& what) { throw Error("synthetic weights: " + what); };
  if (rows < 0 || cols < 0) {
    fail("shape [" + std::to_string(rows) + ", " + std::to_string(cols) + "] has a negative dim");
  }
  if (!(s.student_t_df > 2.0f))
    fail("student_t_df must be > 2, found " + std::to_string(s.student_t_df));
  if (!(s.std >= 0.0f)) fail("std must be >= 0");
  if (!(s.outlier_column_min_gain > 0.0f &&
        s.outlier_column_max_gain >= s.outlier_column_min_gain)) {
    fail("outlier column gains need 0 < min <= max");
  }
  if (!(s.isolated_outlier_min_gain > 0.0f &&
        s.isolated_outlier_max_gain >= s.isolated_outlier_min_gain)) {
    fail("isolated outlier gains need 0 < min <= max");
  }
}

}  // namespace

WeightStats LinearWeightStats(int64_t fan_in) {
  WeightStats stats;
  stats.std = 1.0f / std::sqrt(static_cast<float>(std::max<int64_t>(fan_in, 1)));
  return stats;
}

uint64_t SynthTensorKey(uint64_t seed, std::string_view tensor_name) {
  uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a 64 of the name
  for (const char c : tensor_name) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001B3ull;
  }
  return Mix64(Mix64(seed) ^ h);
}

WeightGenerator::WeightGenerator(const WeightStats& stats, uint64_t key, int64_t rows, int64_t cols)
    : stats_(stats), key_(key), rows_(rows), cols_(cols) {
  CheckStats(stats, rows, cols);
  t_scale_ = std::sqrt((stats.student_t_df - 2.0f) / stats.student_t_df);

  const double sigma = stats.row_scale_sigma;
  const uint64_t row_key = StreamKey(key, Stream::kRowGain);
  const uint64_t zero_row_key = StreamKey(key, Stream::kZeroRow);
  row_gain_.resize(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const double gain = std::exp(sigma * Normal(Draw(row_key, r)) - 0.5 * sigma * sigma);
    const bool zero = Uniform01(Draw(zero_row_key, r)) < stats.zero_row_fraction;
    row_gain_[r] = zero ? 0.0f : static_cast<float>(stats.std * gain);
  }

  // Outlier columns: the n columns with the smallest pick draws, so the set is a function of the
  // key and the width only.
  col_gain_.assign(static_cast<size_t>(cols), 1.0f);
  int64_t num_outliers = std::max<int64_t>(stats.min_outlier_columns,
                                           std::llround(stats.outlier_column_fraction * cols));
  num_outliers = std::clamp<int64_t>(num_outliers, 0, cols);
  if (num_outliers > 0) {
    const uint64_t pick_key = StreamKey(key, Stream::kOutlierColumnPick);
    std::vector<std::pair<uint64_t, int64_t>> order(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) order[c] = {Draw(pick_key, c), c};
    std::nth_element(order.begin(), order.begin() + (num_outliers - 1), order.end());
    const uint64_t gain_key = StreamKey(key, Stream::kOutlierColumnGain);
    for (int64_t i = 0; i < num_outliers; ++i) outlier_columns_.push_back(order[i].second);
    std::sort(outlier_columns_.begin(), outlier_columns_.end());
    for (const int64_t c : outlier_columns_) {
      col_gain_[c] = LogUniform(Draw(gain_key, c), stats.outlier_column_min_gain,
                                stats.outlier_column_max_gain);
    }
  }

  // Isolated outliers: round(rate * n) positions (a fixed count, so small tensors get none).
  const int64_t n = rows * cols;
  const int64_t num_isolated = n == 0 ? 0 : std::llround(stats.isolated_outlier_rate * n);
  const uint64_t pos_key = StreamKey(key, Stream::kIsolatedPosition);
  const uint64_t val_key = StreamKey(key, Stream::kIsolatedValue);
  std::vector<std::pair<int64_t, float>> iso;
  for (int64_t j = 0; j < num_isolated; ++j) {
    const int64_t pos = static_cast<int64_t>(Draw(pos_key, j) % static_cast<uint64_t>(n));
    const uint64_t bits = Draw(val_key, j);
    const float gain =
        LogUniform(bits, stats.isolated_outlier_min_gain, stats.isolated_outlier_max_gain);
    iso.emplace_back(pos, (bits & 1) ? -gain : gain);
  }
  std::stable_sort(iso.begin(), iso.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [pos, value] : iso) {
    if (!isolated_.empty() && isolated_.back() == pos) continue;  // first draw wins
    isolated_.push_back(pos);
    isolated_value_.push_back(value);
  }
}

bool WeightGenerator::IsZeroRow(int64_t row) const { return row_gain_[row] == 0.0f; }

float WeightGenerator::At(int64_t row, int64_t col) const {
  float out = 0.0f;
  FillRowRange(row, col, col + 1, &out);
  return out;
}

// Row `row`, columns [col_begin, col_end), into out. The single definition of every value.
void WeightGenerator::FillRowRange(int64_t row, int64_t col_begin, int64_t col_end,
                                   float* out) const {
  const float row_gain = row_gain_[row];
  if (row_gain == 0.0f) {
    std::fill(out, out + (col_end - col_begin), 0.0f);
    return;
  }
  const uint64_t body_key = StreamKey(key_, Stream::kBody);
  const uint64_t zero_block_key = StreamKey(key_, Stream::kZeroBlock);
  const int64_t blocks_per_row = (cols_ + kZeroBlockSize - 1) / kZeroBlockSize;
  const float df = stats_.student_t_df;
  const float neg_two_over_df = -2.0f / df;
  const bool zero_blocks = stats_.zero_block_fraction > 0.0f;
  for (int64_t c = col_begin; c < col_end; ++c) {
    const uint64_t idx = static_cast<uint64_t>(row * cols_ + c);
    if (zero_blocks) {
      const uint64_t block = static_cast<uint64_t>(row * blocks_per_row + c / kZeroBlockSize);
      if (Uniform01(Draw(zero_block_key, block)) < stats_.zero_block_fraction) {
        out[c - col_begin] = 0.0f;
        continue;
      }
    }
    const float t = t_scale_ * StudentT(body_key, idx, df, neg_two_over_df);
    const float gain = row_gain * col_gain_[c];
    out[c - col_begin] = gain * t;
  }
  // Isolated outliers override the body (and zero blocks) but not zero rows.
  const int64_t first = row * cols_ + col_begin;
  const int64_t last = row * cols_ + col_end;
  auto it = std::lower_bound(isolated_.begin(), isolated_.end(), first);
  for (; it != isolated_.end() && *it < last; ++it) {
    out[*it - first] = stats_.std * isolated_value_[it - isolated_.begin()];
  }
}

void WeightGenerator::FillRows(int64_t row_begin, int64_t row_end, std::span<float> out) const {
  QF_CHECK(row_begin >= 0 && row_begin <= row_end && row_end <= rows_);
  QF_CHECK(static_cast<int64_t>(out.size()) == (row_end - row_begin) * cols_);
  for (int64_t r = row_begin; r < row_end; ++r) {
    FillRowRange(r, 0, cols_, out.data() + (r - row_begin) * cols_);
  }
}

void WeightGenerator::FillRowsBF16(int64_t row_begin, int64_t row_end,
                                   std::span<uint16_t> out) const {
  QF_CHECK(row_begin >= 0 && row_begin <= row_end && row_end <= rows_);
  QF_CHECK(static_cast<int64_t>(out.size()) == (row_end - row_begin) * cols_);
  std::vector<float> row(static_cast<size_t>(cols_));
  for (int64_t r = row_begin; r < row_end; ++r) {
    FillRowRange(r, 0, cols_, row.data());
    uint16_t* dst = out.data() + (r - row_begin) * cols_;
    for (int64_t c = 0; c < cols_; ++c) dst[c] = EncodeBF16(row[c]);
  }
}

namespace {

constexpr uint64_t kRowsPerTask = 16;

void CheckOutSize(size_t got, int64_t rows, int64_t cols) {
  if (static_cast<int64_t>(got) != rows * cols) {
    throw Error("synthetic weights: output holds " + std::to_string(got) + " values, expected " +
                std::to_string(rows) + " x " + std::to_string(cols));
  }
}

}  // namespace

namespace {

// Rows in fixed tasks (independent of the thread count); `fill(gen, begin, end, rows_out)`.
template <typename T, typename Fill>
void GenerateRows(const WeightStats& stats, uint64_t key, int64_t rows, int64_t cols,
                  std::span<T> out, ThreadPool* pool, const Fill& fill) {
  const WeightGenerator gen(stats, key, rows, cols);
  CheckOutSize(out.size(), rows, cols);
  const Partition part{static_cast<uint64_t>(rows), kRowsPerTask};
  ParallelFor(pool, part.NumTasks(), [&](uint64_t task, size_t) {
    const int64_t begin = static_cast<int64_t>(part.Begin(task));
    const int64_t end = static_cast<int64_t>(part.End(task));
    fill(gen, begin, end, out.subspan(begin * cols, (end - begin) * cols));
  });
}

}  // namespace

void GenerateWeights(const WeightStats& stats, uint64_t key, int64_t rows, int64_t cols,
                     std::span<float> out, ThreadPool* pool) {
  GenerateRows(stats, key, rows, cols, out, pool,
               [](const WeightGenerator& g, int64_t b, int64_t e, std::span<float> o) {
                 g.FillRows(b, e, o);
               });
}

void GenerateWeightsBF16(const WeightStats& stats, uint64_t key, int64_t rows, int64_t cols,
                         std::span<uint16_t> out, ThreadPool* pool) {
  GenerateRows(stats, key, rows, cols, out, pool,
               [](const WeightGenerator& g, int64_t b, int64_t e, std::span<uint16_t> o) {
                 g.FillRowsBF16(b, e, o);
               });
}

}  // namespace qf
