// The SwiGLU MLP of Llama-family models: down(silu(gate(x)) * up(x)), silu(g) = g / (1 + e^-g).
// gate and up come from one fused GEMM (weights stacked by rows: gate, then up).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/model/linear.h"
#include "src/model/mixer.h"

namespace qf::model {

class SwiGluMlp final : public Mixer {
 public:
  // gate_up: [2 * intermediate, hidden]; down: [hidden, intermediate]. `prefix` names the
  // module for hooks, e.g. "model.layers.0.mlp.".
  SwiGluMlp(int64_t hidden_size, int64_t intermediate_size, Linear gate_up, Linear down,
            const std::string& prefix = "mlp.");

  void Forward(const BatchLayout& batch, float* in, float* out,
               const ForwardContext& ctx) const override;

 private:
  int64_t hidden_size_;
  int64_t intermediate_size_;
  Linear gate_up_;
  Linear down_;
  std::vector<std::string> gate_up_modules_;  // gate_proj, up_proj
  std::vector<std::string> down_modules_;     // down_proj
};

}  // namespace qf::model
