// Evaluation data and perplexity.
//
// Data files: plain text (the whole file is one document), JSONL with a "text" field per line
// (each line one document), or JSONL with "input_ids" per line (already tokenized: no tokenizer
// needed). Documents are tokenized separately (no BOS/EOS) and concatenated into one token
// stream in file order.
//
// Perplexity: the stream is cut into non-overlapping sequences. With a BOS id each sequence is
// [BOS] + the next seq_len - 1 stream tokens (llama.cpp's perplexity convention: the model always
// sees a start of text, and every predicted token is a data token); without one it is the next
// seq_len stream tokens. Each sequence predicts its positions 1..seq_len-1 from its own prefix,
// no context carried between sequences; a tail too short for a whole sequence is dropped.
//   nll = mean over all predicted tokens of -ln softmax(logits)[target]   (natural log)
//   perplexity = exp(nll)
// Sums run in double in sequence order, so the result does not depend on the thread count.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quantforge/model.h"
#include "quantforge/tokenizer.h"

namespace qf {

enum class EvalDataFormat { kText, kJsonlText, kJsonlInputIds };

struct EvalData {
  EvalDataFormat format = EvalDataFormat::kText;
  std::vector<int32_t> tokens;  // the concatenated stream
  int64_t num_documents = 0;
};

// Reads `path`; `tokenizer` may be null only for input_ids data (else qf::Error). Throws on
// malformed JSONL (naming the line), a line mixing formats, or no tokens at all.
EvalData LoadEvalData(const std::filesystem::path& path, const Tokenizer* tokenizer);

// Calibration and scoring sequences cut from a stream: consecutive, non-overlapping from its
// start, each [bos] + the next seq_len - 1 stream tokens (seq_len stream tokens without a BOS),
// at most `max_sequences` of them; deterministic. Throws qf::Error naming `data` when
// max_sequences < 1, seq_len < 2, or the stream is shorter than one sequence. The caller checks
// seq_len against the model's context.
std::vector<std::vector<int32_t>> CutSequences(std::span<const int32_t> stream,
                                               std::optional<int32_t> bos,
                                               int64_t max_sequences, int64_t seq_len,
                                               const std::string& data);

struct EvalProgress {
  int64_t sequences_done = 0;
  int64_t sequences_total = 0;
  int64_t tokens_done = 0;  // predicted tokens so far
  double seconds = 0.0;
};

struct EvalOptions {
  int64_t seq_len = 512;
  int64_t max_tokens = 0;         // stream tokens to use at most (0: all), whole sequences
  std::optional<int32_t> bos_id;  // prepended to every sequence when set
  int64_t batch_tokens = 4096;    // sequences per forward: max(1, batch_tokens / seq_len)
  std::function<void(const EvalProgress&)> progress;  // called after every batch
  // Simulation hooks of the evaluated model (SimulationHooks for a quantized checkpoint); null:
  // activations as computed.
  ForwardHooks* hooks = nullptr;
  // With a reference model, every batch also runs through it (with reference_hooks) and the
  // result carries the KL divergence and top-1 agreement (CompareNextToken) to it.
  const Model* reference = nullptr;
  ForwardHooks* reference_hooks = nullptr;
};

struct EvalResult {
  double nll = 0.0;
  double perplexity = 0.0;
  int64_t tokens = 0;  // predicted tokens
  int64_t sequences = 0;
  double seconds = 0.0;  // wall time of the forward passes and scoring
  // With EvalOptions::reference: mean KL(P_ref || P_model) per predicted token (natural log) and
  // the fraction of predicted positions where both argmax agree; the reference's own nll.
  std::optional<double> kl;
  std::optional<double> top1;
  std::optional<double> reference_nll;
};

// One predicted position: KL(P || Q) = sum_v P_v (ln P_v - ln Q_v) with P = softmax(reference),
// Q = softmax(model), every log-softmax and the sum in double, v in index order (deterministic);
// and whether argmax(reference) == argmax(model) (the first index of the maximum on ties).
struct NextTokenComparison {
  double kl = 0.0;
  bool top1_agrees = false;
};
NextTokenComparison CompareNextToken(std::span<const float> reference_logits,
                                     std::span<const float> model_logits);

// Throws qf::Error when seq_len < 2, seq_len > max_position_embeddings (of the model or the
// reference), the stream is too short for one sequence, or the reference's vocab_size differs.
EvalResult EvaluatePerplexity(const Model& model, std::span<const int32_t> stream,
                              const EvalOptions& options);

}  // namespace qf

// ---------------------------------------------------------------------------------------------
// Calibration observers and weight fake quantization on the model's hooks (quantforge/model.h).

namespace qf {

// Records max |x| per quantizer, named as Model Optimizer names them:
//   "<module>.input_quantizer" for every Linear reading an input (q/k/v share one input, so
//   their three entries are equal), "<layer>.self_attn.k_bmm_quantizer" (keys after RoPE) and
//   "<layer>.self_attn.v_bmm_quantizer". Max is exact and order-free, so the result does not
//   depend on batching or threads. It only observes: activations pass unchanged.
class AmaxObserver final : public ForwardHooks {
 public:
  void OnActivation(const ActivationSite& site, float* x, int64_t rows, int64_t cols,
                    int64_t ld) override;
  const std::map<std::string, float>& Amax() const { return amax_; }

 private:
  std::map<std::string, float> amax_;
};

// Weight fake quantization for simulated evaluation (W4A16, W8A16): every decoder-layer Linear
// weight is quantized and dequantized in place at load; lm_head and embeddings are kept, as
// Model Optimizer's default configs exclude lm_head.
enum class WeightFakeQuant { kNone, kBf16, kFp8PerTensor, kFp8PerChannel, kNvfp4, kMxfp4 };
std::optional<WeightFakeQuant> ParseWeightFakeQuant(std::string_view name);  // "nvfp4", ...
WeightTransform MakeWeightFakeQuant(WeightFakeQuant format, ThreadPool* pool);

}  // namespace qf

// ---------------------------------------------------------------------------------------------
// Quantized checkpoints: dequantized weights plus a description of what the serving engine would
// quantize at run time, and the hooks that simulate it (docs/EVAL.md).

namespace qf {

// How a Linear weight is stored.
enum class StoredWeightFormat { kNvfp4, kFp8PerTensor, kFp8PerChannel, kMxfp8, kMxfp4 };
std::string_view StoredWeightFormatName(StoredWeightFormat format);  // "NVFP4", "FP8", ...

// How the serving kernel quantizes a Linear input.
enum class InputQuantKind {
  kNone,         // BF16 activations (W4A16, W8A16)
  kNvfp4,        // per-16 dynamic E4M3 block scales under the static global scale input_scale
  kFp8Static,    // E4M3(x / input_scale) * input_scale, saturating
  kFp8PerToken,  // per row: scale = row amax / 448 (FP8_PER_CHANNEL_PER_TOKEN, CT dynamic token)
  kMxfp8,        // dynamic MXFP8 per 32 (E8M0 scale 2^ceil(log2(amax / 448)))
  kMxfp4,        // dynamic MXFP4 per 32 (E8M0 scale 2^ceil(log2(amax / 6)))
};
std::string_view InputQuantKindName(InputQuantKind kind);

struct InputQuantizer {
  InputQuantKind kind = InputQuantKind::kNone;
  // kNvfp4 / kFp8Static: Model Optimizer's input_scale, a multiplier (act_amax / 2688 or / 448);
  // compressed-tensors stores its reciprocal, inverted in F32 at load as vLLM does.
  float input_scale = 0.0f;
};

struct LinearQuantization {
  std::string algo;  // as declared: "NVFP4", "W4A16_NVFP4", "FP8", "FP8_PER_CHANNEL_PER_TOKEN", ...
  StoredWeightFormat weight = StoredWeightFormat::kNvfp4;
  InputQuantizer input;
};

// FP8 E4M3 KV cache of one attention module: K (after RoPE) -> E4M3(K / k_scale) * k_scale, V
// likewise. A declared FP8 KV cache without scales uses 1.0, as vLLM does.
struct KvQuantization {
  float k_scale = 1.0f;
  float v_scale = 1.0f;
};

struct QuantizationScheme {
  std::string layout = "none";                        // "modelopt", "compressed-tensors" or "none"
  std::map<std::string, LinearQuantization> linears;  // module prefix -> (quantized ones only)
  std::map<std::string, KvQuantization> kv;  // attention prefix ("model.layers.0.self_attn")

  bool IsQuantized() const { return !linears.empty() || !kv.empty(); }
  // One line, e.g. "NVFP4 W4A4 (weights + activations), FP8 KV" or "unquantized".
  std::string Summary() const;
};

struct QuantizedCheckpoint {
  QuantizationScheme scheme;
  // Quantized Linear weights ("<module>.weight") dequantized into owned F32 buffers (made on the
  // first Find and kept while the source lives); every other tensor passed through unchanged.
  std::unique_ptr<WeightSource> weights;
};

// Opens `dir` (config.json, hf_quant_config.json, safetensors). A checkpoint without a
// quantization_config is returned as is with layout "none". Throws qf::Error naming the file and
// tensor on unknown or malformed quantization metadata: an unknown quant_method / quant_algo /
// scheme, a module whose tensors disagree with the config, a missing or non-positive scale, a
// wrong dtype or shape. NVFP4 dequantization is e2m1 * e4m3(block) * global (DequantizeNvfp4).
QuantizedCheckpoint OpenQuantizedCheckpoint(const std::filesystem::path& dir,
                                            ThreadPool* pool = nullptr);

// The input quantizer of an activation read by `modules` (one, or a fused q|k|v / gate|up
// group). Members must agree on the kind (else qf::Error); when their input_scale differ (they
// must be equal in a loadable checkpoint) the max is used and a warning logged. A member missing
// from the scheme (unquantized) with quantized siblings is an error too.
InputQuantizer ResolveInputQuantizer(const QuantizationScheme& scheme,
                                     std::span<const std::string> modules);

// The run-time quantizers, in place on one row of `n` values (row-independent formats act on
// whatever span they are given). Model Optimizer's dynamic NVFP4 arithmetic (fp4_fake_quant_block):
// per 16 values, s = e4m3(min(amax / (6 * input_scale), 448)) * input_scale, s < 1e-5 -> 1,
// x -> sign(x) * e2m1(|x| / s) * s.
void FakeQuantNvfp4Input(float* x, int64_t n, float input_scale);
void FakeQuantFp8(float* x, int64_t n, float scale);  // x -> E4M3(x / scale) * scale, saturating
void FakeQuantFp8PerToken(float* x, int64_t n);  // max(amax / 448, 1 / 229376); 0 amax: as is

// Fake-quantizes every Linear input, K and V as the scheme says (sites with nothing quantized
// pass through). Input quantizers of each site are resolved once and cached.
class SimulationHooks final : public ForwardHooks {
 public:
  explicit SimulationHooks(QuantizationScheme scheme) : scheme_(std::move(scheme)) {}
  void OnActivation(const ActivationSite& site, float* x, int64_t rows, int64_t cols,
                    int64_t ld) override;

 private:
  QuantizationScheme scheme_;
  std::map<std::string, InputQuantizer> resolved_;  // by the site's first module
  std::vector<float> scratch_;
};

}  // namespace qf
