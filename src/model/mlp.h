// The SwiGLU MLP of Llama-family models: down(silu(gate(x)) * up(x)), silu(g) = g / (1 + e^-g).
// gate and up come from one fused GEMM (weights stacked by rows: gate, then up).
#pragma once

#include <cstdint>

#include "src/model/linear.h"
#include "src/model/mixer.h"

namespace qf::model {

class SwiGluMlp final : public Mixer {
 public:
  // gate_up: [2 * intermediate, hidden]; down: [hidden, intermediate].
  SwiGluMlp(int64_t hidden_size, int64_t intermediate_size, Linear gate_up, Linear down);

  void Forward(const BatchLayout& batch, const float* in, float* out,
               ThreadPool* pool) const override;

 private:
  int64_t hidden_size_;
  int64_t intermediate_size_;
  Linear gate_up_;
  Linear down_;
};

}  // namespace qf::model
