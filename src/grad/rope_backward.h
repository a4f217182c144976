// Backward of RoPE (src/model/rope.h). The rotation of each pair (x[i], x[i + h]) by angle a is
// orthogonal, so its gradient is the rotation by -a:
//   dx[i]     =  dy[i] cos + dy[i + h] sin
//   dx[i + h] = -dy[i] sin + dy[i + h] cos,     h = head_dim / 2
#pragma once

#include <cstdint>

#include "src/model/rope.h"

namespace qf::grad {

// Turns dL/d(rotated) into dL/d(unrotated) in place for `num_heads` heads laid out back to back
// at `position`, with the forward's cos / sin table.
void ApplyRopeBackward(const model::RopeTable& table, int32_t position, int64_t num_heads,
                       float* grad);

}  // namespace qf::grad
