// Grouped-query self-attention (LlamaAttention / MistralAttention / Qwen2Attention):
//   q|k|v = x [Wq|Wk|Wv]^T (+ biases), RoPE on q and k, per head
//   softmax(q k^T / sqrt(head_dim) + causal mask) v, then o_proj.
// Query head h reads kv head h / (num_heads / num_kv_heads). q, k and v come from one fused GEMM
// (their weights stacked by rows), which keeps the GEMM large.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/model/linear.h"
#include "src/model/mixer.h"

namespace qf::model {

struct AttentionShape {
  int64_t hidden_size = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t sliding_window = 0;  // 0: full causal; else key j visible from query i iff i - j < w

  int64_t QkvWidth() const { return (num_heads + 2 * num_kv_heads) * head_dim; }
};

// Row i of causal attention scores [len] (keys 0..len-1) becomes probabilities in place: scale,
// subtract the max over the visible keys [max(0, i - window + 1), i] (window 0: all of 0..i),
// exp, divide by the sum, every other key exactly 0. One function for the forward pass and the
// backward pass's recomputation, so both see the same F32 arithmetic.
void MaskedSoftmaxRow(float* row, int64_t i, int64_t len, int64_t window, float scale);

class Attention final : public Mixer {
 public:
  // qkv: [QkvWidth, hidden] rows q, then k, then v; o: [hidden, num_heads * head_dim].
  // `prefix` names the module for hooks, e.g. "model.layers.0.self_attn.".
  Attention(const AttentionShape& shape, std::vector<double> inv_freq, Linear qkv, Linear o,
            const std::string& prefix = "self_attn.");

  void Forward(const BatchLayout& batch, float* in, float* out,
               const ForwardContext& ctx) const override;

  const AttentionShape& shape() const { return shape_; }

 private:
  AttentionShape shape_;
  std::vector<double> inv_freq_;
  Linear qkv_;
  Linear o_;
  std::vector<std::string> qkv_modules_;  // q_proj, k_proj, v_proj
  std::vector<std::string> o_modules_;    // o_proj
};

}  // namespace qf::model
