// Model loading from an in-memory WeightSource: a tiny Qwen2-shaped model (q/k/v biases), and
// the errors a wrong checkpoint gets (missing tensor, wrong shape, unsupported dtype).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "quantforge/error.h"
#include "quantforge/model.h"

namespace qf {
namespace {

class InMemoryWeights final : public WeightSource {
 public:
  std::optional<TensorView> Find(std::string_view name) const override {
    const auto it = tensors_.find(std::string(name));
    if (it == tensors_.end()) return std::nullopt;
    TensorView view =
        MakeView(std::span<const float>(it->second.values), it->second.shape, it->first);
    if (it->second.dtype) view.dtype = *it->second.dtype;
    return view;
  }
  std::string Describe() const override { return "in-memory"; }

  void Add(const std::string& name, Shape shape, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 0.2f);
    std::vector<float> values(static_cast<size_t>(NumElements(shape)));
    for (float& v : values) v = dist(rng);
    tensors_[name] = {std::move(shape), std::move(values), std::nullopt};
  }
  void Remove(const std::string& name) { tensors_.erase(name); }
  void SetDtype(const std::string& name, DType dtype) { tensors_[name].dtype = dtype; }
  std::vector<float>& Values(const std::string& name) { return tensors_[name].values; }

 private:
  struct Entry {
    Shape shape;
    std::vector<float> values;
    std::optional<DType> dtype;  // overrides F32 to test refusals (bytes stay F32-sized)
  };
  std::map<std::string, Entry> tensors_;
};

ModelConfig Qwen2Config() {
  return ParseModelConfig(R"({"architectures": ["Qwen2ForCausalLM"], "hidden_size": 16,
    "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "vocab_size": 32, "max_position_embeddings": 64,
    "tie_word_embeddings": false})",
                          "qwen2.json");
}

InMemoryWeights Qwen2Weights() {
  InMemoryWeights w;
  uint32_t seed = 1;
  w.Add("model.embed_tokens.weight", {32, 16}, seed++);
  w.Add("lm_head.weight", {32, 16}, seed++);
  w.Add("model.norm.weight", {16}, seed++);
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    w.Add(p + "input_layernorm.weight", {16}, seed++);
    w.Add(p + "post_attention_layernorm.weight", {16}, seed++);
    for (const char* proj : {"q_proj", "k_proj", "v_proj"}) {
      const int64_t out = proj[0] == 'q' ? 16 : 8;  // 4 heads / 2 kv heads of 4
      w.Add(p + "self_attn." + proj + ".weight", {out, 16}, seed++);
      w.Add(p + "self_attn." + proj + ".bias", {out}, seed++);
    }
    w.Add(p + "self_attn.o_proj.weight", {16, 16}, seed++);
    w.Add(p + "mlp.gate_proj.weight", {24, 16}, seed++);
    w.Add(p + "mlp.up_proj.weight", {24, 16}, seed++);
    w.Add(p + "mlp.down_proj.weight", {16, 24}, seed++);
  }
  return w;
}

std::string LoadError(const InMemoryWeights& w) {
  try {
    Model::Load(Qwen2Config(), w, nullptr);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelLoad, Qwen2WithBiasesRuns) {
  InMemoryWeights w = Qwen2Weights();
  const std::vector<int32_t> tokens = {3, 1, 4, 1, 5, 9, 2, 6};
  const std::vector<float> a = Model::Load(Qwen2Config(), w, nullptr)->ForwardLogits({{tokens}});
  ASSERT_EQ(a.size(), 8u * 32);
  for (float v : a) ASSERT_TRUE(std::isfinite(v));
  // The k bias is used: changing it changes the logits (of every position but the first,
  // where softmax over one key is 1 whatever the score).
  for (float& b : w.Values("model.layers.0.self_attn.k_proj.bias")) b += 1.0f;
  const std::vector<float> b = Model::Load(Qwen2Config(), w, nullptr)->ForwardLogits({{tokens}});
  EXPECT_NE(std::vector<float>(a.begin() + 32, a.end()),
            std::vector<float>(b.begin() + 32, b.end()));
}

TEST(ModelLoad, ErrorsNameTheTensor) {
  InMemoryWeights missing = Qwen2Weights();
  missing.Remove("model.layers.1.self_attn.v_proj.bias");
  const std::string m = LoadError(missing);
  EXPECT_NE(m.find("in-memory: tensor 'model.layers.1.self_attn.v_proj.bias': missing"),
            std::string::npos)
      << m;

  InMemoryWeights shape = Qwen2Weights();
  shape.Add("model.layers.0.mlp.down_proj.weight", {24, 16}, 99);  // transposed
  const std::string s = LoadError(shape);
  EXPECT_NE(s.find("shape [24, 16], expected [16, 24]"), std::string::npos) << s;

  InMemoryWeights dtype = Qwen2Weights();
  dtype.SetDtype("model.norm.weight", DType::kI8);
  const std::string d = LoadError(dtype);
  EXPECT_NE(d.find("dtype I8 not supported"), std::string::npos) << d;
}

}  // namespace
}  // namespace qf
