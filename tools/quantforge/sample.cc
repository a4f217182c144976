// `quantforge sample`: ancestral sampling from a model into JSONL ({"input_ids": [...]} per line,
// the format eval and calibration read), the in-domain evaluation set of a model without its own
// data (docs/EVAL.md, "Model-sampled evaluation data"). Each sequence starts from BOS; the line
// holds the drawn tokens without that BOS, so `quantforge eval --seq-len L` (which prepends BOS)
// scores exactly the sampled sequences. Deterministic for a seed, whatever --threads says.
#include <fmt/core.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <system_error>

#include "quantforge/error.h"
#include "quantforge/eval.h"
#include "quantforge/model.h"
#include "quantforge/sampling.h"
#include "quantforge/tokenizer.h"
#include "tools/quantforge/commands.h"

namespace qf::cli {
namespace {

struct SampleFlags {
  std::string model_dir;
  std::string out;
  std::string tokenizer_path;
  int64_t num_sequences = 64;
  int64_t seq_len = 256;
  uint64_t seed = 0;
  double temperature = 1.0;
  int64_t top_k = 0;
  int64_t bos = -1;
  int64_t batch_tokens = 4096;
};

int RunSample(const SampleFlags& flags, Context& context) {
  // Only unquantized checkpoints: sampling through a quantized one's simulation is not built.
  const ModelConfig config = LoadModelConfig(flags.model_dir);
  QuantizedCheckpoint checkpoint = OpenQuantizedCheckpoint(flags.model_dir, context.pool.get());
  if (checkpoint.scheme.IsQuantized()) {
    throw Error("sample: " + flags.model_dir + " is quantized (" + checkpoint.scheme.Summary() +
                "); sample from the unquantized original");
  }
  // None: the start token comes from config.json's bos_token_id or --bos.
  const std::unique_ptr<Tokenizer> tokenizer =
      OpenModelTokenizer(flags.model_dir, flags.tokenizer_path, config.vocab_size);
  std::optional<int32_t> bos;
  if (flags.bos >= 0) {
    bos = static_cast<int32_t>(flags.bos);
  } else if (tokenizer && tokenizer->BosId()) {
    bos = tokenizer->BosId();
  } else if (config.bos_token_id) {
    bos = static_cast<int32_t>(*config.bos_token_id);
  }
  if (!bos) {
    throw Error("sample: " + flags.model_dir +
                " names no BOS (neither its tokenizer nor config.json's bos_token_id); pass "
                "--bos ID as the start token");
  }

  SampleOptions options;
  options.num_sequences = flags.num_sequences;
  options.seq_len = flags.seq_len;
  options.seed = flags.seed;
  options.temperature = flags.temperature;
  options.top_k = flags.top_k;
  options.start_id = *bos;
  options.batch_tokens = flags.batch_tokens;
  if (options.seq_len > config.max_position_embeddings) {
    throw Error("sample: --seq-len " + std::to_string(options.seq_len) +
                " exceeds the context of " + flags.model_dir + " (max_position_embeddings " +
                std::to_string(config.max_position_embeddings) + ")");
  }
  if (context.is_terminal) {
    options.progress = [&](int64_t done, int64_t step, int64_t num_steps) {
      std::fprintf(stderr, "\rsample: %lld/%lld sequences done, step %lld/%lld   ",
                   static_cast<long long>(done), static_cast<long long>(flags.num_sequences),
                   static_cast<long long>(step), static_cast<long long>(num_steps));
      std::fflush(stderr);
    };
  }
  const std::unique_ptr<Model> model = Model::Load(config, *checkpoint.weights, context.pool.get());
  const auto start = std::chrono::steady_clock::now();
  const std::vector<std::vector<int32_t>> sequences = SampleSequences(*model, options);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (context.is_terminal) std::fprintf(stderr, "\n");

  // Written next to the target and renamed at the end: an error leaves no partial file.
  const std::filesystem::path out = flags.out;
  const std::filesystem::path tmp = out.string() + ".tmp";
  {
    std::ofstream file(tmp, std::ios::binary | std::ios::trunc);
    if (!file) throw Error("sample: cannot open for writing", {.path = tmp.string()});
    for (const std::vector<int32_t>& sequence : sequences) {
      // The start token is left out: eval and calibration prepend BOS themselves.
      nlohmann::json line = {
          {"input_ids", std::vector<int32_t>(sequence.begin() + 1, sequence.end())}};
      file << line.dump() << '\n';
    }
    file.flush();
    if (!file) {
      file.close();
      std::error_code ignored;
      std::filesystem::remove(tmp, ignored);  // no partial file left behind (disk full)
      throw Error("sample: writing failed (disk full?)", {.path = tmp.string()});
    }
  }
  std::error_code error;
  std::filesystem::rename(tmp, out, error);
  if (error) {
    std::filesystem::remove(tmp, error);
    throw Error("sample: cannot rename " + tmp.string() + " to " + out.string());
  }
  // The tokenizer API has no decode, so no "text" field is written.
  fmt::print(
      "sampled {} sequences x {} tokens (BOS {} + {} drawn) from {}: seed {}, temperature {}, "
      "top-k {}; {:.2f} s; wrote {} (input_ids without the BOS: eval with --seq-len {})\n",
      flags.num_sequences, flags.seq_len, *bos, flags.seq_len - 1, flags.model_dir, flags.seed,
      flags.temperature, flags.top_k, seconds, flags.out, flags.seq_len);
  return 0;
}

}  // namespace

Action RegisterSample(CLI::App& app) {
  auto flags = std::make_shared<SampleFlags>();
  CLI::App* sub = app.add_subcommand(
      "sample",
      "Draw sequences from a model (ancestral sampling from BOS) into JSONL input_ids: the "
      "in-domain evaluation set of a model without its data. No KV cache: every step reruns the "
      "forward over the whole prefix (O(seq-len^2) per sequence), fine for small models only");
  sub->add_option("--model", flags->model_dir, "Hugging Face model directory (unquantized)")
      ->required();
  sub->add_option("--out", flags->out, "Output JSONL, one {\"input_ids\": [...]} per sequence")
      ->required();
  sub->add_option("--sequences", flags->num_sequences, "Number of sequences")
      ->default_val(flags->num_sequences);
  sub->add_option("--seq-len", flags->seq_len,
                  "Tokens per sequence, BOS included (eval's --seq-len); at most the context")
      ->default_val(flags->seq_len);
  sub->add_option("--seed", flags->seed,
                  "Seed: token t of sequence s uses Philox(seed, s, t); same seed, same tokens "
                  "for any thread count")
      ->default_val(flags->seed);
  sub->add_option("--temperature", flags->temperature, "Logits are divided by it; 0: greedy")
      ->default_val(flags->temperature);
  sub->add_option("--top-k", flags->top_k, "Sample among the k largest logits (0: all)")
      ->default_val(flags->top_k);
  sub->add_option("--tokenizer", flags->tokenizer_path,
                  "Tokenizer file naming BOS (default: found in --model, else config.json)");
  sub->add_option("--bos", flags->bos, "Start token id (default: the tokenizer's or config's BOS)");
  sub->add_option("--batch-tokens", flags->batch_tokens,
                  "Sequences decoded together: max(1, this / seq-len)")
      ->default_val(flags->batch_tokens);
  return [flags](Context& context) { return RunSample(*flags, context); };
}

}  // namespace qf::cli
