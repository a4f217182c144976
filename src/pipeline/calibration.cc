// Max calibration on the engine's forward pass: data -> tokens -> fixed sequences -> the model
// run layer by layer with amax observers. Max is exact and order-free, so the result does not
// depend on batching or threads.
#include "src/pipeline/calibration.h"

#include <algorithm>
#include <memory>

#include "quantforge/error.h"
#include "quantforge/eval.h"
#include "quantforge/model.h"
#include "quantforge/tokenizer.h"

namespace qf {
namespace {

// Tokens per batch of a layer's pass: bounds the activations held at once.
constexpr int64_t kBatchTokens = 4096;

}  // namespace

std::vector<std::vector<int32_t>> CalibrationSequences(std::span<const int32_t> stream,
                                                       std::optional<int32_t> bos,
                                                       int64_t samples, int64_t seq_len,
                                                       int64_t max_positions,
                                                       const std::string& data) {
  if (seq_len == 0) seq_len = max_positions > 0 ? std::min<int64_t>(512, max_positions) : 512;
  if (max_positions > 0 && seq_len > max_positions) {
    throw Error("--seq-len " + std::to_string(seq_len) +
                    " is longer than the model's context (max_position_embeddings " +
                    std::to_string(max_positions) + ")",
                {.path = data});
  }
  return CutSequences(stream, bos, samples, seq_len, data);
}

bool LmHeadInputQuantized(const JobPlan& job) {
  for (const TensorJob& t : job.tensors) {
    if (t.linear && t.linear->input_quantized && t.linear->module == "lm_head") return true;
  }
  return false;
}

void ApplyCalibration(JobPlan& job, const std::map<std::string, float>& amax) {
  const auto find = [&](const std::string& name) {
    const auto it = amax.find(name);
    if (it == amax.end()) {
      throw Error("calibration observed no activations for " + name +
                  " (the forward pass has no such site)");
    }
    return it->second;
  };
  std::map<std::string, float> group_amax;  // fusion / MoE key -> max over its members
  for (TensorJob& t : job.tensors) {
    if (!t.linear || !t.linear->input_quantized) continue;
    LinearJob& l = *t.linear;
    l.input_amax = find(l.module + ".input_quantizer");
    for (const std::string* key : {&l.fusion_group, &l.moe_input_group}) {
      if (key->empty()) continue;
      float& g = group_amax[*key];
      g = std::max(g, *l.input_amax);
    }
  }
  // Fusion and MoE groups may chain (gate/up of one expert, all experts of a layer): iterate the
  // max to a fixed point so every linked member ends with the same value.
  for (bool changed = true; changed;) {
    changed = false;
    for (TensorJob& t : job.tensors) {
      if (!t.linear || !t.linear->input_quantized) continue;
      LinearJob& l = *t.linear;
      float m = *l.input_amax;
      for (const std::string* key : {&l.fusion_group, &l.moe_input_group}) {
        if (!key->empty()) m = std::max(m, group_amax[*key]);
      }
      for (const std::string* key : {&l.fusion_group, &l.moe_input_group}) {
        if (!key->empty() && group_amax[*key] < m) {
          group_amax[*key] = m;
          changed = true;
        }
      }
      l.input_amax = m;
    }
  }
  for (KvJob& kv : job.kv) {
    kv.k_amax = find(kv.attn + ".k_bmm_quantizer");
    kv.v_amax = find(kv.attn + ".v_bmm_quantizer");
  }
}

QuantizationScheme ActivationScheme(const JobPlan& job) {
  QuantizationScheme scheme;
  for (const TensorJob& t : job.tensors) {
    if (!t.linear || !t.linear->input_quantized || !t.linear->input_amax) continue;
    const LinearJob& l = *t.linear;
    const bool nvfp4 = l.algo == QuantAlgo::kNvfp4;
    LinearQuantization q;
    q.algo = std::string(QuantAlgoName(l.algo));
    q.weight = nvfp4 ? StoredWeightFormat::kNvfp4 : StoredWeightFormat::kFp8PerTensor;
    q.input.kind = nvfp4 ? InputQuantKind::kNvfp4 : InputQuantKind::kFp8Static;
    q.input.input_scale = *l.input_amax / (nvfp4 ? 6.0f * 448.0f : 448.0f);
    scheme.linears[l.module] = q;
  }
  for (const KvJob& kv : job.kv) {
    scheme.kv[kv.attn] = KvQuantization{.k_scale = kv.k_amax / 448.0f,
                                        .v_scale = kv.v_amax / 448.0f};
  }
  if (scheme.IsQuantized()) scheme.layout = "modelopt";
  return scheme;
}

CalibrationResult Calibrate(const std::filesystem::path& model_dir,
                            const CalibrationOptions& options, ThreadPool* pool) {
  const std::string data_name = options.data.string();
  if (!std::filesystem::is_regular_file(options.data)) {
    throw Error("calibration data file not found", {.path = data_name});
  }
  const ModelConfig config = LoadModelConfig(model_dir);

  const std::unique_ptr<Tokenizer> tokenizer =
      OpenModelTokenizer(model_dir, options.tokenizer, config.vocab_size);
  const EvalData data = LoadEvalData(options.data, tokenizer.get());
  const std::optional<int32_t> bos = tokenizer ? tokenizer->BosId() : std::nullopt;
  const std::vector<std::vector<int32_t>> sequences =
      CalibrationSequences(data.tokens, bos, options.samples, options.seq_len,
                           config.max_position_embeddings, data_name);

  TokenBatch batch;
  for (const std::vector<int32_t>& s : sequences) batch.sequences.emplace_back(s);
  const int64_t seq_len = static_cast<int64_t>(sequences.front().size());
  const LayerwiseOptions layerwise{.batch_tokens = kBatchTokens,
                                   .lm_head_input = options.lm_head_input};
  CalibrationProgress progress{
      .num_layers = config.num_hidden_layers,
      .num_tokens = batch.NumTokens(),
      .sequences = static_cast<int64_t>(sequences.size()),
      .seq_len = seq_len,
      .estimated_bytes =
          EstimateLayerwiseMemory(config, static_cast<int64_t>(sequences.size()), seq_len,
                                  pool != nullptr ? static_cast<int64_t>(pool->NumWorkers()) : 1,
                                  layerwise)
              .Total()};
  const std::unique_ptr<WeightSource> weights = OpenCheckpointWeights(model_dir);
  LayerwiseRunner runner(config, *weights, pool, {}, layerwise);
  AmaxObserver observer;
  HookChain hooks(&observer, options.extra_hooks);
  LayerwiseCallbacks callbacks;
  callbacks.on_layer_done = options.on_layer_done;
  callbacks.rerun_transform = options.rerun_transform;
  callbacks.rerun_hooks = options.rerun_hooks;
  callbacks.progress = [&](const LayerwiseProgress& p) {
    progress.layer = p.layer;
    progress.tokens_done = p.tokens_done;
    progress.seconds = p.seconds;
    if (options.progress) options.progress(progress);
  };
  runner.Run(batch, &hooks, callbacks);
  if (options.progress) {
    progress.finished = true;
    options.progress(progress);
  }

  CalibrationResult result;
  result.amax = observer.Amax();
  result.sequences = static_cast<int64_t>(sequences.size());
  result.seq_len = seq_len;
  result.tokenizer = tokenizer ? tokenizer->Describe() : "";
  result.seconds = progress.seconds;
  return result;
}

}  // namespace qf
