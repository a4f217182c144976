// Prefill throughput of the FP32 forward pass (embedding, every decoder layer, final norm and
// the logits of every token, as `quantforge eval` runs it), with the GEMM share of the time and
// the achieved GFLOP/s next to cblas_sgemm's own GFLOP/s on the model's largest GEMM shape,
// measured in the same run (the baseline: the forward pass cannot beat the BLAS it calls).
//
//   forward_bench [--model DIR]... [--synthetic-1b] [--tokens N] [--seq-len L] [--reps R]
//
// Default: the shared stories260K model, then a generated model of Llama 3.2 1B's shape (hidden
// 2048, intermediate 8192, 16 layers, 32 heads / 8 KV heads, vocab 128256, tied embeddings) whose
// weights are synthesized tensor by tensor while loading, so only the F32 model (5 GB) is resident.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "quantforge/model.h"
#include "src/model/linear.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Random N(0, 1/sqrt(fan_in)) weights generated on demand. A view is valid until the next Find
// (enough for Model::Load, which widens each tensor before asking for the next).
class SyntheticWeights final : public qf::WeightSource {
 public:
  explicit SyntheticWeights(const qf::ModelConfig& c) : config_(c) {}
  std::optional<qf::TensorView> Find(std::string_view name) const override {
    const int64_t h = config_.hidden_size, i = config_.intermediate_size;
    const int64_t q = config_.num_attention_heads * config_.head_dim;
    const int64_t kv = config_.num_key_value_heads * config_.head_dim;
    qf::Shape shape;
    const auto ends = [&](std::string_view s) { return name.ends_with(s); };
    if (name == "lm_head.weight") return std::nullopt;  // tied
    if (name == "model.embed_tokens.weight")
      shape = {config_.vocab_size, h};
    else if (ends("norm.weight") || ends("layernorm.weight"))
      shape = {h};
    else if (ends("q_proj.weight"))
      shape = {q, h};
    else if (ends("k_proj.weight") || ends("v_proj.weight"))
      shape = {kv, h};
    else if (ends("o_proj.weight"))
      shape = {h, q};
    else if (ends("gate_proj.weight") || ends("up_proj.weight"))
      shape = {i, h};
    else if (ends("down_proj.weight"))
      shape = {h, i};
    else
      return std::nullopt;
    const int64_t n = qf::NumElements(shape);
    buffer_.resize(static_cast<size_t>(n));
    if (shape.size() == 1) {
      std::fill(buffer_.begin(), buffer_.end(), 1.0f);
    } else {
      // A cheap LCG: weight statistics do not change the speed of an F32 GEMM.
      uint32_t state = static_cast<uint32_t>(std::hash<std::string_view>{}(name));
      const float scale = 1.0f / std::sqrt(static_cast<float>(shape[1])) * 1.7f / 2147483648.0f;
      for (float& w : buffer_) {
        state = state * 1664525u + 1013904223u;
        w = static_cast<float>(static_cast<int32_t>(state)) * scale;
      }
    }
    return qf::MakeView(std::span<const float>(buffer_), shape, name);
  }
  std::string Describe() const override { return "synthetic"; }

 private:
  qf::ModelConfig config_;
  mutable std::vector<float> buffer_;
};

// cblas_sgemm alone on one shape, run the way the forward pass runs it: single-threaded
// OpenBLAS calls on fixed tiles spread over the same ThreadPool (ParallelGemmNT).
double SgemmGflops(qf::ThreadPool* pool, int64_t m, int64_t n, int64_t k, int reps) {
  std::vector<float> a(static_cast<size_t>(m * k), 0.5f), b(static_cast<size_t>(n * k), 0.25f),
      c(static_cast<size_t>(m * n));
  qf::model::ParallelGemmNT(pool, m, n, k, a.data(), k, b.data(), k, c.data(), n);  // warm-up
  const auto start = Clock::now();
  for (int r = 0; r < reps; ++r) {
    qf::model::ParallelGemmNT(pool, m, n, k, a.data(), k, b.data(), k, c.data(), n);
  }
  return 2.0 * m * n * k * reps / Seconds(start) * 1e-9;
}

void Bench(const std::string& label, const qf::Model& model, qf::ThreadPool* pool, int64_t tokens,
           int64_t seq_len, int reps) {
  const qf::ModelConfig& c = model.config();
  seq_len = std::min({seq_len, tokens, c.max_position_embeddings});
  const int64_t num_seqs = std::max<int64_t>(1, tokens / seq_len);
  std::mt19937 rng(1);
  std::vector<std::vector<int32_t>> seqs(static_cast<size_t>(num_seqs));
  qf::TokenBatch batch;
  for (auto& s : seqs) {
    for (int64_t t = 0; t < seq_len; ++t) s.push_back(static_cast<int32_t>(rng() % c.vocab_size));
    batch.sequences.emplace_back(s);
  }
  const int64_t n = batch.NumTokens();
  constexpr int64_t kLogitRows = 64;  // as the evaluator
  std::vector<float> hidden, logits(static_cast<size_t>(kLogitRows * c.vocab_size));
  const auto run = [&] {
    model.Forward(batch, hidden);
    for (int64_t r = 0; r < n; r += kLogitRows) {
      model.Logits(hidden.data() + r * c.hidden_size, std::min(kLogitRows, n - r), logits.data());
    }
  };
  run();  // warm-up: page in weights, size buffers
  qf::model::ResetGemmStats();
  const auto start = Clock::now();
  for (int r = 0; r < reps; ++r) run();
  const double seconds = Seconds(start);
  const qf::model::GemmStats gemm = qf::model::ReadGemmStats();
  // Baseline: the MLP's fused gate|up GEMM shape, tokens x 2*intermediate x hidden.
  const double blas = SgemmGflops(pool, n, 2 * c.intermediate_size, c.hidden_size, reps);
  std::printf(
      "%-14s %7lld tokens (%lld x %lld)  %10.1f tokens/s  GEMM share %5.1f%%  forward %7.1f "
      "GFLOP/s  GEMM-only %7.1f GFLOP/s  cblas_sgemm [%lld x %lld x %lld] %7.1f GFLOP/s  "
      "forward/sgemm %5.1f%%\n",
      label.c_str(), static_cast<long long>(n), static_cast<long long>(num_seqs),
      static_cast<long long>(seq_len), n * reps / seconds, 100.0 * gemm.seconds / seconds,
      gemm.flops / seconds * 1e-9, gemm.flops / gemm.seconds * 1e-9, static_cast<long long>(n),
      static_cast<long long>(2 * c.intermediate_size), static_cast<long long>(c.hidden_size), blas,
      100.0 * (gemm.flops / seconds * 1e-9) / blas);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> models;
  bool synthetic = false, explicit_choice = false;
  int64_t tokens = 0, seq_len = 512;
  int reps = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (arg == "--model") {
      models.push_back(next());
      explicit_choice = true;
    } else if (arg == "--synthetic-1b") {
      synthetic = true;
      explicit_choice = true;
    } else if (arg == "--tokens")
      tokens = std::stoll(next());
    else if (arg == "--seq-len")
      seq_len = std::stoll(next());
    else if (arg == "--reps")
      reps = std::stoi(next());
    else {
      std::fprintf(stderr, "unknown argument %s\n", arg.c_str());
      return 2;
    }
  }
  if (!explicit_choice) {
    models.push_back(std::string(QF_SHARED_DIR) + "/models/stories260K/hf");
    synthetic = true;
  }
  std::printf("OpenBLAS core: %s\n", qf::model::BlasCoreName().c_str());
  qf::ThreadPool pool(0);
  std::printf("threads: %zu\n", pool.NumWorkers());
  for (const std::string& dir : models) {
    if (!std::filesystem::exists(dir)) {
      std::printf("%s: not found, skipped\n", dir.c_str());
      continue;
    }
    const auto model = qf::Model::LoadDir(dir, &pool);
    Bench(std::filesystem::path(dir).parent_path().filename().string(), *model, &pool,
          tokens > 0 ? tokens : 4096, seq_len, reps > 0 ? reps : 5);
  }
  if (synthetic) {
    qf::ModelConfig c;
    c.architecture = "LlamaForCausalLM";
    c.hidden_size = 2048;
    c.intermediate_size = 8192;
    c.num_hidden_layers = 16;
    c.num_attention_heads = 32;
    c.num_key_value_heads = 8;
    c.head_dim = 64;
    c.vocab_size = 128256;
    c.max_position_embeddings = 131072;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 500000.0;
    c.tie_word_embeddings = true;
    const SyntheticWeights weights(c);
    const auto start = Clock::now();
    const auto model = qf::Model::Load(c, weights, &pool);
    std::printf("synthetic Llama-3.2-1B shape (1.24B parameters) generated in %.1f s\n",
                Seconds(start));
    Bench("llama-1b-synth", *model, &pool, tokens > 0 ? tokens : 512, seq_len, reps > 0 ? reps : 1);
  }
  return 0;
}
