// A generated Llama checkpoint is a checkpoint the model layer accepts: config.json keys, tensor
// names and shapes load through Model::LoadDir, and a forward pass gives finite logits.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include "quantforge/model.h"
#include "quantforge/synth.h"

namespace qf {
namespace {

TEST(SynthCheckpoint, LlamaLoadsThroughTheModelLayer) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("qf_synth_model_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const LlamaShape shape = *LlamaPreset("tiny");
  GenerateLlamaCheckpoint(dir, shape, SynthCheckpointOptions{});
  {
    const std::unique_ptr<Model> model = Model::LoadDir(dir, nullptr);
    EXPECT_EQ(model->config().vocab_size, shape.vocab);
    const std::vector<int32_t> tokens = {1, 5, 9, 200};
    TokenBatch batch;
    batch.sequences.push_back(tokens);
    const std::vector<float> logits = model->ForwardLogits(batch);
    ASSERT_EQ(static_cast<int64_t>(logits.size()), 4 * shape.vocab);
    for (size_t i = 0; i < logits.size(); ++i) ASSERT_TRUE(std::isfinite(logits[i])) << i;
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qf
