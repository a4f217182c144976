// RoPE backward: the inverse (transposed) rotation, with the forward's F32 cos / sin table.
#include "src/grad/rope_backward.h"

namespace qf::grad {

void ApplyRopeBackward(const model::RopeTable& table, int32_t position, int64_t num_heads,
                       float* grad) {
  const int64_t half = table.half_dim;
  const float* c = table.cos.data() + position * half;
  const float* s = table.sin.data() + position * half;
  for (int64_t head = 0; head < num_heads; ++head) {
    float* g = grad + head * 2 * half;
    for (int64_t i = 0; i < half; ++i) {
      const float g1 = g[i];
      const float g2 = g[i + half];
      g[i] = g1 * c[i] + g2 * s[i];
      g[i + half] = g2 * c[i] - g1 * s[i];
    }
  }
}

}  // namespace qf::grad
