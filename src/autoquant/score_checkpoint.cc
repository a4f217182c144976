// One AutoQuantize scoring run over a checkpoint directory (autoquant_score.h): the decision
// groups of its tensors, calibration sequences cut from a text file as EvaluatePerplexity cuts
// them (BOS + seq_len - 1 data tokens), the backward pass, and the scores made monotone.
#include <chrono>

#include "fmt/core.h"
#include "quantforge/autoquant_score.h"
#include "quantforge/error.h"
#include "quantforge/eval.h"

namespace qf {

ScoredModel ScoreCheckpoint(const ScoringInputs& inputs, ThreadPool* pool) {
  const auto start = std::chrono::steady_clock::now();
  const ModelConfig config = LoadModelConfig(inputs.model);
  ScoredModel result;
  result.groups =
      BuildDecisionGroups(CheckpointTensorDescs(inputs.model), ParseAutoFormatList(inputs.formats));

  const std::unique_ptr<Tokenizer> tokenizer =
      OpenModelTokenizer(inputs.model, inputs.tokenizer, config.vocab_size);
  const EvalData data = LoadEvalData(inputs.calib, tokenizer.get());
  if (tokenizer) {
    result.bos_id = tokenizer->BosId();
  } else if (config.bos_token_id) {
    result.bos_id = static_cast<int32_t>(*config.bos_token_id);
  }
  result.seq_len = std::min(inputs.seq_len, config.max_position_embeddings);
  const std::vector<std::vector<int32_t>> sequences =
      CutSequences(data.tokens, result.bos_id, inputs.calib_samples, result.seq_len,
                   inputs.calib.string());
  result.num_sequences = static_cast<int64_t>(sequences.size());

  const std::unique_ptr<WeightSource> weights = OpenCheckpointWeights(inputs.model);
  // `weights` outlives `model`, as the layer-by-layer mode requires.
  const std::unique_ptr<GradientModel> model =
      GradientModel::Load(config, *weights, pool, GradientOptions{.layerwise = inputs.layerwise});
  ScoreOptions options;
  options.batch_tokens = inputs.batch_tokens;
  options.progress = inputs.progress;
  result.raw_scores = GradientScores(*model, *weights, result.groups, sequences, pool, options);
  result.scores = result.raw_scores;
  MakeScoresMonotone(result.groups, result.scores);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace qf
