// The core of grouped-query self-attention (src/model/attention.h) between q|k|v after RoPE and
// the context that o_proj reads, forward and backward, per sequence:
//   S = scale q k^T (scale = 1 / sqrt(head_dim)), P = softmax over the visible keys (causal, and
//   key j visible from query i iff i - j < sliding_window when a window is set), O = P v.
// Backward, per query head (Vaswani et al.; the softmax Jacobian diag(p) - p p^T):
//   dP = dO v^T,  dS_ij = P_ij (dP_ij - sum_j' P_ij' dP_ij'),
//   dq = scale dS k,  dk += scale dS^T q,  dv += P^T dO,
// where dk and dv sum over the num_heads / num_kv_heads query heads sharing a kv head. Masked
// keys have P = 0, hence dS = 0: the mask needs no separate handling. P is recomputed, not kept.
#pragma once

#include <cstdint>

#include "quantforge/thread_pool.h"
#include "src/model/attention.h"
#include "src/model/mixer.h"

namespace qf::grad {

// context[tokens, num_heads * head_dim] (overwritten) from qkv[tokens, QkvWidth] after RoPE.
void AttentionCoreForward(const model::AttentionShape& shape, const model::BatchLayout& batch,
                          const float* qkv, float* context, ThreadPool* pool);

// dqkv[tokens, QkvWidth] (overwritten: dq, dk, dv after RoPE) from the forward's qkv and
// dcontext[tokens, num_heads * head_dim]. One task per (sequence, kv head), which owns its dk
// and dv outright and adds its query heads in order: the result does not depend on threads.
void AttentionCoreBackward(const model::AttentionShape& shape, const model::BatchLayout& batch,
                           const float* qkv, const float* dcontext, float* dqkv, ThreadPool* pool);

}  // namespace qf::grad
