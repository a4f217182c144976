// Test support for the whole-model gradient tests: in-memory weights for a tiny Llama-family
// model, and an independent double-precision forward of it (straight from the definitions in
// quantforge/model.h, no code shared with src/model or src/grad except the RoPE frequencies) that
// can add an offset to any one element of any Linear module's output: the finite-difference
// probe of dL/dY for that module.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "quantforge/model.h"

namespace qf::grad_test {

class InMemoryWeights final : public WeightSource {
 public:
  std::optional<TensorView> Find(std::string_view name) const override;
  std::string Describe() const override { return "in-memory"; }
  // A tensor of normal values (mean, std) from `seed`.
  void Add(const std::string& name, Shape shape, uint32_t seed, float mean, float std);
  const std::vector<float>& Values(const std::string& name) const;

 private:
  std::map<std::string, std::pair<Shape, std::vector<float>>, std::less<>> tensors_;
};

// A tiny config: hidden 16, 4 heads / 2 kv heads of 4, intermediate 24, `layers` layers,
// vocab 32, max_position_embeddings 160.
ModelConfig TinyConfig(int64_t layers, bool tied, bool biases, int64_t sliding_window);
// Every tensor TinyConfig's model reads (embedding N(0, 1), Linear weights N(0, 0.3), norms
// N(1, 0.2), biases N(0, 0.1)).
InMemoryWeights TinyWeights(const ModelConfig& config, uint32_t seed);

// y[row, col] += delta for `module`'s output in the reference forward.
struct OutputOffset {
  std::string module;  // e.g. "model.layers.1.mlp.up_proj"
  int64_t row = 0;
  int64_t col = 0;
  double delta = 0.0;
};

struct ReferenceResult {
  double loss = 0.0;  // summed NLL over predicted tokens
  // Each Linear module's input [tokens, in_features], by module name.
  std::map<std::string, std::vector<double>> inputs;
};

ReferenceResult ReferenceForward(const ModelConfig& config, const InMemoryWeights& weights,
                                 const std::vector<std::vector<int32_t>>& sequences,
                                 const OutputOffset* offset = nullptr);

}  // namespace qf::grad_test
