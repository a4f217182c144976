// Tensor lists of small Llama-shaped and MoE checkpoints for the autoquant tests (names and shapes
// only: grouping, cost and recipe planning never read weights).
#pragma once

#include <string>
#include <vector>

#include "quantforge/recipe.h"

namespace qf::testing {

// Llama layout: embeddings, per layer q/k/v/o, gate/up/down and two norms, final norm, lm_head.
// `intermediate` 172 (stories260K) leaves down_proj unable to take 16- or 32-element blocks.
inline std::vector<TensorDesc> LlamaTensors(int num_layers, int64_t hidden, int64_t kv_width,
                                            int64_t intermediate) {
  std::vector<TensorDesc> t;
  t.push_back({"model.embed_tokens.weight", DType::kBF16, {512, hidden}});
  for (int l = 0; l < num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    t.push_back({p + "input_layernorm.weight", DType::kBF16, {hidden}});
    t.push_back({p + "post_attention_layernorm.weight", DType::kBF16, {hidden}});
    t.push_back({p + "self_attn.q_proj.weight", DType::kBF16, {hidden, hidden}});
    t.push_back({p + "self_attn.k_proj.weight", DType::kBF16, {kv_width, hidden}});
    t.push_back({p + "self_attn.v_proj.weight", DType::kBF16, {kv_width, hidden}});
    t.push_back({p + "self_attn.o_proj.weight", DType::kBF16, {hidden, hidden}});
    t.push_back({p + "mlp.gate_proj.weight", DType::kBF16, {intermediate, hidden}});
    t.push_back({p + "mlp.up_proj.weight", DType::kBF16, {intermediate, hidden}});
    t.push_back({p + "mlp.down_proj.weight", DType::kBF16, {hidden, intermediate}});
  }
  t.push_back({"model.norm.weight", DType::kBF16, {hidden}});
  t.push_back({"lm_head.weight", DType::kBF16, {512, hidden}});
  return t;
}

// One MoE layer (Qwen-MoE style): attention, a router `mlp.gate`, `num_experts` experts with
// gate/up/down each, and a shared expert.
inline std::vector<TensorDesc> MoeTensors(int num_experts) {
  std::vector<TensorDesc> t;
  const std::string p = "model.layers.0.";
  t.push_back({p + "self_attn.q_proj.weight", DType::kBF16, {64, 64}});
  t.push_back({p + "self_attn.k_proj.weight", DType::kBF16, {32, 64}});
  t.push_back({p + "self_attn.v_proj.weight", DType::kBF16, {32, 64}});
  t.push_back({p + "self_attn.o_proj.weight", DType::kBF16, {64, 64}});
  t.push_back({p + "mlp.gate.weight", DType::kBF16, {num_experts, 64}});
  for (int e = 0; e < num_experts; ++e) {
    const std::string x = p + "mlp.experts." + std::to_string(e) + ".";
    t.push_back({x + "gate_proj.weight", DType::kBF16, {32, 64}});
    t.push_back({x + "up_proj.weight", DType::kBF16, {32, 64}});
    t.push_back({x + "down_proj.weight", DType::kBF16, {64, 32}});
  }
  t.push_back({p + "mlp.shared_expert.gate_proj.weight", DType::kBF16, {32, 64}});
  t.push_back({p + "mlp.shared_expert.up_proj.weight", DType::kBF16, {32, 64}});
  t.push_back({p + "mlp.shared_expert.down_proj.weight", DType::kBF16, {64, 32}});
  t.push_back({"lm_head.weight", DType::kBF16, {512, 64}});
  return t;
}

}  // namespace qf::testing
