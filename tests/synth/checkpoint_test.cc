// Synthetic checkpoints read back through the io layer: Hugging Face names, shapes and dtypes for
// Llama and Nemotron-H, config.json keys, values equal to the weight generator's, and identical
// tensor bytes for any thread count and shard size.
#include "quantforge/checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "quantforge/error.h"
#include "quantforge/synth.h"

namespace qf {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("qf_synth_test_" + std::to_string(getpid()) + "_" + std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

nlohmann::json ReadJson(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

std::vector<std::byte> Bytes(const Checkpoint& ckpt, const std::string& name) {
  const TensorInfo* info = ckpt.Find(name);
  if (info == nullptr) {
    ADD_FAILURE() << "missing " << name;
    return {};
  }
  const TensorView view = ckpt.View(*info);
  return {view.data.begin(), view.data.end()};
}

TEST(SynthCheckpoint, LlamaTinyHasHuggingFaceLayout) {
  TempDir dir;
  const LlamaShape shape = *LlamaPreset("tiny");
  SynthCheckpointOptions options;
  options.seed = 11;
  const SynthCheckpointSummary summary = GenerateLlamaCheckpoint(dir.path(), shape, options);
  const Checkpoint ckpt = Checkpoint::Open(dir.path());
  // embed + lm_head + norm + 9 per layer
  EXPECT_EQ(static_cast<int64_t>(ckpt.Tensors().size()), 3 + 9 * shape.layers);
  EXPECT_EQ(summary.num_tensors, static_cast<int64_t>(ckpt.Tensors().size()));
  EXPECT_EQ(summary.num_bytes, ckpt.TotalBytes());

  const int64_t kv_dim = shape.kv_heads * (shape.hidden / shape.heads);
  const std::vector<std::pair<std::string, Shape>> expected = {
      {"model.embed_tokens.weight", {shape.vocab, shape.hidden}},
      {"model.layers.1.self_attn.q_proj.weight", {shape.hidden, shape.hidden}},
      {"model.layers.1.self_attn.k_proj.weight", {kv_dim, shape.hidden}},
      {"model.layers.1.self_attn.v_proj.weight", {kv_dim, shape.hidden}},
      {"model.layers.1.self_attn.o_proj.weight", {shape.hidden, shape.hidden}},
      {"model.layers.0.mlp.gate_proj.weight", {shape.intermediate, shape.hidden}},
      {"model.layers.0.mlp.up_proj.weight", {shape.intermediate, shape.hidden}},
      {"model.layers.0.mlp.down_proj.weight", {shape.hidden, shape.intermediate}},
      {"model.layers.0.input_layernorm.weight", {shape.hidden}},
      {"model.layers.0.post_attention_layernorm.weight", {shape.hidden}},
      {"model.norm.weight", {shape.hidden}},
      {"lm_head.weight", {shape.vocab, shape.hidden}},
  };
  for (const auto& [name, dims] : expected) {
    const TensorInfo* info = ckpt.Find(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_EQ(info->shape, dims) << name;
    EXPECT_EQ(info->dtype, DType::kBF16) << name;
  }

  // The values are the generator's for (seed, name).
  const std::string name = "model.layers.0.mlp.down_proj.weight";
  std::vector<uint16_t> want(static_cast<size_t>(shape.hidden * shape.intermediate));
  GenerateWeightsBF16(LinearWeightStats(shape.intermediate), SynthTensorKey(11, name), shape.hidden,
                      shape.intermediate, want);
  const std::vector<std::byte> got = Bytes(ckpt, name);
  ASSERT_EQ(got.size(), want.size() * 2);
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size()), 0);

  const nlohmann::json config = ReadJson(dir.path() / "config.json");
  EXPECT_EQ(config["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(config["model_type"], "llama");
  EXPECT_EQ(config["hidden_size"], shape.hidden);
  EXPECT_EQ(config["intermediate_size"], shape.intermediate);
  EXPECT_EQ(config["num_hidden_layers"], shape.layers);
  EXPECT_EQ(config["num_attention_heads"], shape.heads);
  EXPECT_EQ(config["num_key_value_heads"], shape.kv_heads);
  EXPECT_EQ(config["vocab_size"], shape.vocab);
  EXPECT_EQ(config["tie_word_embeddings"], false);
  EXPECT_EQ(config["torch_dtype"], "bfloat16");
  EXPECT_TRUE(fs::exists(dir.path() / "generation_config.json"));
}

TEST(SynthCheckpoint, TiedEmbeddingsHaveNoLmHeadAndF32Works) {
  TempDir dir;
  LlamaShape shape = *LlamaPreset("tiny");
  shape.tie_embeddings = true;
  SynthCheckpointOptions options;
  options.dtype = DType::kF32;
  GenerateLlamaCheckpoint(dir.path(), shape, options);
  const Checkpoint ckpt = Checkpoint::Open(dir.path());
  EXPECT_EQ(ckpt.Find("lm_head.weight"), nullptr);
  EXPECT_EQ(ckpt.Find("model.norm.weight")->dtype, DType::kF32);
  EXPECT_EQ(ReadJson(dir.path() / "config.json")["tie_word_embeddings"], true);
}

// Same tensor bytes for 1 and 3 threads, one shard or many.
TEST(SynthCheckpoint, BytesIndependentOfThreadsAndShards) {
  TempDir a, b;
  const LlamaShape shape = *LlamaPreset("tiny");
  SynthCheckpointOptions options;
  options.seed = 5;
  GenerateLlamaCheckpoint(a.path(), shape, options, nullptr);
  options.max_shard_bytes = 64 * 1024;
  ThreadPool pool(3);
  const SynthCheckpointSummary sharded = GenerateLlamaCheckpoint(b.path(), shape, options, &pool);
  EXPECT_GT(sharded.shard_files.size(), 2u);
  EXPECT_TRUE(fs::exists(b.path() / "model.safetensors.index.json"));
  const Checkpoint ca = Checkpoint::Open(a.path());
  const Checkpoint cb = Checkpoint::Open(b.path());
  ASSERT_EQ(ca.Tensors().size(), cb.Tensors().size());
  for (const TensorInfo& info : ca.Tensors()) {
    EXPECT_EQ(Bytes(ca, info.name), Bytes(cb, info.name)) << info.name;
  }
}

TEST(SynthCheckpoint, NemotronHTinyHasMixerNames) {
  TempDir dir;
  const NemotronHShape s = *NemotronHPreset("tiny");
  ASSERT_EQ(s.pattern, "ME*-ME");
  GenerateNemotronHCheckpoint(dir.path(), s, SynthCheckpointOptions{});
  const Checkpoint ckpt = Checkpoint::Open(dir.path());
  const int64_t d_inner = s.mamba_heads * s.mamba_head_dim;
  const int64_t conv_dim = d_inner + 2 * s.n_groups * s.ssm_state;
  const std::vector<std::pair<std::string, Shape>> expected = {
      {"backbone.embeddings.weight", {s.vocab, s.hidden}},
      {"backbone.layers.0.norm.weight", {s.hidden}},
      {"backbone.layers.0.mixer.in_proj.weight",
       {2 * d_inner + 2 * s.n_groups * s.ssm_state + s.mamba_heads, s.hidden}},
      {"backbone.layers.0.mixer.conv1d.weight", {conv_dim, 1, s.conv_kernel}},
      {"backbone.layers.0.mixer.conv1d.bias", {conv_dim}},
      {"backbone.layers.0.mixer.A_log", {s.mamba_heads}},
      {"backbone.layers.0.mixer.D", {s.mamba_heads}},
      {"backbone.layers.0.mixer.dt_bias", {s.mamba_heads}},
      {"backbone.layers.0.mixer.norm.weight", {d_inner}},
      {"backbone.layers.0.mixer.out_proj.weight", {s.hidden, d_inner}},
      {"backbone.layers.1.mixer.gate.weight", {s.num_experts, s.hidden}},
      {"backbone.layers.1.mixer.gate.e_score_correction_bias", {s.num_experts}},
      {"backbone.layers.1.mixer.experts.0.up_proj.weight", {s.moe_intermediate, s.hidden}},
      {"backbone.layers.1.mixer.experts.3.down_proj.weight", {s.hidden, s.moe_intermediate}},
      {"backbone.layers.1.mixer.shared_experts.up_proj.weight", {s.shared_intermediate, s.hidden}},
      {"backbone.layers.1.mixer.shared_experts.down_proj.weight",
       {s.hidden, s.shared_intermediate}},
      {"backbone.layers.2.mixer.q_proj.weight", {s.heads * s.head_dim, s.hidden}},
      {"backbone.layers.2.mixer.k_proj.weight", {s.kv_heads * s.head_dim, s.hidden}},
      {"backbone.layers.2.mixer.v_proj.weight", {s.kv_heads * s.head_dim, s.hidden}},
      {"backbone.layers.2.mixer.o_proj.weight", {s.hidden, s.heads * s.head_dim}},
      {"backbone.layers.3.mixer.up_proj.weight", {s.intermediate, s.hidden}},
      {"backbone.layers.3.mixer.down_proj.weight", {s.hidden, s.intermediate}},
      {"backbone.layers.5.mixer.experts.1.up_proj.weight", {s.moe_intermediate, s.hidden}},
      {"backbone.norm_f.weight", {s.hidden}},
      {"lm_head.weight", {s.vocab, s.hidden}},
  };
  for (const auto& [name, dims] : expected) {
    const TensorInfo* info = ckpt.Find(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_EQ(info->shape, dims) << name;
  }
  EXPECT_EQ(ckpt.Find("backbone.layers.1.mixer.gate.e_score_correction_bias")->dtype, DType::kF32);
  // 1 + per layer: M 9, E 1 + 2 + 2*4 + 2, * 5, - 3; + norm_f + lm_head
  EXPECT_EQ(ckpt.Tensors().size(), 1u + 9 + 13 + 5 + 3 + 9 + 13 + 2);
  const nlohmann::json config = ReadJson(dir.path() / "config.json");
  EXPECT_EQ(config["architectures"][0], "NemotronHForCausalLM");
  EXPECT_EQ(config["hybrid_override_pattern"], "ME*-ME");
  EXPECT_EQ(config["n_routed_experts"], s.num_experts);
}

TEST(SynthCheckpoint, BadShapesAreErrors) {
  TempDir dir;
  LlamaShape shape = *LlamaPreset("tiny");
  shape.heads = 5;  // 64 % 5 != 0
  EXPECT_THROW(GenerateLlamaCheckpoint(dir.path(), shape, {}), Error);
  NemotronHShape nh = *NemotronHPreset("tiny");
  nh.pattern = "MX";
  try {
    GenerateNemotronHCheckpoint(dir.path(), nh, {});
    FAIL() << "no error for pattern MX";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'X' at layer 1"), std::string::npos) << e.what();
  }
  SynthCheckpointOptions f16;
  f16.dtype = DType::kF16;
  EXPECT_THROW(GenerateLlamaCheckpoint(dir.path(), *LlamaPreset("tiny"), f16), Error);
  EXPECT_FALSE(LlamaPreset("nope").has_value());
  EXPECT_FALSE(NemotronHPreset("nope").has_value());
}

}  // namespace
}  // namespace qf
