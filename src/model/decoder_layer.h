// A decoder layer: residual blocks (RMSNorm then Mixer, output added to the stream), run in
// order. See mixer.h for how Llama and Nemotron-H layers map onto it.
#pragma once

#include <memory>
#include <vector>

#include "src/model/mixer.h"
#include "src/model/rmsnorm.h"

namespace qf::model {

struct ResidualBlock {
  RmsNorm norm;
  std::unique_ptr<Mixer> mixer;
};

class DecoderLayer {
 public:
  explicit DecoderLayer(std::vector<ResidualBlock> blocks) : blocks_(std::move(blocks)) {}

  // x: the residual stream [NumTokens, hidden], updated in place.
  void Forward(const BatchLayout& batch, float* x, int64_t hidden_size,
               const ForwardContext& ctx) const;

  const std::vector<ResidualBlock>& blocks() const { return blocks_; }

 private:
  std::vector<ResidualBlock> blocks_;
};

}  // namespace qf::model
