// Hessian collection (calib.h): HessianAccumulator sums x x^T over token rows in double, and
// HessianCollector plugs one accumulator per Linear input site into the model's forward hooks.
//
// Determinism. A product of two binary32 values has at most 48 significant bits, so it is exact
// in binary64 (and an FMA rounds exactly as multiply-then-add would); only the additions round.
//   kFull: the token stream is cut into chunks of kChunkTokens rows counted from the first token
//     ever added, whatever the batches were (rows wait in `pending_` until a chunk is full). Each
//     chunk is one BLAS product S[i0:i1, i0:] += Xc[:, i0:i1]^T Xc[:, i0:] per fixed tile of S's
//     rows, single-threaded OpenBLAS, whose operation order depends only on the operand shapes.
//     So the same tokens give the same bits for any batch split and any thread count. A partial
//     last chunk is added when a result is asked for (on a copy: more tokens may follow).
//     Cost: dim^2 / 2 multiply-adds per token at BLAS speed (an upper trapezoid per tile).
//   kBlockDiagonal: plain loops, every element adding one term per token in arrival order.
// Only the upper triangle (i <= j) is accumulated; the outputs mirror it.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "quantforge/calib.h"
#include "quantforge/error.h"
#include "src/calib/blas.h"

namespace qf {
namespace {

constexpr int64_t kBlock = kNvfp4BlockSize;  // local_hessian's 16-column blocks
// Tokens per BLAS chunk: K = 128 keeps the GEMM efficient; the buffer is 128 * dim floats.
constexpr int64_t kChunkTokens = 128;
// Rows of S per task (kFull): fixed, so the split never depends on the thread count.
constexpr int64_t kRowsPerTask = 64;
// 16x16 blocks per task (kBlockDiagonal).
constexpr int64_t kBlocksPerTask = 64;

// sum[i0:i1, i0:dim] += X^T X over `k` rows of x (row-major [k, dim]), tile by tile.
void AddChunk(double* sum, const float* x, int64_t k, int64_t dim, ThreadPool* pool) {
  std::vector<double> xd(static_cast<size_t>(k * dim));
  for (int64_t i = 0; i < k * dim; ++i) xd[i] = x[i];
  calib::UseSingleThreadedBlas();
  const Partition partition{static_cast<uint64_t>(dim), kRowsPerTask};
  ParallelFor(pool, partition.NumTasks(), [&](uint64_t task, size_t) {
    const int64_t i0 = static_cast<int64_t>(partition.Begin(task));
    const int64_t i1 = static_cast<int64_t>(partition.End(task));
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(i1 - i0),
                static_cast<int>(dim - i0), static_cast<int>(k), 1.0, xd.data() + i0,
                static_cast<int>(dim), xd.data() + i0, static_cast<int>(dim), 1.0,
                sum + i0 * dim + i0, static_cast<int>(dim));
  });
}

}  // namespace

HessianAccumulator::HessianAccumulator(int64_t dim, HessianKind kind)
    : dim_(dim), padded_dim_((dim + kBlock - 1) / kBlock * kBlock), kind_(kind) {
  if (dim <= 0) throw Error("Hessian dimension " + std::to_string(dim) + "; expected > 0");
  sum_.assign(kind == HessianKind::kFull ? static_cast<size_t>(dim * dim)
                                         : static_cast<size_t>(padded_dim_ * kBlock),
              0.0);
  if (kind == HessianKind::kFull) pending_.resize(static_cast<size_t>(kChunkTokens * dim));
}

void HessianAccumulator::Add(const float* x, int64_t rows, int64_t ld, ThreadPool* pool,
                             std::string_view site) {
  if (rows <= 0) return;
  if (ld < dim_) {
    throw Error("activation row stride " + std::to_string(ld) + " is below the Hessian dimension " +
                    std::to_string(dim_),
                ErrorContext{{}, std::string(site), {}});
  }
  for (int64_t t = 0; t < rows; ++t) {
    for (int64_t c = 0; c < dim_; ++c) {
      if (!std::isfinite(x[t * ld + c])) {
        throw Error("activation row " + std::to_string(t) + " column " + std::to_string(c) +
                        " is not finite; expected finite inputs for the Hessian",
                    ErrorContext{{}, std::string(site), {}});
      }
    }
  }
  const int64_t dim = dim_;
  double* sum = sum_.data();
  if (kind_ == HessianKind::kFull) {
    for (int64_t t = 0; t < rows; ++t) {
      std::memcpy(pending_.data() + num_pending_ * dim, x + t * ld, sizeof(float) * dim);
      if (++num_pending_ == kChunkTokens) {
        AddChunk(sum, pending_.data(), kChunkTokens, dim, pool);
        num_pending_ = 0;
      }
    }
  } else {
    const int64_t num_blocks = padded_dim_ / kBlock;
    const Partition partition{static_cast<uint64_t>(num_blocks), kBlocksPerTask};
    ParallelFor(pool, partition.NumTasks(), [&](uint64_t task, size_t) {
      for (uint64_t b = partition.Begin(task); b < partition.End(task); ++b) {
        const int64_t c0 = static_cast<int64_t>(b) * kBlock;
        const int64_t width = std::min(kBlock, dim - c0);  // padded inputs are 0: no terms
        double* s = sum + c0 * kBlock;
        for (int64_t t = 0; t < rows; ++t) {
          const float* xb = x + t * ld + c0;
          for (int64_t i = 0; i < width; ++i) {
            const double a = xb[i];
            for (int64_t j = i; j < width; ++j) s[i * kBlock + j] += a * static_cast<double>(xb[j]);
          }
        }
      }
    });
  }
  num_tokens_ += rows;
}

std::vector<double> HessianAccumulator::FullSum() const {
  std::vector<double> sum = sum_;
  if (num_pending_ > 0) AddChunk(sum.data(), pending_.data(), num_pending_, dim_, nullptr);
  return sum;
}

Hessian HessianAccumulator::GptqHessian() const {
  if (kind_ != HessianKind::kFull) {
    throw Error("GPTQ needs the full Hessian; this site collected only its 16x16 diagonal blocks");
  }
  if (num_tokens_ == 0) throw Error("Hessian has no tokens; expected calibration data");
  const std::vector<double> sum = FullSum();
  Hessian h;
  h.dim = dim_;
  h.num_tokens = num_tokens_;
  h.matrix.resize(sum.size());
  const double n = static_cast<double>(num_tokens_);
  // 64 x 64 tiles of the upper triangle, each mirrored while both tiles are in cache.
  constexpr int64_t kTile = 64;
  for (int64_t i0 = 0; i0 < dim_; i0 += kTile) {
    for (int64_t j0 = i0; j0 < dim_; j0 += kTile) {
      for (int64_t i = i0; i < std::min(dim_, i0 + kTile); ++i) {
        for (int64_t j = std::max(i, j0); j < std::min(dim_, j0 + kTile); ++j) {
          const double v = (2.0 * sum[i * dim_ + j]) / n;  // * 2 is exact: one rounding
          h.matrix[i * dim_ + j] = v;
          h.matrix[j * dim_ + i] = v;
        }
      }
    }
  }
  return h;
}

BlockHessians HessianAccumulator::LocalHessians() const {
  if (num_tokens_ == 0) throw Error("Hessian has no tokens; expected calibration data");
  BlockHessians h;
  h.dim = dim_;
  h.num_blocks = padded_dim_ / kBlock;
  h.num_tokens = num_tokens_;
  h.blocks.assign(static_cast<size_t>(h.num_blocks * kBlock * kBlock), 0.0f);
  const double n = static_cast<double>(num_tokens_);
  const std::vector<double> sum = kind_ == HessianKind::kFull ? FullSum() : sum_;
  for (int64_t b = 0; b < h.num_blocks; ++b) {
    const int64_t c0 = b * kBlock;
    const int64_t width = std::min(kBlock, dim_ - c0);
    float* out = h.blocks.data() + b * kBlock * kBlock;
    for (int64_t i = 0; i < width; ++i) {
      for (int64_t j = i; j < width; ++j) {
        const double s = kind_ == HessianKind::kFull ? sum[(c0 + i) * dim_ + (c0 + j)]
                                                     : sum[c0 * kBlock + i * kBlock + j];
        const float v = static_cast<float>(s / n);
        out[i * kBlock + j] = v;
        out[j * kBlock + i] = v;
      }
    }
  }
  return h;
}

HessianCollector::HessianCollector(HessianCollectorOptions options, ThreadPool* pool)
    : options_(std::move(options)), pool_(pool) {}

void HessianCollector::OnActivation(const ActivationSite& site, float* x, int64_t rows,
                                    int64_t cols, int64_t ld) {
  if (site.kind != ActivationKind::kLinearInput || site.modules.empty()) return;
  if (options_.filter && !options_.filter(site)) return;
  auto it = site_of_module_.find(site.modules[0]);
  if (it == site_of_module_.end()) {
    sites_.push_back(Site{{site.modules.begin(), site.modules.end()}, nullptr});
    for (const std::string& module : site.modules) site_of_module_[module] = sites_.size() - 1;
    it = site_of_module_.find(site.modules[0]);
  }
  Site& s = sites_[it->second];
  if (!s.accumulator) s.accumulator = std::make_unique<HessianAccumulator>(cols, options_.kind);
  if (s.accumulator->dim() != cols) {
    throw Error("activation has " + std::to_string(cols) + " columns; this site's Hessian has " +
                    std::to_string(s.accumulator->dim()),
                ErrorContext{{}, s.modules[0], {}});
  }
  s.accumulator->Add(x, rows, ld, pool_, s.modules[0]);
}

const HessianAccumulator* HessianCollector::Find(std::string_view module) const {
  const auto it = site_of_module_.find(module);
  return it == site_of_module_.end() ? nullptr : sites_[it->second].accumulator.get();
}

void HessianCollector::Release(std::string_view module) {
  const auto it = site_of_module_.find(module);
  if (it != site_of_module_.end()) sites_[it->second].accumulator.reset();
}

std::vector<std::vector<std::string>> HessianCollector::Sites() const {
  std::vector<std::vector<std::string>> out;
  for (const Site& s : sites_) {
    if (s.accumulator) out.push_back(s.modules);
  }
  return out;
}

}  // namespace qf
