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
};

struct EvalResult {
  double nll = 0.0;
  double perplexity = 0.0;
  int64_t tokens = 0;  // predicted tokens
  int64_t sequences = 0;
  double seconds = 0.0;  // wall time of the forward passes and scoring
};

// Throws qf::Error when seq_len < 2, seq_len > max_position_embeddings, or the stream is too
// short for one sequence.
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
