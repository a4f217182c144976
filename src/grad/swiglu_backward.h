// SwiGLU activation of the Llama MLP, h = silu(g) * u with silu(g) = g sigmoid(g), and its
// backward: with s = sigmoid(g), silu'(g) = s (1 + g (1 - s)), so
//   dg = dh u s (1 + g (1 - s)),   du = dh silu(g).
// gate|up is the fused [rows, 2 * inter] layout of the forward (gate columns first).
#pragma once

#include <cstdint>

#include "quantforge/thread_pool.h"

namespace qf::grad {

// h[rows, inter] = silu(gate) * up, computed as src/model/mlp.cc does (same F32 operations).
void SwiGluForward(const float* gate_up, int64_t rows, int64_t inter, float* h, ThreadPool* pool);

// dgate_up[rows, 2 * inter] (overwritten) from the forward's gate_up and dh[rows, inter].
void SwiGluBackward(const float* gate_up, int64_t rows, int64_t inter, const float* dh,
                    float* dgate_up, ThreadPool* pool);

}  // namespace qf::grad
