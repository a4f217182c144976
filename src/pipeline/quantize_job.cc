// RunQuantize: plan -> pre-pass (amax, NaN/Inf, fused global scales) -> declared output layout ->
// stream every tensor through its quantizer into the writer -> configs -> commit.
//
// Why a pre-pass: engines fuse q/k/v and gate/up into one GEMM with one global scale, so a fused
// group's NVFP4 global amax must be known before any member is quantized; and a weight with
// NaN/Inf under the keep-unquantized policy changes the output layout, which the streaming writer
// needs up front. The pre-pass reads each quantized weight once with the vectorized amax kernel
// (memory-bandwidth bound) and releases its pages.
#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <set>

#include "quantforge/checkpoint.h"
#include "quantforge/error.h"
#include "quantforge/pipeline.h"
#include "quantforge/quantize.h"
#include "quantforge/recipe.h"
#include "src/pipeline/calibration.h"
#include "src/pipeline/job_plan.h"
#include "src/pipeline/weight_calib.h"

namespace qf {
namespace {

using Clock = std::chrono::steady_clock;

// Whether lm_head's weight needs the Hessian of its input (then calibration must observe it).
bool LmHeadHessian(const JobPlan& job) {
  for (const TensorJob& t : job.tensors) {
    if (t.linear && t.linear->hessian_algo != HessianAlgo::kNone && t.linear->module == "lm_head") {
      return true;
    }
  }
  return false;
}

// Whether the calibrated job quantizes any activation (static inputs, KV cache).
bool HasQuantizedActivations(const JobPlan& job) {
  if (!job.kv.empty()) return true;
  for (const TensorJob& t : job.tensors) {
    if (t.linear && t.linear->input_quantized) return true;
  }
  return false;
}

// Quantizes one weight as its plan says, ready for the exporter; `precomputed` (GPTQ /
// local_hessian during calibration) is used as is.
QuantizedLinear QuantizeLinear(const TensorView& view, const LinearJob& job, ThreadPool* pool,
                               std::optional<QuantizedWeight> precomputed) {
  QuantizedLinear linear;
  linear.prefix = job.module;
  linear.input_quantized = job.input_quantized;  // W4A4 / W8A8: calibrated (ApplyCalibration)
  linear.input_amax = job.input_amax;
  if (precomputed) {
    linear.weight = std::move(*precomputed);
    return linear;
  }
  switch (job.algo) {
    case QuantAlgo::kNvfp4:
    case QuantAlgo::kW4A16Nvfp4:
      linear.weight = QuantizeNvfp4(view, job.nvfp4, pool);
      break;
    case QuantAlgo::kFp8:
      linear.weight = QuantizeFp8(view, Fp8Granularity::kPerTensor, std::nullopt, pool);
      break;
    case QuantAlgo::kFp8PerChannel:
      linear.weight = QuantizeFp8(view, Fp8Granularity::kPerChannel, std::nullopt, pool);
      break;
    case QuantAlgo::kMxfp4:
      linear.weight = QuantizeMx(view, MxElement::kE2M1, MxScaleRule::kOcpFloor, pool);
      break;
    case QuantAlgo::kMxfp8:
      linear.weight = QuantizeMx(view, MxElement::kE4M3, MxScaleRule::kOcpFloor, pool);
      break;
  }
  return linear;
}

void CheckOutputIsNotInput(const Checkpoint& checkpoint, const std::filesystem::path& out) {
  std::error_code ec;
  const auto in_dir = std::filesystem::weakly_canonical(checkpoint.Directory(), ec);
  const auto out_dir = std::filesystem::weakly_canonical(out, ec);
  if (!ec && in_dir == out_dir) {
    throw Error("the output directory is the input checkpoint; choose another --out",
                {.path = out.string()});
  }
}

FormatSummary& Bucket(std::vector<FormatSummary>& buckets, const std::string& format) {
  for (FormatSummary& b : buckets) {
    if (b.format == format) return b;
  }
  buckets.push_back(FormatSummary{.format = format});
  return buckets.back();
}

}  // namespace

QuantizeSummary RunQuantize(const QuantizeOptions& options, ThreadPool* pool,
                            const ProgressCallback& progress) {
  const Clock::time_point start = Clock::now();
  const Checkpoint checkpoint = Checkpoint::Open(options.model);
  CheckOutputIsNotInput(checkpoint, options.out);
  RefuseQuantizedInput(checkpoint);
  const Recipe recipe = LoadRecipe(options.recipe);

  JobPlan job = BuildJobPlan(checkpoint, recipe, options, pool);
  std::optional<CalibrationResult> calibration;
  // GPTQ / local_hessian: weights quantized layer by layer during calibration, written below.
  std::optional<WeightCalibrator> weight_calib;
  if (job.needs_hessians) weight_calib.emplace(checkpoint, job, pool);
  if (job.needs_calibration) {
    CalibrationOptions calib{.data = options.calib_data,
                             .tokenizer = options.tokenizer,
                             .samples = options.calib_samples,
                             .seq_len = options.calib_seq_len,
                             .lm_head_input = LmHeadInputQuantized(job) || LmHeadHessian(job),
                             .progress = options.calib_progress};
    // GPTQ / local_hessian see the activations the serving engine quantizes (Model Optimizer
    // feeds GPTQ the input quantizer's output). Those quantizers need the amax of the whole
    // pass first, so with quantized activations the Hessians come from a second pass.
    const bool qdq_pass = weight_calib && HasQuantizedActivations(job);
    // GPTQ calibrates each layer on the outputs of the already quantized earlier layers (Model
    // Optimizer's layerwise default): each finished layer runs again with its new weights.
    // local_hessian alone keeps the unquantized model (its scores are per block, not a sweep).
    const bool sequential = weight_calib && job.full_hessians;
    const WeightTransform quantized_weights = [&](const std::string& name,
                                                  std::span<float> weight, int64_t, int64_t) {
      weight_calib->DequantizeInto(name, weight);
    };
    if (weight_calib && !qdq_pass) {
      calib.extra_hooks = &*weight_calib;
      calib.on_layer_done = [&](int64_t) { weight_calib->QuantizeHeld(); };
      if (sequential) calib.rerun_transform = quantized_weights;
    }
    calibration = Calibrate(checkpoint.Directory(), calib, pool);
    ApplyCalibration(job, calibration->amax);
    if (qdq_pass) {
      SimulationHooks simulation(ActivationScheme(job));
      HookChain chain(&simulation, &*weight_calib);
      calib.extra_hooks = &chain;
      calib.on_layer_done = [&](int64_t) { weight_calib->QuantizeHeld(); };
      if (sequential) {
        calib.rerun_transform = quantized_weights;
        calib.rerun_hooks = &simulation;
      }
      Calibrate(checkpoint.Directory(), calib, pool);
    }
    if (weight_calib) weight_calib->QuantizeHeld();  // lm_head's input comes after the layers
    // A weight whose input the forward pass never showed has no Hessian: refuse it here, before
    // anything is written, as ApplyCalibration refuses an unobserved input quantizer.
    for (const TensorJob& t : job.tensors) {
      if (!weight_calib || !t.linear || t.linear->hessian_algo == HessianAlgo::kNone) continue;
      if (weight_calib->results().count(t.linear->module) == 0) {
        throw Error("calibration observed no activations for the input of " + t.linear->module +
                        " (the forward pass has no such site), so " +
                        std::string(HessianAlgoName(t.linear->hessian_algo)) +
                        " has no Hessian for it",
                    {.tensor = t.info->name});
      }
    }
    if (sequential) {
      weight_calib->AddNote("sequential: each layer calibrated on the outputs of the quantized "
                            "earlier layers");
    }
    if (qdq_pass) {
      weight_calib->AddNote("Hessians from a second pass with the calibrated input / KV "
                            "quantizers simulated");
    }
  }

  // Declare the whole output layout, then stream.
  std::vector<TensorSpec> specs;
  for (const TensorJob& t : job.tensors) {
    if (t.linear) {
      std::vector<TensorSpec> layout = LinearLayout(t.linear->module, t.linear->algo,
                                                    t.info->shape, t.linear->input_quantized,
                                                    options.format);
      specs.insert(specs.end(), layout.begin(), layout.end());
    } else {
      specs.push_back(TensorSpec{t.info->name, t.info->dtype, t.info->shape});
    }
  }
  for (const KvJob& kv : job.kv) {
    std::vector<TensorSpec> layout = KvScaleLayout(kv.attn, options.format);
    specs.insert(specs.end(), layout.begin(), layout.end());
  }

  OutputTransaction transaction(options.out, options.overwrite);
  CheckpointWriter writer(transaction.Dir(), std::move(specs),
                          WriterOptions{.max_shard_bytes = options.max_shard_bytes,
                                        .metadata = {{"producer", "quantforge"}},
                                        .sync_to_disk = options.sync_to_disk});

  QuantizeSummary summary;
  summary.out = options.out;
  summary.notes = job.notes;
  if (!calibration && !options.calib_data.empty()) {
    summary.notes.push_back("--calib ignored: no quantizer of this job needs calibration");
  }
  if (calibration) {
    summary.notes.push_back("calibrated (max) on " + std::to_string(calibration->sequences) +
                            " sequences of " + std::to_string(calibration->seq_len) +
                            " tokens of " + options.calib_data.string() +
                            ", activations of the unquantized model");
  }
  if (weight_calib) {
    for (std::string& note : weight_calib->Notes()) summary.notes.push_back(std::move(note));
  }
  QuantizeProgress state{.tensors_total = job.tensors.size(), .bytes_total = checkpoint.TotalBytes()};
  uint64_t weight_bits = 0;
  int64_t weight_elements = 0;
  ExportManifest manifest;
  for (const TensorJob& t : job.tensors) {
    const TensorInfo& info = *t.info;
    state.current = info.name;
    const TensorView view = checkpoint.View(info);
    uint64_t bytes_out = 0;
    std::string bucket;
    if (t.linear) {
      std::optional<QuantizedWeight> precomputed;
      if (weight_calib) {
        auto& results = weight_calib->results();
        const auto it = results.find(t.linear->module);
        if (it != results.end()) {
          precomputed = std::move(it->second);
          results.erase(it);  // the compressed copy is freed once written
        }
        QF_CHECK(precomputed || t.linear->hessian_algo == HessianAlgo::kNone);
      }
      std::vector<ExportTensor> tensors = ExportLinear(
          QuantizeLinear(view, *t.linear, pool, std::move(precomputed)), options.format);
      for (const ExportTensor& e : tensors) {
        writer.Write(e.name, e.Bytes());
        bytes_out += e.bytes.size();
      }
      const bool has_input_scale = t.linear->input_quantized;
      bucket = std::string(
          QuantAlgoName(ExportedAlgo(t.linear->algo, has_input_scale, options.format)));
      manifest.quantized.push_back(
          QuantizedModule{t.linear->module, t.linear->algo, has_input_scale});
    } else {
      writer.Write(info.name, view.data);
      bytes_out = info.NumBytes();
      const auto& excluded = manifest.unquantized;
      if (t.list_as_excluded &&
          std::find(excluded.begin(), excluded.end(), t.module) == excluded.end()) {
        manifest.unquantized.push_back(t.module);
      }
      if (t.is_linear_weight) {
        bucket = "unquantized " + std::string(DTypeName(info.dtype));
      } else {
        bucket = "other tensors";
      }
    }
    checkpoint.ReleasePages(info);

    FormatSummary& b = Bucket(summary.formats, bucket);
    b.tensors += 1;
    b.bytes_in += info.NumBytes();
    b.bytes_out += bytes_out;
    b.elements += NumElements(info.shape);
    if (t.is_linear_weight) {
      weight_bits += bytes_out * 8;
      weight_elements += NumElements(info.shape);
    }
    summary.bytes_in += info.NumBytes();
    summary.bytes_out += bytes_out;
    state.tensors_done += 1;
    state.bytes_done += info.NumBytes();
    if (progress) progress(state);
  }
  for (const KvJob& kv : job.kv) {
    for (const ExportTensor& e : ExportKvScales(kv.attn, kv.k_amax, kv.v_amax, options.format)) {
      writer.Write(e.name, e.Bytes());
      summary.bytes_out += e.bytes.size();
    }
    manifest.kv_cache_fp8 = true;
  }
  writer.Finish();

  CopyAuxiliaryFiles(checkpoint.Directory(), transaction.Dir());
  WriteQuantConfigFiles(transaction.Dir(), checkpoint.Directory() / "config.json", manifest,
                        options.format);
  transaction.Commit();

  summary.excluded = job.excluded;
  summary.quant_algo = DeclaredQuantAlgo(manifest, options.format);
  summary.weight_bpe =
      weight_elements == 0 ? 0.0 : static_cast<double>(weight_bits) / weight_elements;
  summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return summary;
}

}  // namespace qf
