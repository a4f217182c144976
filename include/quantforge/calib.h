// Calibration algorithms that need activations: Hessian collection over the model's forward pass,
// GPTQ (second-order weight updates) for NVFP4 / FP8 / MX, and the output-MSE ("local Hessian")
// block-scale search for NVFP4. docs/ALGORITHMS.md states the formulas, the defaults and where we
// differ from NVIDIA Model Optimizer and llm-compressor.
//
// Every result here is deterministic: it depends on the data only, never on the thread count of
// `pool` (nullptr runs on the caller) nor, for the Hessians, on how the tokens were split into
// batches. The outputs are the numerics core's own types (quantize.h), so an exporter writes them
// exactly as it writes QuantizeNvfp4 / QuantizeFp8 / QuantizeMx results.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quantforge/model.h"
#include "quantforge/quantize.h"
#include "quantforge/thread_pool.h"

namespace qf {

// ----------------------------------------------------------------------------------------------
// Hessians of Linear inputs.

// H = (2/n) sum_t x_t x_t^T over n token rows x_t (GPTQ's Hessian of the layer output error),
// dim x dim, row-major, symmetric (both triangles stored).
struct Hessian {
  int64_t dim = 0;
  int64_t num_tokens = 0;
  std::vector<double> matrix;
};

// The 16x16 diagonal blocks of (1/n) sum_t x_t x_t^T, i.e. H_b = H[16b:16b+16, 16b:16b+16] / 2:
// the local Hessians of Model Optimizer's local_hessian calibrator. [num_blocks, 16, 16] float
// (the precision the search uses); a dim that is not a multiple of 16 is padded with zero inputs,
// so the last block's padded rows and columns are 0.
struct BlockHessians {
  int64_t dim = 0;
  int64_t num_blocks = 0;  // ceil(dim / 16)
  int64_t num_tokens = 0;
  std::vector<float> blocks;
  std::span<const float, 256> Block(int64_t b) const {
    return std::span<const float, 256>(blocks.data() + b * 256, 256);
  }
};

enum class HessianKind {
  kFull,           // the whole dim x dim sum (GPTQ; the blocks are derived from its diagonal)
  kBlockDiagonal,  // only the 16x16 diagonal blocks (local_hessian alone: 16 * dim doubles)
};

// Accumulates S = sum_t x_t x_t^T in double (each product of two floats is exact in double).
// kFull adds fixed chunks of 128 tokens, counted over the whole stream, with one BLAS product
// each; kBlockDiagonal adds token by token. Either way the order of additions depends only on
// the token stream, so S is the same bit for bit however the tokens were split into batches and
// whatever the thread count (threads split S's rows, never the token sum). Memory: kFull
// 8 * dim^2 bytes (+ a 128-row float buffer), kBlockDiagonal 8 * 16 * ceil(dim / 16) * 16 bytes.
class HessianAccumulator {
 public:
  HessianAccumulator(int64_t dim, HessianKind kind);
  // x is [rows, dim] with row stride ld (>= dim). Non-finite values throw qf::Error naming `site`.
  void Add(const float* x, int64_t rows, int64_t ld, ThreadPool* pool = nullptr,
           std::string_view site = {});

  int64_t dim() const { return dim_; }
  int64_t num_tokens() const { return num_tokens_; }
  HessianKind kind() const { return kind_; }
  // (2/n) S; needs kFull and at least one token (else qf::Error).
  Hessian GptqHessian() const;
  // Diagonal blocks of S / n in float; needs at least one token.
  BlockHessians LocalHessians() const;

 private:
  int64_t dim_;
  int64_t padded_dim_;
  HessianKind kind_;
  // S with the pending rows added (kFull).
  std::vector<double> FullSum() const;

  int64_t num_tokens_ = 0;
  std::vector<double> sum_;  // kFull: upper triangle of [dim, dim]; else [num_blocks, 16, 16]
  std::vector<float> pending_;  // kFull: rows of the chunk being filled, [128, dim]
  int64_t num_pending_ = 0;
};

struct HessianCollectorOptions {
  HessianKind kind = HessianKind::kFull;
  // Which kLinearInput sites to collect (empty: all). Keys and values are never collected.
  std::function<bool(const ActivationSite&)> filter;
};

// ForwardHooks that accumulates one Hessian per Linear input site. Modules reading the same
// activation share it (q|k|v, gate|up): look it up by any of their names. It never changes the
// activations, so it composes with fake quantization by running after it (Model Optimizer feeds
// GPTQ the input quantizer's output). Release(module) frees a site's memory (a layer-by-layer
// runner calls it once the layer's weights are done); a released site that sees activations
// again starts from zero.
class HessianCollector : public ForwardHooks {
 public:
  explicit HessianCollector(HessianCollectorOptions options = {}, ThreadPool* pool = nullptr);
  void OnActivation(const ActivationSite& site, float* x, int64_t rows, int64_t cols,
                    int64_t ld) override;

  // The accumulator of the site `module` reads; nullptr if none was seen (or it was released).
  const HessianAccumulator* Find(std::string_view module) const;
  // Frees the site `module` reads (and so the Hessian of all modules sharing it).
  void Release(std::string_view module);
  // The sites held now, each as the list of modules reading it, in first-seen order.
  std::vector<std::vector<std::string>> Sites() const;

 private:
  struct Site {
    std::vector<std::string> modules;
    std::unique_ptr<HessianAccumulator> accumulator;
  };
  HessianCollectorOptions options_;
  ThreadPool* pool_;
  std::vector<Site> sites_;
  std::map<std::string, size_t, std::less<>> site_of_module_;
};

// ----------------------------------------------------------------------------------------------
// GPTQ (Frantar et al. 2022; Model Optimizer's model_calib.gptq / utils/calib_utils.py).

enum class GptqScaleTiming {
  // Every block scale computed once from the original weights before any update (Model
  // Optimizer's static NVFP4 path and llm-compressor): the scales are those of the RTN result.
  kFixedBeforeUpdates,
  // NVFP4 only: each 16-column group's scales computed when the sweep reaches the group, from
  // the weights as updated by the earlier columns (the original GPTQ's per-group behaviour).
  kAtGroupStart,
};

// What the preparation found (for logs and tests).
struct GptqStats {
  int64_t dead_columns = 0;     // all-zero weight columns (H row / column zeroed, diagonal 1)
  bool positive_definite = true;  // false: the identity was used (plain round-to-nearest)
};

// The prepared factor of one weight against one H (PrepareGptq): the upper Cholesky factor U of
// the damped inverse Hessian (H_d^-1 = U^T U, [dim, dim] row-major, in sweep order) after Model
// Optimizer's preparation: columns whose weights are all zero get a zeroed H row and column with
// diagonal 1, then perc_damp * mean(diag) is added to the diagonal; U = I if the damped H is not
// positive definite. Its O(dim^3) cost can be shared by modules reading one input (q|k|v,
// gate|up) when their all-zero columns are the same (checked).
struct GptqFactor {
  int64_t dim = 0;
  std::vector<double> u;
  bool act_order = false;
  std::vector<int64_t> order;         // act_order: sweep position -> column
  std::vector<int64_t> dead_columns;  // of the weight it was prepared for
  GptqStats stats;
};

struct GptqOptions {
  double perc_damp = 0.01;  // damping: + perc_damp * mean(diag H) on the diagonal
  int64_t block_size = 128;  // columns per lazy-update block
  bool act_order = false;    // process columns by decreasing diag(H) (see docs/ALGORITHMS.md)
  GptqScaleTiming scale_timing = GptqScaleTiming::kFixedBeforeUpdates;
  // Prepared by PrepareGptq (same act_order) for another weight reading the same input: used
  // instead of preparing from h (h is then not read). Throws if this weight's all-zero columns
  // differ from the factor's.
  const GptqFactor* shared_factor = nullptr;
};

GptqFactor PrepareGptq(std::span<const float> w, int64_t rows, int64_t cols, const Hessian& h,
                       const GptqOptions& options = {}, ThreadPool* pool = nullptr);

// w is [rows, cols] F32 row-major; h.dim must equal cols (h is not read with a shared_factor). The initial scales (and the global
// scale) come from QuantizeNvfp4(w, nvfp4) (any algorithm: max, mse, four_over_six), so stacking
// `mse` + GPTQ as Model Optimizer does is this call with nvfp4.algorithm = kMse.
Nvfp4Tensor GptqNvfp4(std::span<const float> w, int64_t rows, int64_t cols, const Hessian& h,
                      const GptqOptions& options, const Nvfp4Options& nvfp4,
                      ThreadPool* pool = nullptr, GptqStats* stats = nullptr);
// As GptqNvfp4 with the initial scales taken from `initial` (e.g. LocalHessianNvfp4's result):
// its block_scales, global_scale, global_amax and chosen_candidate are kept and its codes
// replaced. options.scale_timing must be kFixedBeforeUpdates.
Nvfp4Tensor GptqNvfp4FromScales(std::span<const float> w, int64_t rows, int64_t cols,
                                const Hessian& h, const GptqOptions& options,
                                const Nvfp4Tensor& initial, ThreadPool* pool = nullptr,
                                GptqStats* stats = nullptr);
// FP8 E4M3: scales from QuantizeFp8(w, granularity, amax), fixed before the updates.
Fp8Tensor GptqFp8(std::span<const float> w, int64_t rows, int64_t cols, const Hessian& h,
                  const GptqOptions& options, Fp8Granularity granularity,
                  std::optional<float> amax = std::nullopt, ThreadPool* pool = nullptr,
                  GptqStats* stats = nullptr);
// MXFP4 / MXFP8: E8M0 scales from QuantizeMx(w, element, rule), fixed before the updates.
MxTensor GptqMx(std::span<const float> w, int64_t rows, int64_t cols, const Hessian& h,
                const GptqOptions& options, MxElement element,
                MxScaleRule rule = MxScaleRule::kOcpFloor, ThreadPool* pool = nullptr,
                GptqStats* stats = nullptr);

// tr((W - Q) H (W - Q)^T) / rows: the layer output error GPTQ minimizes, in double. With
// H = (2/n) sum_t x_t x_t^T it is twice the mean over tokens and output rows of the squared
// output error ((W - Q) x_t)_r^2. w and q are [rows, cols].
double LayerOutputError(std::span<const float> w, std::span<const float> q, int64_t rows,
                        int64_t cols, const Hessian& h, ThreadPool* pool = nullptr);

// ----------------------------------------------------------------------------------------------
// Output-MSE block-scale search for NVFP4 (Model Optimizer's local_hessian).

// Per 16-block, the candidates of the `mse` algorithm (nvfp4.mse: 39 block-amax multipliers, or
// with fp8_scale_sweep the 126 E4M3 block scales, Model Optimizer's local_hessian default), each
// scored by dw^T H_b dw with dw = w - dequant(quant(w)); the least wins, ties keep the first
// candidate (as `mse`). Static block-scale arithmetic and the global scale as QuantizeNvfp4 with
// algorithm kMse. nvfp4.algorithm is ignored. With every H_b = I the result equals
// QuantizeNvfp4(kMse) byte for byte.
Nvfp4Tensor LocalHessianNvfp4(std::span<const float> w, int64_t rows, int64_t cols,
                              const BlockHessians& h, const Nvfp4Options& nvfp4,
                              ThreadPool* pool = nullptr);

}  // namespace qf
