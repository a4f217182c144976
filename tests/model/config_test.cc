// config.json parsing: defaults, the supported architectures, refusals with clear messages.
#include <gtest/gtest.h>

#include <string>

#include "quantforge/error.h"
#include "quantforge/model.h"

namespace qf {
namespace {

std::string Config(const std::string& arch, const std::string& extra = "") {
  return R"({"architectures": [")" + arch + R"("], "hidden_size": 64, "intermediate_size": 96,
    "num_hidden_layers": 2, "num_attention_heads": 8, "vocab_size": 100,
    "max_position_embeddings": 128)" +
         extra + "}";
}

std::string ErrorOf(const std::string& json) {
  try {
    ParseModelConfig(json, "cfg.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelConfig, DefaultsFollowTransformers) {
  const ModelConfig c = ParseModelConfig(Config("LlamaForCausalLM"), "cfg.json");
  EXPECT_EQ(c.num_key_value_heads, 8);  // defaults to num_attention_heads
  EXPECT_EQ(c.head_dim, 8);             // hidden / heads
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.rope_scaling.kind, RopeScalingKind::kNone);
}

TEST(ModelConfig, Qwen2HasQkvBiasAndOptionalSlidingWindow) {
  const ModelConfig c =
      ParseModelConfig(Config("Qwen2ForCausalLM", R"(, "sliding_window": 32)"), "cfg.json");
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_EQ(c.sliding_window, 0);  // only with use_sliding_window: true
  const ModelConfig w = ParseModelConfig(
      Config("Qwen2ForCausalLM", R"(, "sliding_window": 32, "use_sliding_window": true)"),
      "cfg.json");
  EXPECT_EQ(w.sliding_window, 32);
  const ModelConfig m =
      ParseModelConfig(Config("MistralForCausalLM", R"(, "sliding_window": 32)"), "cfg.json");
  EXPECT_EQ(m.sliding_window, 32);
  EXPECT_FALSE(m.qkv_bias);
}

TEST(ModelConfig, Llama3RopeScaling) {
  const ModelConfig c = ParseModelConfig(
      Config("LlamaForCausalLM", R"(, "rope_scaling": {"rope_type": "llama3", "factor": 32.0,
        "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})"),
      "cfg.json");
  EXPECT_EQ(c.rope_scaling.kind, RopeScalingKind::kLlama3);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
}

TEST(ModelConfig, RefusesUnknownArchitectureListingSupported) {
  const std::string message = ErrorOf(Config("GPT2LMHeadModel"));
  EXPECT_NE(message.find("unsupported architecture 'GPT2LMHeadModel'"), std::string::npos)
      << message;
  for (std::string_view arch : SupportedArchitectures()) {
    EXPECT_NE(message.find(arch), std::string::npos) << message;
  }
  EXPECT_NE(message.find("cfg.json"), std::string::npos) << message;
}

TEST(ModelConfig, RefusesBadInput) {
  EXPECT_NE(ErrorOf("{").find("not valid JSON"), std::string::npos);
  EXPECT_NE(ErrorOf(R"({"hidden_size": 4})").find("architectures"), std::string::npos);
  EXPECT_NE(ErrorOf(Config("LlamaForCausalLM", R"(, "num_key_value_heads": 3)"))
                .find("multiple of num_key_value_heads"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Config("LlamaForCausalLM", R"(, "rope_scaling": {"type": "yarn"})"))
                .find("unsupported rope_scaling type 'yarn'"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Config("LlamaForCausalLM", R"(, "hidden_act": "gelu")")).find("hidden_act"),
            std::string::npos);
  const std::string missing = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
    "num_attention_heads": 8})";
  EXPECT_NE(ErrorOf(missing).find("'intermediate_size'"), std::string::npos);
}

}  // namespace
}  // namespace qf
