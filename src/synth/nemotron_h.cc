// Synthetic Nemotron-H checkpoints (NemotronHForCausalLM, the hybrid Mamba-2 / attention / MoE
// stack of Nemotron-H and Nemotron 3): Hugging Face tensor names under backbone.layers.N.mixer,
// for recipe and export tests that match ModelOpt's patterns (*mixer.experts.*,
// *mixer.shared_experts*, *mixer.in_proj*, ...). The layer kinds follow the config's
// hybrid_override_pattern: 'M' Mamba-2, '*' attention, '-' MLP, 'E' mixture of experts.
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

std::optional<NemotronHShape> NemotronHPreset(std::string_view name) {
  NemotronHShape s;
  if (name == "tiny") {  // ~1 MB: every layer kind once or twice
    s = {64, "ME*-ME", 4, 2, 16, 128, 4, 2, 64, 64, 4, 16, 16, 1, 4, 256};
  } else if (name == "small") {  // ~60 MB
    s = {512, "ME*EME-E", 8, 2, 64, 1024, 8, 2, 256, 512, 16, 64, 64, 2, 4, 8192};
  } else {
    return std::nullopt;
  }
  return s;
}

SynthCheckpointSummary GenerateNemotronHCheckpoint(const std::filesystem::path& dir,
                                                   const NemotronHShape& s,
                                                   const SynthCheckpointOptions& options,
                                                   ThreadPool* pool) {
  synth_internal::CheckPositive("nemotron-h", {{"hidden", s.hidden},
                                               {"layers", static_cast<int64_t>(s.pattern.size())},
                                               {"vocab", s.vocab},
                                               {"conv_kernel", s.conv_kernel}});
  for (size_t i = 0; i < s.pattern.size(); ++i) {
    const char c = s.pattern[i];
    if (c == 'M') {
      synth_internal::CheckPositive("nemotron-h", {{"mamba_heads", s.mamba_heads},
                                                   {"mamba_head_dim", s.mamba_head_dim},
                                                   {"ssm_state", s.ssm_state},
                                                   {"n_groups", s.n_groups}});
    } else if (c == '*') {
      synth_internal::CheckPositive(
          "nemotron-h", {{"heads", s.heads}, {"kv_heads", s.kv_heads}, {"head_dim", s.head_dim}});
    } else if (c == '-') {
      synth_internal::CheckPositive("nemotron-h", {{"intermediate", s.intermediate}});
    } else if (c == 'E') {
      synth_internal::CheckPositive("nemotron-h", {{"num_experts", s.num_experts},
                                                   {"experts_per_token", s.experts_per_token},
                                                   {"moe_intermediate", s.moe_intermediate},
                                                   {"shared_intermediate", s.shared_intermediate}});
    } else {
      throw Error("nemotron-h shape: pattern '" + s.pattern + "' has '" + std::string(1, c) +
                  "' at layer " + std::to_string(i) + ", expected one of M * - E");
    }
  }
  const DType dt = options.dtype;
  const int64_t d_inner = s.mamba_heads * s.mamba_head_dim;
  const int64_t conv_dim = d_inner + 2 * s.n_groups * s.ssm_state;
  // in_proj packs [z (d_inner), x (d_inner), B, C (n_groups * state each), dt (heads)].
  const int64_t in_proj_rows = 2 * d_inner + 2 * s.n_groups * s.ssm_state + s.mamba_heads;

  std::vector<PlannedTensor> plan;
  plan.push_back(Matrix("backbone.embeddings.weight", dt, s.vocab, s.hidden));
  for (size_t l = 0; l < s.pattern.size(); ++l) {
    const std::string p = "backbone.layers." + std::to_string(l) + ".";
    const std::string m = p + "mixer.";
    plan.push_back(Small(p + "norm.weight", dt, {s.hidden}, TensorKind::kNorm));
    switch (s.pattern[l]) {
      case 'M': {
        plan.push_back(Matrix(m + "in_proj.weight", dt, in_proj_rows, s.hidden));
        PlannedTensor conv = Matrix(m + "conv1d.weight", dt, conv_dim, s.conv_kernel);
        conv.spec.shape = {conv_dim, 1, s.conv_kernel};
        conv.stats.min_outlier_columns = 0;  // 4 taps: no outlier "features"
        plan.push_back(conv);
        plan.push_back(Small(m + "conv1d.bias", dt, {conv_dim}, TensorKind::kBias));
        plan.push_back(Small(m + "A_log", dt, {s.mamba_heads}, TensorKind::kALog));
        plan.push_back(Small(m + "D", dt, {s.mamba_heads}, TensorKind::kD));
        plan.push_back(Small(m + "dt_bias", dt, {s.mamba_heads}, TensorKind::kDtBias));
        plan.push_back(Small(m + "norm.weight", dt, {d_inner}, TensorKind::kNorm));
        plan.push_back(Matrix(m + "out_proj.weight", dt, s.hidden, d_inner));
        break;
      }
      case '*':
        plan.push_back(Matrix(m + "q_proj.weight", dt, s.heads * s.head_dim, s.hidden));
        plan.push_back(Matrix(m + "k_proj.weight", dt, s.kv_heads * s.head_dim, s.hidden));
        plan.push_back(Matrix(m + "v_proj.weight", dt, s.kv_heads * s.head_dim, s.hidden));
        plan.push_back(Matrix(m + "o_proj.weight", dt, s.hidden, s.heads * s.head_dim));
        break;
      case '-':
        plan.push_back(Matrix(m + "up_proj.weight", dt, s.intermediate, s.hidden));
        plan.push_back(Matrix(m + "down_proj.weight", dt, s.hidden, s.intermediate));
        break;
      case 'E':
        plan.push_back(Matrix(m + "gate.weight", dt, s.num_experts, s.hidden));
        // The router's score-correction bias is F32 in the released checkpoints.
        plan.push_back(Small(m + "gate.e_score_correction_bias", DType::kF32, {s.num_experts},
                             TensorKind::kBias));
        for (int64_t e = 0; e < s.num_experts; ++e) {
          const std::string x = m + "experts." + std::to_string(e) + ".";
          plan.push_back(Matrix(x + "up_proj.weight", dt, s.moe_intermediate, s.hidden));
          plan.push_back(Matrix(x + "down_proj.weight", dt, s.hidden, s.moe_intermediate));
        }
        plan.push_back(
            Matrix(m + "shared_experts.up_proj.weight", dt, s.shared_intermediate, s.hidden));
        plan.push_back(
            Matrix(m + "shared_experts.down_proj.weight", dt, s.hidden, s.shared_intermediate));
        break;
    }
  }
  plan.push_back(Small("backbone.norm_f.weight", dt, {s.hidden}, TensorKind::kNorm));
  plan.push_back(Matrix("lm_head.weight", dt, s.vocab, s.hidden));

  SynthCheckpointSummary summary;
  synth_internal::WriteCheckpoint(dir, plan, options, pool, &summary);

  nlohmann::ordered_json config = {
      {"architectures", {"NemotronHForCausalLM"}},
      {"model_type", "nemotron_h"},
      {"hidden_size", s.hidden},
      {"hybrid_override_pattern", s.pattern},
      {"num_hidden_layers", static_cast<int64_t>(s.pattern.size())},
      {"num_attention_heads", s.heads},
      {"num_key_value_heads", s.kv_heads},
      {"head_dim", s.head_dim},
      {"intermediate_size", s.intermediate},
      {"mlp_hidden_act", "relu2"},
      {"n_routed_experts", s.num_experts},
      {"num_experts_per_tok", s.experts_per_token},
      {"moe_intermediate_size", s.moe_intermediate},
      {"moe_shared_expert_intermediate_size", s.shared_intermediate},
      {"mamba_num_heads", s.mamba_heads},
      {"mamba_head_dim", s.mamba_head_dim},
      {"ssm_state_size", s.ssm_state},
      {"n_groups", s.n_groups},
      {"conv_kernel", s.conv_kernel},
      {"expand", s.hidden > 0 ? static_cast<double>(d_inner) / s.hidden : 0.0},
      {"use_conv_bias", true},
      {"mamba_hidden_act", "silu"},
      {"vocab_size", s.vocab},
      {"max_position_embeddings", 4096},
      {"layer_norm_epsilon", 1e-5},
      {"attention_bias", false},
      {"mlp_bias", false},
      {"tie_word_embeddings", false},
      {"bos_token_id", 1},
      {"eos_token_id", 2},
      {"torch_dtype", dt == DType::kBF16 ? "bfloat16" : "float32"},
      {"transformers_version", "4.46.0"},
      {"_quantforge_synthetic", {{"seed", options.seed}, {"generator", "qf::WeightGenerator"}}},
  };
  synth_internal::WriteConfigs(dir, config);
  return summary;
}

}  // namespace qf
