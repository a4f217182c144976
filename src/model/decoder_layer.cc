// Decoder layer forward: for each residual block, x += mixer(norm(x)).
#include "src/model/decoder_layer.h"

namespace qf::model {

void DecoderLayer::Forward(const BatchLayout& batch, float* x, int64_t hidden_size,
                           const ForwardContext& ctx) const {
  const int64_t n = batch.NumTokens() * hidden_size;
  std::vector<float> normed(static_cast<size_t>(n));
  std::vector<float> mixed(static_cast<size_t>(n));
  for (const ResidualBlock& block : blocks_) {
    block.norm.Forward(x, batch.NumTokens(), normed.data(), ctx.pool);
    block.mixer->Forward(batch, normed.data(), mixed.data(), ctx);
    for (int64_t i = 0; i < n; ++i) x[i] += mixed[i];
  }
}

}  // namespace qf::model
