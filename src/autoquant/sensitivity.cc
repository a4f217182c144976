// AutoQuantize's gradient score (quantforge/autoquant_score.h): the backward pass gives each
// decoder Linear's input X and output gradient g; for every candidate format the output change
// of the module as served, dy = X dW^T with dW = W_q - W (plus (Q(X) - X) W^T where the exported
// format's inputs are quantized at run time: FP8, MX), and the score adds sum clamp(g * dy)^2.
//
// Order: each module's score per candidate is summed over batches in batch order, then a group's
// score sums its modules in the group's (sorted) module order, all in double, so the result does
// not depend on the order the backward pass visits modules or on the thread count.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "fmt/core.h"
#include "quantforge/autoquant_score.h"
#include "quantforge/error.h"
#include "quantforge/eval.h"
#include "src/autoquant/format_table.h"

namespace qf {
namespace {

// ModelOpt clamps g * dy to +-1e10 before squaring so one overflowing product cannot make a
// score infinite.
constexpr double kProductClamp = 1e10;

double ScoreOneFormat(const LinearGradient& lg, AutoFormat format, std::optional<float> amax,
                      std::vector<float>& dw, std::vector<float>& dx, std::vector<float>& dy,
                      ThreadPool* pool) {
  const int64_t numel = lg.out_features * lg.in_features;
  dw.assign(lg.weight, lg.weight + numel);
  FakeQuantizeWeight(dw, lg.out_features, lg.in_features, format, amax,
                     std::string(lg.module) + ".weight", pool);
  for (int64_t i = 0; i < numel; ++i) dw[i] -= lg.weight[i];
  dy.resize(static_cast<size_t>(lg.rows * lg.out_features));
  const int m = static_cast<int>(lg.rows), n = static_cast<int>(lg.out_features);
  const int k = static_cast<int>(lg.in_features);
  // The served module (ServedQuantization): FP8 / MX exports are run with their inputs quantized,
  // so dy = Q(X) Wq^T - X W^T = Q(X) dW^T + (Q(X) - X) W^T; W4A16 NVFP4: dy = X dW^T.
  const std::optional<LinearQuantization> served = autoquant::ServedQuantization(format);
  if (!served || served->input.kind == InputQuantKind::kNone) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, lg.input, k, dw.data(), k,
                0.0f, dy.data(), n);
  } else {
    QuantizationScheme scheme;
    const std::string module(lg.module);
    scheme.linears[module] = *served;
    SimulationHooks hooks(std::move(scheme));
    dx.assign(lg.input, lg.input + lg.rows * lg.in_features);
    hooks.OnActivation(ActivationSite{ActivationKind::kLinearInput, lg.layer, {&module, 1}},
                       dx.data(), lg.rows, lg.in_features, lg.in_features);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, dx.data(), k, dw.data(), k,
                0.0f, dy.data(), n);
    for (size_t i = 0; i < dx.size(); ++i) dx[i] -= lg.input[i];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, dx.data(), k, lg.weight, k,
                1.0f, dy.data(), n);
  }
  double score = 0.0;
  for (size_t i = 0; i < dy.size(); ++i) {
    const double p =
        std::clamp(static_cast<double>(lg.grad_output[i]) * dy[i], -kProductClamp, kProductClamp);
    score += p * p;
  }
  return score;
}

}  // namespace

ScoreTable GradientScores(const GradientModel& model, const WeightSource& weights,
                          std::span<const DecisionGroup> groups,
                          const std::vector<std::vector<int32_t>>& sequences, ThreadPool* pool,
                          const ScoreOptions& options) {
  if (sequences.empty()) throw Error("no calibration sequences to score with");
  struct Where {
    size_t group = 0;
    size_t member = 0;
  };
  std::map<std::string, Where, std::less<>> where;
  // module_scores[g][member][c]
  std::vector<std::vector<std::vector<double>>> module_scores(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    module_scores[g].assign(groups[g].modules.size(),
                            std::vector<double>(groups[g].candidates.size(), 0.0));
    for (size_t m = 0; m < groups[g].modules.size(); ++m) where[groups[g].modules[m]] = {g, m};
  }
  const std::map<std::string, float> fusion_amax = FusionGlobalAmax(groups, weights, pool);

  const int64_t seq_len = static_cast<int64_t>(sequences.front().size());
  const size_t per_batch = static_cast<size_t>(
      std::max<int64_t>(1, options.batch_tokens / std::max<int64_t>(1, seq_len)));
  ScoreProgress progress;
  progress.batches_total = static_cast<int64_t>((sequences.size() + per_batch - 1) / per_batch);
  const auto start = std::chrono::steady_clock::now();
  std::vector<float> dw, dx, dy;
  size_t num_visited = 0;
  for (size_t first = 0; first < sequences.size(); first += per_batch) {
    TokenBatch batch;
    for (size_t s = first; s < std::min(sequences.size(), first + per_batch); ++s) {
      batch.sequences.emplace_back(sequences[s]);
    }
    model.Backward(batch, [&](const LinearGradient& lg) {
      const auto it = where.find(lg.module);
      if (it == where.end()) return;  // not a decision module (lm_head has no visit anyway)
      ++num_visited;
      const DecisionGroup& group = groups[it->second.group];
      const auto amax = fusion_amax.find(std::string(lg.module));
      const std::optional<float> global_amax =
          amax == fusion_amax.end() ? std::nullopt : std::optional<float>(amax->second);
      std::vector<double>& row = module_scores[it->second.group][it->second.member];
      for (size_t c = 0; c < group.candidates.size(); ++c) {
        if (group.candidates[c] == AutoFormat::kNone) continue;
        row[c] += ScoreOneFormat(lg, group.candidates[c], global_amax, dw, dx, dy, pool);
      }
    });
    ++progress.batches_done;
    progress.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (options.progress) options.progress(progress);
  }
  size_t num_modules = 0;
  for (const DecisionGroup& g : groups) num_modules += g.modules.size();
  if (num_visited != num_modules * static_cast<size_t>(progress.batches_total)) {
    throw Error(
        fmt::format("the backward pass visited {} decision modules over {} batches, "
                    "expected {} per batch (a module name the gradient model does not "
                    "know?)",
                    num_visited, progress.batches_total, num_modules));
  }
  ScoreTable scores(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    scores[g].assign(groups[g].candidates.size(), 0.0);
    for (const std::vector<double>& member : module_scores[g]) {
      for (size_t c = 0; c < member.size(); ++c) scores[g][c] += member[c];
    }
  }
  return scores;
}

}  // namespace qf
