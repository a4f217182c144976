// `quantforge eval`: perplexity and mean NLL (natural log) of a checkpoint on a text or token
// file, over non-overlapping sequences of --seq-len tokens (convention in quantforge/eval.h).
// A quantized checkpoint (Model Optimizer or compressed-tensors) is simulated: weights
// dequantized from what it stores, inputs / K / V fake-quantized as the serving kernels do
// (docs/EVAL.md). With --reference DIR the same sequences also run through the reference and
// the KL divergence KL(P_ref || P_model) and top-1 agreement are reported.
// With --json the last line of stdout is one JSON object: nll, perplexity, tokens, sequences,
// seq_len, bos, seconds, tokens_per_second, model, data, tokenizer, quantization; with
// --reference also kl, top1, reference_nll, reference_perplexity, reference.
#include "quantforge/eval.h"

#include <fmt/core.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include "quantforge/error.h"
#include "quantforge/model.h"
#include "quantforge/tokenizer.h"
#include "tools/quantforge/commands.h"

namespace qf::cli {
namespace {

struct EvalFlags {
  std::string model_dir;
  std::string data_path;
  std::string tokenizer_path;
  int64_t seq_len = 0;
  int64_t max_tokens = 0;
  int64_t batch_tokens = 4096;
  std::string fake_quant_weights = "none";
  std::string reference_dir;
  bool no_bos = false;
  bool json = false;
};

int RunEval(const EvalFlags& flags, Context& context) {
  const std::optional<WeightFakeQuant> fake_quant = ParseWeightFakeQuant(flags.fake_quant_weights);
  if (!fake_quant) {
    throw Error("--fake-quant-weights '" + flags.fake_quant_weights +
                "' unknown (none, bf16, fp8, fp8-channel, nvfp4, mxfp4)");
  }
  // The model: a quantized checkpoint's weights come dequantized, its run-time quantization
  // becomes hooks. The dequantized copies are dropped once the model holds its F32 weights.
  const ModelConfig model_config = LoadModelConfig(flags.model_dir);
  QuantizationScheme scheme;
  std::unique_ptr<Model> model;
  {
    QuantizedCheckpoint checkpoint = OpenQuantizedCheckpoint(flags.model_dir, context.pool.get());
    if (checkpoint.scheme.IsQuantized() && *fake_quant != WeightFakeQuant::kNone) {
      throw Error("--fake-quant-weights simulates an unquantized checkpoint; " + flags.model_dir +
                  " is already quantized (" + checkpoint.scheme.Summary() + ")");
    }
    LoadOptions load;
    load.weight_transform = MakeWeightFakeQuant(*fake_quant, context.pool.get());
    model = Model::Load(model_config, *checkpoint.weights, context.pool.get(), load);
    scheme = std::move(checkpoint.scheme);
  }
  const ModelConfig& config = model->config();
  std::optional<SimulationHooks> hooks;
  if (scheme.IsQuantized()) hooks.emplace(scheme);

  QuantizationScheme reference_scheme;
  std::unique_ptr<Model> reference;
  std::optional<SimulationHooks> reference_hooks;
  if (!flags.reference_dir.empty()) {
    const ModelConfig reference_config = LoadModelConfig(flags.reference_dir);
    if (reference_config.vocab_size != config.vocab_size) {
      throw Error("--reference " + flags.reference_dir + " has vocab_size " +
                  std::to_string(reference_config.vocab_size) + ", the model " +
                  std::to_string(config.vocab_size) + " (KL needs one vocabulary)");
    }
    QuantizedCheckpoint checkpoint =
        OpenQuantizedCheckpoint(flags.reference_dir, context.pool.get());
    reference = Model::Load(reference_config, *checkpoint.weights, context.pool.get());
    reference_scheme = std::move(checkpoint.scheme);
    if (reference_scheme.IsQuantized()) reference_hooks.emplace(reference_scheme);
  }

  // None is fine for input_ids data; LoadEvalData says so for text.
  const std::unique_ptr<Tokenizer> tokenizer =
      OpenModelTokenizer(flags.model_dir, flags.tokenizer_path, config.vocab_size);
  const EvalData data = LoadEvalData(flags.data_path, tokenizer.get());

  EvalOptions options;
  // Default: 512, or the shorter context of the model and the reference.
  int64_t context_len = config.max_position_embeddings;
  if (reference) context_len = std::min(context_len, reference->config().max_position_embeddings);
  options.seq_len = flags.seq_len > 0 ? flags.seq_len : std::min<int64_t>(512, context_len);
  options.max_tokens = flags.max_tokens;
  options.batch_tokens = flags.batch_tokens;
  options.hooks = hooks ? &*hooks : nullptr;
  options.reference = reference.get();
  options.reference_hooks = reference_hooks ? &*reference_hooks : nullptr;
  if (!flags.no_bos) {
    if (tokenizer) {
      options.bos_id = tokenizer->BosId();
    } else if (config.bos_token_id) {
      options.bos_id = static_cast<int32_t>(*config.bos_token_id);
    }
  }
  if (context.is_terminal) {
    options.progress = [](const EvalProgress& p) {
      std::fprintf(stderr, "\reval: %lld/%lld sequences, %lld tokens, %.0f tokens/s   ",
                   static_cast<long long>(p.sequences_done),
                   static_cast<long long>(p.sequences_total), static_cast<long long>(p.tokens_done),
                   p.seconds > 0 ? static_cast<double>(p.tokens_done) / p.seconds : 0.0);
      std::fflush(stderr);
    };
  }
  const EvalResult result = EvaluatePerplexity(*model, data.tokens, options);
  if (context.is_terminal) std::fprintf(stderr, "\n");

  const double tokens_per_second =
      result.seconds > 0 ? static_cast<double>(result.tokens) / result.seconds : 0.0;
  fmt::print("model      {}\ndata       {} ({} data tokens, {} documents)\n", flags.model_dir,
             flags.data_path, data.tokens.size(), data.num_documents);
  const std::string simulated = scheme.IsQuantized() ? fmt::format("{} ({} layout), simulated",
                                                                   scheme.Summary(), scheme.layout)
                                                     : "none";
  fmt::print("quantized  {}\n", simulated);
  fmt::print("weights    {}\n", flags.fake_quant_weights == "none"
                                    ? "as stored"
                                    : "fake-quantized " + flags.fake_quant_weights);
  fmt::print("tokenizer  {}\n", tokenizer ? tokenizer->Describe() : "none (input_ids)");
  fmt::print("sequences  {} x {} tokens{}\n", result.sequences, options.seq_len,
             options.bos_id
                 ? fmt::format(" (BOS {} + {} data tokens)", *options.bos_id, options.seq_len - 1)
                 : "");
  fmt::print("tokens     {} predicted\nnll        {:.6f}\nperplexity {:.4f}\n", result.tokens,
             result.nll, result.perplexity);
  if (reference) {
    fmt::print("reference  {}{}\n", flags.reference_dir,
               reference_scheme.IsQuantized()
                   ? fmt::format(" ({}, simulated)", reference_scheme.Summary())
                   : "");
    fmt::print("ref nll    {:.6f} (perplexity {:.4f})\n", *result.reference_nll,
               std::exp(*result.reference_nll));
    fmt::print("kl         {:.6g} nats per predicted token, KL(P_ref || P_model)\n", *result.kl);
    fmt::print("top1       {:.6f} (argmax agreement)\n", *result.top1);
  }
  fmt::print("time       {:.2f} s ({:.0f} tokens/s)\n", result.seconds, tokens_per_second);
  if (flags.json) {
    nlohmann::json json = {{"nll", result.nll},
                           {"perplexity", result.perplexity},
                           {"tokens", result.tokens},
                           {"sequences", result.sequences},
                           {"seq_len", options.seq_len},
                           {"bos", options.bos_id ? nlohmann::json(*options.bos_id) : nullptr},
                           {"seconds", result.seconds},
                           {"fake_quant_weights", flags.fake_quant_weights},
                           {"tokens_per_second", tokens_per_second},
                           {"model", flags.model_dir},
                           {"data", flags.data_path},
                           {"tokenizer", tokenizer ? tokenizer->Describe() : ""},
                           {"quantization", scheme.IsQuantized() ? scheme.Summary() : "none"},
                           {"layout", scheme.layout}};
    if (reference) {
      json["kl"] = *result.kl;
      json["top1"] = *result.top1;
      json["reference_nll"] = *result.reference_nll;
      json["reference_perplexity"] = std::exp(*result.reference_nll);
      json["reference"] = flags.reference_dir;
    }
    fmt::print("{}\n", json.dump());
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace

Action RegisterEval(CLI::App& app) {
  auto flags = std::make_shared<EvalFlags>();
  CLI::App* sub = app.add_subcommand(
      "eval", "Perplexity and mean NLL of a checkpoint on text, JSONL text or JSONL input_ids");
  sub->add_option("--model", flags->model_dir, "Hugging Face model directory")->required();
  sub->add_option("--data", flags->data_path,
                  "Plain text, JSONL with \"text\", or JSONL with \"input_ids\"")
      ->required();
  AddTokenizerOption(sub, &flags->tokenizer_path);
  sub->add_option("--seq-len", flags->seq_len,
                  "Tokens per sequence, BOS included (default: min(512, the model's and the "
                  "reference's context))");
  sub->add_option("--max-tokens", flags->max_tokens,
                  "Use at most this many data tokens, whole sequences only (0: all)");
  sub->add_option("--batch-tokens", flags->batch_tokens,
                  "Tokens per forward pass (sequences per batch = this / seq-len, at least 1)")
      ->default_val(4096);
  sub->add_option("--fake-quant-weights", flags->fake_quant_weights,
                  "Simulate quantized decoder weights (W-only, activations F32): none, bf16, "
                  "fp8, fp8-channel, nvfp4, mxfp4")
      ->default_val("none");
  sub->add_option("--reference", flags->reference_dir,
                  "Reference model directory (e.g. the original): adds the mean KL divergence "
                  "KL(P_ref || P_model) per predicted token and the top-1 agreement");
  sub->add_flag("--no-bos", flags->no_bos, "Do not prepend BOS to each sequence");
  sub->add_flag("--json", flags->json, "Print one JSON object as the last line of stdout");
  return [flags](Context& context) { return RunEval(*flags, context); };
}

}  // namespace qf::cli
