// Synthetic Llama checkpoints (LlamaForCausalLM): Hugging Face tensor names and config.json keys,
// with presets from a few-MB toy to the Llama-3 8B shape. The values are the weight generator's
// (see quantforge/synth.h); the layout is what transformers' LlamaForCausalLM saves.
#include <string>
#include <vector>

#include "quantforge/error.h"
#include "quantforge/synth.h"
#include "src/synth/synth_internal.h"

namespace qf {

using synth_internal::Matrix;
using synth_internal::PlannedTensor;
using synth_internal::Small;
using synth_internal::TensorKind;

std::optional<LlamaShape> LlamaPreset(std::string_view name) {
  // {hidden, intermediate, layers, heads, kv_heads, vocab, tie_embeddings}
  if (name == "tiny") return LlamaShape{64, 192, 2, 4, 2, 256, false};       // ~0.5 MB BF16
  if (name == "small") return LlamaShape{512, 1536, 8, 8, 4, 8192, false};   // ~68 MB
  if (name == "1b") return LlamaShape{2048, 8192, 16, 32, 8, 128256, true};  // Llama-3.2-1B, 2.5 GB
  if (name == "8b") return LlamaShape{4096, 14336, 32, 32, 8, 128256, false};  // Llama-3-8B, 16 GB
  return std::nullopt;
}

std::vector<std::string> SynthPresetNames() { return {"tiny", "small", "1b", "8b"}; }

SynthCheckpointSummary GenerateLlamaCheckpoint(const std::filesystem::path& dir,
                                               const LlamaShape& s,
                                               const SynthCheckpointOptions& options,
                                               ThreadPool* pool) {
  synth_internal::CheckPositive("llama", {{"hidden", s.hidden},
                                          {"intermediate", s.intermediate},
                                          {"layers", s.layers},
                                          {"heads", s.heads},
                                          {"kv_heads", s.kv_heads},
                                          {"vocab", s.vocab}});
  if (s.hidden % s.heads != 0 || s.heads % s.kv_heads != 0) {
    throw Error("llama shape: hidden (" + std::to_string(s.hidden) +
                ") must be a multiple of heads (" + std::to_string(s.heads) +
                ") and heads of kv_heads (" + std::to_string(s.kv_heads) + ")");
  }
  const int64_t head_dim = s.hidden / s.heads;
  const int64_t kv_dim = s.kv_heads * head_dim;
  const DType dt = options.dtype;

  std::vector<PlannedTensor> plan;
  plan.push_back(Matrix("model.embed_tokens.weight", dt, s.vocab, s.hidden));
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    plan.push_back(Matrix(p + "self_attn.q_proj.weight", dt, s.hidden, s.hidden));
    plan.push_back(Matrix(p + "self_attn.k_proj.weight", dt, kv_dim, s.hidden));
    plan.push_back(Matrix(p + "self_attn.v_proj.weight", dt, kv_dim, s.hidden));
    plan.push_back(Matrix(p + "self_attn.o_proj.weight", dt, s.hidden, s.hidden));
    plan.push_back(Matrix(p + "mlp.gate_proj.weight", dt, s.intermediate, s.hidden));
    plan.push_back(Matrix(p + "mlp.up_proj.weight", dt, s.intermediate, s.hidden));
    plan.push_back(Matrix(p + "mlp.down_proj.weight", dt, s.hidden, s.intermediate));
    plan.push_back(Small(p + "input_layernorm.weight", dt, {s.hidden}, TensorKind::kNorm));
    plan.push_back(Small(p + "post_attention_layernorm.weight", dt, {s.hidden}, TensorKind::kNorm));
  }
  plan.push_back(Small("model.norm.weight", dt, {s.hidden}, TensorKind::kNorm));
  if (!s.tie_embeddings) plan.push_back(Matrix("lm_head.weight", dt, s.vocab, s.hidden));

  SynthCheckpointSummary summary;
  synth_internal::WriteCheckpoint(dir, plan, options, pool, &summary);

  nlohmann::ordered_json config = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_size", s.hidden},
      {"intermediate_size", s.intermediate},
      {"num_hidden_layers", s.layers},
      {"num_attention_heads", s.heads},
      {"num_key_value_heads", s.kv_heads},
      {"head_dim", head_dim},
      {"vocab_size", s.vocab},
      {"max_position_embeddings", 2048},
      {"rms_norm_eps", 1e-5},
      {"rope_theta", 500000.0},
      {"rope_scaling", nullptr},
      {"hidden_act", "silu"},
      {"attention_bias", false},
      {"mlp_bias", false},
      {"initializer_range", 0.02},
      {"tie_word_embeddings", s.tie_embeddings},
      {"bos_token_id", 1},
      {"eos_token_id", 2},
      {"torch_dtype", dt == DType::kBF16 ? "bfloat16" : "float32"},
      {"use_cache", true},
      {"transformers_version", "4.46.0"},
      {"_quantforge_synthetic", {{"seed", options.seed}, {"generator", "qf::WeightGenerator"}}},
  };
  synth_internal::WriteConfigs(dir, config);
  return summary;
}

}  // namespace qf
