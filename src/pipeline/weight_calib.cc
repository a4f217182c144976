// WeightCalibrator: Hessians per Linear input during the layer-by-layer calibration run, GPTQ /
// local_hessian per weight at the end of each layer, the layer output error against
// round-to-nearest while the Hessian is in memory.
#include "src/pipeline/weight_calib.h"

#include <chrono>
#include <cstdio>
#include <optional>
#include <span>

#include "quantforge/error.h"

namespace qf {
namespace {

using Clock = std::chrono::steady_clock;

// The exported formats GPTQ / local_hessian produce, mapped from the job's QuantAlgo.
bool IsNvfp4(QuantAlgo algo) { return algo == QuantAlgo::kNvfp4 || algo == QuantAlgo::kW4A16Nvfp4; }

TensorView F32View(const std::vector<float>& w, int64_t rows, int64_t cols, std::string_view name) {
  return TensorView{.dtype = DType::kF32,
                    .shape = {rows, cols},
                    .data = std::as_bytes(std::span<const float>(w)),
                    .name = name};
}

// Round-to-nearest with max scales in the job's format (what plain `max` exports): the reference
// of the error ratio. For NVFP4 it keeps the job's static/dynamic arithmetic and fused global amax.
QuantizedWeight RoundToNearest(const TensorView& w, const LinearJob& job, ThreadPool* pool) {
  switch (job.algo) {
    case QuantAlgo::kNvfp4:
    case QuantAlgo::kW4A16Nvfp4: {
      Nvfp4Options o = job.nvfp4;
      o.algorithm = BlockScaleAlgorithm::kMax;
      return QuantizeNvfp4(w, o, pool);
    }
    case QuantAlgo::kFp8:
      return QuantizeFp8(w, Fp8Granularity::kPerTensor, std::nullopt, pool);
    case QuantAlgo::kFp8PerChannel:
      return QuantizeFp8(w, Fp8Granularity::kPerChannel, std::nullopt, pool);
    case QuantAlgo::kMxfp4:
      return QuantizeMx(w, MxElement::kE2M1, MxScaleRule::kOcpFloor, pool);
    case QuantAlgo::kMxfp8:
      return QuantizeMx(w, MxElement::kE4M3, MxScaleRule::kOcpFloor, pool);
  }
  QF_CHECK(false);
  return {};
}

std::vector<float> Dequantize(const QuantizedWeight& q, int64_t rows, int64_t cols,
                              ThreadPool* pool) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  std::visit(
      [&](const auto& t) {
        using T = std::decay_t<decltype(t)>;
        if constexpr (std::is_same_v<T, Nvfp4Tensor>) DequantizeNvfp4(t, out, pool);
        if constexpr (std::is_same_v<T, MxTensor>) DequantizeMx(t, out, pool);
        if constexpr (std::is_same_v<T, Fp8Tensor>) DequantizeFp8(t, out, pool);
      },
      q);
  return out;
}

// sum over rows and 16-blocks of dw^T H_b dw, scaled as LayerOutputError (2/rows: H_b is the
// block of S/n, GPTQ's H is 2S/n): LayerOutputError restricted to H's diagonal blocks, which is
// all a block-diagonal collection holds (local_hessian alone).
double BlockDiagonalError(std::span<const float> w, std::span<const float> q, int64_t rows,
                          int64_t cols, const BlockHessians& h) {
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < h.num_blocks; ++b) {
      double dw[16] = {};
      for (int64_t i = 0; i < 16 && b * 16 + i < cols; ++i) {
        const size_t k = static_cast<size_t>(r * cols + b * 16 + i);
        dw[i] = static_cast<double>(w[k]) - static_cast<double>(q[k]);
      }
      const std::span<const float, 256> hb = h.Block(b);
      for (int i = 0; i < 16; ++i) {
        double row = 0.0;
        for (int j = 0; j < 16; ++j) row += static_cast<double>(hb[i * 16 + j]) * dw[j];
        total += dw[i] * row;
      }
    }
  }
  return 2.0 * total / static_cast<double>(rows);
}

std::vector<int64_t> ZeroColumns(const std::vector<float>& w, int64_t rows, int64_t cols) {
  std::vector<bool> nonzero(static_cast<size_t>(cols), false);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      if (w[static_cast<size_t>(r * cols + c)] != 0.0f) nonzero[static_cast<size_t>(c)] = true;
    }
  }
  std::vector<int64_t> zero;
  for (int64_t c = 0; c < cols; ++c) {
    if (!nonzero[static_cast<size_t>(c)]) zero.push_back(c);
  }
  return zero;
}

}  // namespace

WeightCalibrator::WeightCalibrator(const Checkpoint& checkpoint, const JobPlan& job,
                                   ThreadPool* pool)
    : checkpoint_(checkpoint),
      pool_(pool),
      collector_(HessianCollectorOptions{.kind = job.full_hessians ? HessianKind::kFull
                                                                   : HessianKind::kBlockDiagonal,
                                         .filter =
                                             [this](const ActivationSite& site) {
                                               for (const std::string& m : site.modules) {
                                                 if (jobs_.count(m) != 0) return true;
                                               }
                                               return false;
                                             }},
                 pool) {
  for (const TensorJob& t : job.tensors) {
    if (t.linear && t.linear->hessian_algo != HessianAlgo::kNone) jobs_[t.linear->module] = &t;
  }
}

void WeightCalibrator::OnActivation(const ActivationSite& site, float* x, int64_t rows,
                                    int64_t cols, int64_t ld) {
  collector_.OnActivation(site, x, rows, cols, ld);
}

void WeightCalibrator::QuantizeHeld() {
  for (const std::vector<std::string>& modules : collector_.Sites()) {
    QuantizeSite(modules);
    collector_.Release(modules.front());
  }
}

void WeightCalibrator::QuantizeSite(const std::vector<std::string>& modules) {
  const HessianAccumulator* acc = collector_.Find(modules.front());
  QF_CHECK(acc != nullptr);
  const bool full = acc->kind() == HessianKind::kFull;
  std::optional<Hessian> h;
  if (full) h = acc->GptqHessian();
  std::optional<BlockHessians> blocks;
  for (const std::string& module : modules) {
    const auto it = jobs_.find(module);
    if (it == jobs_.end() || blocks) continue;
    const HessianAlgo a = it->second->linear->hessian_algo;
    if (a == HessianAlgo::kLocalHessian || a == HessianAlgo::kLocalHessianGptq) {
      blocks = acc->LocalHessians();
    }
  }
  // Everything needed is copied out: the accumulator (8 * dim^2 bytes for kFull) goes before
  // GPTQ's own dim^2 buffers are made, not after the site's last weight.
  acc = nullptr;
  collector_.Release(modules.front());
  std::optional<GptqFactor> factor;  // shared by the site's modules (q|k|v, gate|up)
  for (const std::string& module : modules) {
    const auto it = jobs_.find(module);
    if (it == jobs_.end()) continue;
    const Clock::time_point start = Clock::now();
    const TensorJob& t = *it->second;
    const LinearJob& job = *t.linear;
    const int64_t rows = t.info->shape[0];
    const int64_t cols = t.info->shape[1];
    std::vector<float> w = ToFloat(checkpoint_.View(*t.info), pool_);
    checkpoint_.ReleasePages(*t.info);
    const TensorView view = F32View(w, rows, cols, t.info->name);

    const bool gptq = job.hessian_algo == HessianAlgo::kGptq ||
                      job.hessian_algo == HessianAlgo::kLocalHessianGptq;
    const bool local = job.hessian_algo == HessianAlgo::kLocalHessian ||
                       job.hessian_algo == HessianAlgo::kLocalHessianGptq;
    QF_CHECK(!local || blocks.has_value());
    GptqOptions options{.perc_damp = job.gptq.perc_damp,
                        .block_size = job.gptq.block_size,
                        .act_order = job.gptq.act_order};
    if (gptq) {
      QF_CHECK(h.has_value());
      if (factor && factor->dead_columns == ZeroColumns(w, rows, cols)) {
        options.shared_factor = &*factor;
      } else {
        factor = PrepareGptq(w, rows, cols, *h, options);
        options.shared_factor = &*factor;
      }
    }
    GptqStats gstats;
    QuantizedWeight result;
    std::optional<QuantizedWeight> initial;  // a stack's initial scales, for the summary
    if (gptq && IsNvfp4(job.algo) && !local && job.nvfp4.algorithm != BlockScaleAlgorithm::kMax) {
      initial = QuantizeNvfp4(view, job.nvfp4, pool_);
    }
    if (local) {
      Nvfp4Tensor scales = LocalHessianNvfp4(w, rows, cols, *blocks, job.nvfp4, pool_);
      if (gptq) initial = scales;
      if (gptq) {
        result = GptqNvfp4FromScales(w, rows, cols, *h, options, scales, pool_, &gstats);
      } else {
        result = std::move(scales);
      }
    } else if (IsNvfp4(job.algo)) {
      result = GptqNvfp4(w, rows, cols, *h, options, job.nvfp4, pool_, &gstats);
    } else if (job.algo == QuantAlgo::kFp8 || job.algo == QuantAlgo::kFp8PerChannel) {
      const Fp8Granularity g =
          job.algo == QuantAlgo::kFp8 ? Fp8Granularity::kPerTensor : Fp8Granularity::kPerChannel;
      result = GptqFp8(w, rows, cols, *h, options, g, std::nullopt, pool_, &gstats);
    } else {
      const MxElement e = job.algo == QuantAlgo::kMxfp4 ? MxElement::kE2M1 : MxElement::kE4M3;
      result = GptqMx(w, rows, cols, *h, options, e, MxScaleRule::kOcpFloor, pool_, &gstats);
    }

    // The output error of both on the Hessian in memory (cheap next to GPTQ itself).
    const std::vector<float> q = Dequantize(result, rows, cols, pool_);
    const std::vector<float> q_rtn =
        Dequantize(RoundToNearest(view, job, pool_), rows, cols, pool_);
    double error = 0.0;
    double error_rtn = 0.0;
    if (full) {
      error = LayerOutputError(w, q, rows, cols, *h, pool_);
      error_rtn = LayerOutputError(w, q_rtn, rows, cols, *h, pool_);
    } else {
      error = BlockDiagonalError(w, q, rows, cols, *blocks);
      error_rtn = BlockDiagonalError(w, q_rtn, rows, cols, *blocks);
    }
    WeightCalibStats& s = stats_[job.hessian_algo];
    s.weights += 1;
    s.sum_error_ratio += error_rtn > 0.0 ? error / error_rtn : 1.0;
    s.block_diagonal_error = !full;
    if (initial && error_rtn > 0.0) {
      const std::vector<float> q_initial = Dequantize(*initial, rows, cols, pool_);
      s.initial_weights += 1;
      s.sum_initial_ratio += LayerOutputError(w, q_initial, rows, cols, *h, pool_) / error_rtn;
      s.initial_name = local ? "local_hessian" : std::string(AlgorithmName(job.nvfp4.algorithm));
    }
    if (gptq) {
      s.dead_columns += gstats.dead_columns;
      s.not_positive_definite += gstats.positive_definite ? 0 : 1;
    }
    s.seconds += std::chrono::duration<double>(Clock::now() - start).count();
    results_[module] = std::move(result);
  }
}

void WeightCalibrator::DequantizeInto(const std::string& name, std::span<float> weight) const {
  if (!name.ends_with(".weight")) return;
  const auto it = results_.find(name.substr(0, name.size() - 7));
  if (it == results_.end()) return;
  std::visit(
      [&](const auto& t) {
        QF_CHECK(static_cast<size_t>(t.rows * t.cols) == weight.size());
        using T = std::decay_t<decltype(t)>;
        if constexpr (std::is_same_v<T, Nvfp4Tensor>) DequantizeNvfp4(t, weight, pool_);
        if constexpr (std::is_same_v<T, MxTensor>) DequantizeMx(t, weight, pool_);
        if constexpr (std::is_same_v<T, Fp8Tensor>) DequantizeFp8(t, weight, pool_);
      },
      it->second);
}

std::vector<std::string> WeightCalibrator::Notes() const {
  std::vector<std::string> notes;
  for (const auto& [algo, s] : stats_) {
    char line[400];
    std::snprintf(line, sizeof line,
                  "%s on %lld weights, mean layer-output error ratio vs RTN (max) %.4f%s, "
                  "%.1f s",
                  std::string(HessianAlgoName(algo)).c_str(), static_cast<long long>(s.weights),
                  s.weights > 0 ? s.sum_error_ratio / static_cast<double>(s.weights) : 0.0,
                  s.block_diagonal_error ? " (16x16 diagonal blocks of H)" : "", s.seconds);
    std::string note = line;
    if (s.initial_weights > 0) {
      std::snprintf(line, sizeof line, "; %s scales alone %.4f", s.initial_name.c_str(),
                    s.sum_initial_ratio / static_cast<double>(s.initial_weights));
      note += line;
    }
    if (s.not_positive_definite > 0) {
      note += "; " + std::to_string(s.not_positive_definite) +
              " Hessians not positive definite (plain RTN used)";
    }
    if (s.dead_columns > 0) note += "; " + std::to_string(s.dead_columns) + " all-zero columns";
    notes.push_back(std::move(note));
  }
  notes.insert(notes.end(), extra_notes_.begin(), extra_notes_.end());
  return notes;
}

}  // namespace qf
