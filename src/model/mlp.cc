// SwiGLU MLP forward: one GEMM for gate|up, the activation in place into the gate half, one GEMM
// for down reading the gate half with the fused row stride.
#include "src/model/mlp.h"

#include <cmath>
#include <vector>

namespace qf::model {

SwiGluMlp::SwiGluMlp(int64_t hidden_size, int64_t intermediate_size, Linear gate_up, Linear down,
                     const std::string& prefix)
    : hidden_size_(hidden_size),
      intermediate_size_(intermediate_size),
      gate_up_(std::move(gate_up)),
      down_(std::move(down)),
      gate_up_modules_{prefix + "gate_proj", prefix + "up_proj"},
      down_modules_{prefix + "down_proj"} {}

void SwiGluMlp::Forward(const BatchLayout& batch, float* in, float* out,
                        const ForwardContext& ctx) const {
  ThreadPool* pool = ctx.pool;
  const int64_t num_tokens = batch.NumTokens();
  const int64_t inter = intermediate_size_;
  std::vector<float> gate_up(static_cast<size_t>(num_tokens * 2 * inter));
  Observe(ctx, ActivationKind::kLinearInput, gate_up_modules_, in, num_tokens, hidden_size_,
          hidden_size_);
  gate_up_.Forward(in, hidden_size_, num_tokens, gate_up.data(), 2 * inter, pool);
  constexpr int64_t kRowsPerTask = 16;
  const Partition part{static_cast<uint64_t>(num_tokens), kRowsPerTask};
  ParallelFor(pool, part.NumTasks(), [&](uint64_t task, size_t) {
    for (uint64_t t = part.Begin(task); t < part.End(task); ++t) {
      float* row = gate_up.data() + t * 2 * inter;
      for (int64_t i = 0; i < inter; ++i) {
        const float g = row[i];
        // silu as torch computes it: x * sigmoid(x), sigmoid = 1 / (1 + exp(-x)).
        const float silu = g * (1.0f / (1.0f + std::exp(-g)));
        row[i] = silu * row[inter + i];
      }
    }
  });
  // down reads the first `inter` columns of each fused row.
  Observe(ctx, ActivationKind::kLinearInput, down_modules_, gate_up.data(), num_tokens, inter,
          2 * inter);
  down_.Forward(gate_up.data(), 2 * inter, num_tokens, out, hidden_size_, pool);
}

}  // namespace qf::model
