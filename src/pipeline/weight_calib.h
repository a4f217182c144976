// Weights quantized during calibration: GPTQ and the output-MSE (local_hessian) block-scale
// search need the Hessian of each Linear's input, which exists only while the layer-by-layer
// calibration run is at that layer. WeightCalibrator is a ForwardHooks that collects those
// Hessians (HessianCollector) and, once a layer is done (LayerwiseCallbacks::on_layer_done),
// quantizes the layer's affected weights, keeps the compressed result and frees the Hessians:
// memory stays bounded by one layer's Hessians plus the compressed results.
//
// Which activations it sees is the caller's choice (RunQuantize, docs/PIPELINE.md): with quantized
// activations a second pass with SimulationHooks before it, and for GPTQ the sequential re-run of
// each finished layer with DequantizeInto as the weight transform.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "quantforge/calib.h"
#include "quantforge/checkpoint.h"
#include "quantforge/model.h"
#include "quantforge/quantize.h"
#include "quantforge/thread_pool.h"
#include "src/pipeline/job_plan.h"

namespace qf {

using QuantizedWeight = std::variant<Nvfp4Tensor, MxTensor, Fp8Tensor>;

// Per HessianAlgo: how many weights, and their layer output error against round-to-nearest
// (the job's format with max scales) on the same Hessian.
struct WeightCalibStats {
  int64_t weights = 0;
  double sum_error_ratio = 0.0;       // sum over weights of error(algorithm) / error(RTN max)
  bool block_diagonal_error = false;  // the error uses only H's 16x16 diagonal blocks
  // Stacks ([mse, gptq], [local_hessian, gptq]): the same ratio for the initial scales alone
  // (their round-to-nearest result), on the full Hessian.
  int64_t initial_weights = 0;
  double sum_initial_ratio = 0.0;
  std::string initial_name;  // "mse", "local_hessian"
  int64_t dead_columns = 0;
  int64_t not_positive_definite = 0;
  double seconds = 0.0;
};

class WeightCalibrator : public ForwardHooks {
 public:
  // `checkpoint` and `job` must outlive the calibrator; the weights are read from `checkpoint`.
  WeightCalibrator(const Checkpoint& checkpoint, const JobPlan& job, ThreadPool* pool);

  void OnActivation(const ActivationSite& site, float* x, int64_t rows, int64_t cols,
                    int64_t ld) override;
  // Quantizes every weight whose Hessian is held now (the layer just run), then releases them.
  // Call from on_layer_done and once after the run (lm_head's input comes after the last layer).
  void QuantizeHeld();

  // Overwrites `weight` ("<module>.weight") with its quantized result, dequantized, when this
  // calibrator made one (a WeightTransform for the sequential re-run of a finished layer).
  void DequantizeInto(const std::string& name, std::span<float> weight) const;

  // module -> its weight, for the writer.
  std::map<std::string, QuantizedWeight>& results() { return results_; }
  const std::map<HessianAlgo, WeightCalibStats>& stats() const { return stats_; }
  // One summary line per algorithm: "gptq on N weights, mean layer-output error ratio vs RTN ...".
  std::vector<std::string> Notes() const;
  void AddNote(std::string note) { extra_notes_.push_back(std::move(note)); }

 private:
  void QuantizeSite(const std::vector<std::string>& modules);

  const Checkpoint& checkpoint_;
  ThreadPool* pool_;
  std::map<std::string, const TensorJob*, std::less<>> jobs_;  // module -> its job
  HessianCollector collector_;
  std::map<std::string, QuantizedWeight> results_;
  std::map<HessianAlgo, WeightCalibStats> stats_;
  std::vector<std::string> extra_notes_;
};

}  // namespace qf
