// LayerwiseRunner against Model::Forward: the same activations bit for bit (every hook site's
// amax and the final hidden states), on_layer_done in order between the layers' hook calls, at
// most one tensor mapped at a time, errors before any load, and the memory formula's terms.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>

#include "quantforge/error.h"
#include "quantforge/model.h"
#include "quantforge/synth.h"

namespace qf {
namespace {

// Max |x| per (kind, layer, first module): an observer written independently of the engine's.
class AmaxRecorder final : public ForwardHooks {
 public:
  void OnActivation(const ActivationSite& site, float* x, int64_t rows, int64_t cols,
                    int64_t ld) override {
    float amax = 0.0f;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::abs(x[r * ld + c]));
    }
    const std::string key = std::to_string(static_cast<int>(site.kind)) + "/" +
                            std::to_string(site.layer) + "/" + site.modules[0];
    auto [it, inserted] = amax_.emplace(key, amax);
    if (!inserted) it->second = std::max(it->second, amax);
    events.push_back(site.layer);
  }
  const std::map<std::string, float>& amax() const { return amax_; }
  std::vector<int64_t> events;  // layer of each call; on_layer_done(l) appends -1 - l

 private:
  std::map<std::string, float> amax_;
};

// A checkpoint source that counts how many tensors are mapped (found, not yet released).
class CountingSource final : public WeightSource {
 public:
  explicit CountingSource(const WeightSource& inner) : inner_(inner) {}
  std::optional<TensorView> Find(std::string_view name) const override {
    const std::lock_guard lock(mutex_);
    ++finds;
    live_.insert(std::string(name));
    max_live = std::max(max_live, live_.size());
    return inner_.Find(name);
  }
  std::string Describe() const override { return inner_.Describe(); }
  void Release(std::string_view name) const override {
    const std::lock_guard lock(mutex_);
    live_.erase(std::string(name));
    inner_.Release(name);
  }
  mutable size_t finds = 0;
  mutable size_t max_live = 0;

 private:
  const WeightSource& inner_;
  mutable std::mutex mutex_;
  mutable std::set<std::string> live_;
};

uint32_t Bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

class LayerwiseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("qf_layerwise_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    // Tied embeddings, GQA (4 heads, 2 kv heads), three layers.
    GenerateLlamaCheckpoint(dir_, LlamaShape{64, 192, 3, 4, 2, 256, true},
                            SynthCheckpointOptions{.dtype = DType::kBF16, .seed = 7});
    config_ = LoadModelConfig(dir_);
    // Seven sequences of uneven lengths; with batch_tokens 64 they form several batches.
    std::mt19937 rng(11);
    std::uniform_int_distribution<int32_t> token(0, 255);
    for (int64_t len : {5, 40, 17, 33, 1, 64, 9}) {
      std::vector<int32_t> seq(static_cast<size_t>(len));
      for (int32_t& t : seq) t = token(rng);
      sequences_.push_back(std::move(seq));
    }
    for (const auto& seq : sequences_) batch_.sequences.emplace_back(seq);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Model::Forward (+ lm_head's input through Logits) over the runner's batches: consecutive
  // sequences, at most `batch_tokens` tokens each.
  std::vector<float> WholeModel(const WeightSource& weights, int64_t batch_tokens,
                                ForwardHooks* hooks, ThreadPool* pool) {
    const std::unique_ptr<Model> model = Model::Load(config_, weights, pool);
    std::vector<float> all;
    for (size_t first = 0; first < sequences_.size();) {
      TokenBatch b;
      int64_t tokens = 0;
      size_t last = first;
      for (; last < sequences_.size(); ++last) {
        const int64_t len = static_cast<int64_t>(sequences_[last].size());
        if (last > first && tokens + len > batch_tokens) break;
        tokens += len;
        b.sequences.emplace_back(sequences_[last]);
      }
      std::vector<float> hidden;
      model->Forward(b, hidden, hooks);
      std::vector<float> logits(static_cast<size_t>(tokens * config_.vocab_size));
      model->Logits(hidden.data(), tokens, logits.data(), hooks);
      all.insert(all.end(), hidden.begin(), hidden.end());
      first = last;
    }
    return all;
  }

  std::filesystem::path dir_;
  ModelConfig config_;
  std::vector<std::vector<int32_t>> sequences_;
  TokenBatch batch_;
};

TEST_F(LayerwiseTest, MatchesWholeModelBitForBit) {
  ThreadPool pool(3);
  const std::unique_ptr<WeightSource> weights = OpenCheckpointWeights(dir_);
  AmaxRecorder whole;
  const std::vector<float> expected = WholeModel(*weights, 64, &whole, &pool);

  AmaxRecorder layerwise;
  LayerwiseRunner runner(config_, *weights, &pool, {},
                         LayerwiseOptions{.batch_tokens = 64, .lm_head_input = true});
  std::vector<int64_t> done;
  std::vector<LayerwiseProgress> progress;
  runner.Run(batch_, &layerwise,
             {.on_layer_done =
                  [&](int64_t l) {
                    done.push_back(l);
                    layerwise.events.push_back(-1 - l);
                  },
              .progress = [&](const LayerwiseProgress& p) { progress.push_back(p); }});

  // Every site: 3 layers x (qkv input, k, v, o input, gate|up input, down input) + lm_head.
  ASSERT_EQ(whole.amax().size(), 3u * 6u + 1u);
  ASSERT_EQ(layerwise.amax().size(), whole.amax().size());
  for (const auto& [key, amax] : whole.amax()) {
    const auto it = layerwise.amax().find(key);
    ASSERT_NE(it, layerwise.amax().end()) << key;
    EXPECT_EQ(Bits(it->second), Bits(amax))
        << key << ": layerwise " << std::hex << Bits(it->second) << " whole " << Bits(amax);
  }
  const std::vector<float>& hidden = runner.hidden();
  ASSERT_EQ(hidden.size(), expected.size());
  size_t mismatches = 0;
  for (size_t i = 0; i < hidden.size(); ++i) {
    if (Bits(hidden[i]) != Bits(expected[i]) && mismatches++ < 5) {
      ADD_FAILURE() << "hidden[" << i << "]: layerwise " << std::hex << Bits(hidden[i]) << " whole "
                    << Bits(expected[i]);
    }
  }
  EXPECT_EQ(mismatches, 0u);

  // on_layer_done(l) comes after every hook call of layer l and before any of layer l + 1.
  EXPECT_EQ(done, (std::vector<int64_t>{0, 1, 2}));
  int64_t current = 0;
  for (const int64_t e : layerwise.events) {
    if (e < 0) {
      EXPECT_EQ(-1 - e, current);
      ++current;
    } else if (e < config_.num_hidden_layers) {
      EXPECT_EQ(e, current) << "hook call of layer " << e << " while layer " << current << " runs";
    }
  }
  // Batches of <= 64 tokens: {5,40,17}, {33,1}, {64}, {9}: four progress calls per layer, the
  // last of each layer with every token done.
  ASSERT_EQ(progress.size(), 3u * 4u);
  for (size_t i = 0; i < progress.size(); ++i) {
    EXPECT_EQ(progress[i].layer, static_cast<int64_t>(i / 4));
    EXPECT_EQ(progress[i].num_layers, 3);
    EXPECT_EQ(progress[i].num_tokens, batch_.NumTokens());
  }
  EXPECT_EQ(progress[3].tokens_done, batch_.NumTokens());
  EXPECT_EQ(progress[0].tokens_done, 62);
}

TEST_F(LayerwiseTest, LmHeadInputOnlyWhenAskedAndResultIndependentOfThreads) {
  const std::unique_ptr<WeightSource> weights = OpenCheckpointWeights(dir_);
  AmaxRecorder one;
  LayerwiseRunner runner1(config_, *weights, nullptr);  // defaults: 4096-token batches
  runner1.Run(batch_, &one);
  for (const auto& [key, amax] : one.amax()) {
    EXPECT_EQ(key.find("lm_head"), std::string::npos) << key;
  }
  EXPECT_EQ(one.amax().size(), 3u * 6u);
  ThreadPool pool(4);
  AmaxRecorder four;
  LayerwiseRunner runner4(config_, *weights, &pool);
  runner4.Run(batch_, &four);
  EXPECT_EQ(one.amax(), four.amax());
  EXPECT_EQ(runner1.hidden(), runner4.hidden());
}

TEST_F(LayerwiseTest, HoldsOneTensorMappedAtATime) {
  const std::unique_ptr<WeightSource> checkpoint = OpenCheckpointWeights(dir_);
  const CountingSource weights(*checkpoint);
  LayerwiseRunner runner(config_, weights, nullptr, {}, LayerwiseOptions{.lm_head_input = true});
  runner.Run(batch_, nullptr);
  EXPECT_EQ(weights.max_live, 1u);
  // Embedding, 3 x 9 layer tensors, final norm: each found once.
  EXPECT_EQ(weights.finds, 1u + 3u * 9u + 1u);
}

TEST_F(LayerwiseTest, RefusesBadTokensBeforeLoadingAnything) {
  const std::unique_ptr<WeightSource> checkpoint = OpenCheckpointWeights(dir_);
  const CountingSource weights(*checkpoint);
  LayerwiseRunner runner(config_, weights, nullptr);
  const std::vector<int32_t> bad = {1, 2, 256};
  TokenBatch batch = batch_;
  batch.sequences.emplace_back(bad);
  try {
    runner.Run(batch, nullptr);
    FAIL() << "token 256 of a 256-token vocabulary was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token id 256"), std::string::npos) << e.what();
  }
  EXPECT_EQ(weights.finds, 0u);
  const std::vector<int32_t> empty;
  TokenBatch with_empty = batch_;
  with_empty.sequences.emplace_back(empty);
  EXPECT_THROW(runner.Run(with_empty, nullptr), Error);
}

// The checkpoint plus seeded F32 biases for q/k/v/o and the MLP (as Llama's attention_bias and
// mlp_bias, Qwen2's q/k/v biases).
class WithBiases final : public WeightSource {
 public:
  WithBiases(const WeightSource& inner, const ModelConfig& config) : inner_(inner) {
    std::mt19937 rng(5);
    std::normal_distribution<float> dist(0.0f, 0.5f);
    const int64_t q = config.num_attention_heads * config.head_dim;
    const int64_t kv = config.num_key_value_heads * config.head_dim;
    for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      const std::vector<std::pair<std::string, int64_t>> sizes = {
          {"self_attn.q_proj", q},
          {"self_attn.k_proj", kv},
          {"self_attn.v_proj", kv},
          {"self_attn.o_proj", config.hidden_size},
          {"mlp.gate_proj", config.intermediate_size},
          {"mlp.up_proj", config.intermediate_size},
          {"mlp.down_proj", config.hidden_size}};
      for (const auto& [module, size] : sizes) {
        std::vector<float>& b = biases_[p + module + ".bias"];
        b.resize(static_cast<size_t>(size));
        for (float& v : b) v = dist(rng);
      }
    }
  }
  std::optional<TensorView> Find(std::string_view name) const override {
    const auto it = biases_.find(std::string(name));
    if (it == biases_.end()) return inner_.Find(name);
    return MakeView(std::span<const float>(it->second), {static_cast<int64_t>(it->second.size())},
                    it->first);
  }
  std::string Describe() const override { return "checkpoint with biases"; }
  void Release(std::string_view name) const override { inner_.Release(name); }

 private:
  const WeightSource& inner_;
  std::map<std::string, std::vector<float>> biases_;
};

TEST_F(LayerwiseTest, BiasesAndWeightTransformMatchWholeModel) {
  config_.qkv_bias = config_.o_bias = config_.mlp_bias = true;
  const std::unique_ptr<WeightSource> checkpoint = OpenCheckpointWeights(dir_);
  const WithBiases weights(*checkpoint, config_);
  // A transform that changes the weights (keeps 4 of BF16's 7 mantissa bits: dropping only bits
  // below BF16's, as this test once did, left the BF16 checkpoint unchanged) and logs the order.
  std::vector<std::string> order;
  const LoadOptions load{
      .weight_transform = [&](const std::string& name, std::span<float> w, int64_t, int64_t) {
        order.push_back(name);
        for (float& v : w) {
          uint32_t b = Bits(v) & 0xFFF80000u;
          std::memcpy(&v, &b, 4);
        }
      }};
  const std::unique_ptr<Model> model = Model::Load(config_, weights, nullptr, load);
  const std::vector<std::string> whole_order = order;
  order.clear();
  AmaxRecorder whole;
  std::vector<float> expected;
  model->Forward(batch_, expected, &whole);  // 169 tokens: one batch under the default 4096

  AmaxRecorder layerwise;
  LayerwiseRunner runner(config_, weights, nullptr, load, LayerwiseOptions{.lm_head_input = true});
  runner.Run(batch_, &layerwise);
  // Same transform calls in the same order; lm_head (transformed last by Model::Load, as tied
  // embeddings get their own copy) is never loaded by the runner.
  ASSERT_EQ(whole_order.size(), 3u * 7u + 1u);
  EXPECT_EQ(whole_order.back(), "lm_head.weight");
  EXPECT_EQ(order, std::vector<std::string>(whole_order.begin(), whole_order.end() - 1));
  EXPECT_EQ(order[3], "model.layers.0.self_attn.o_proj.weight");
  for (const auto& [key, amax] : whole.amax()) {
    ASSERT_TRUE(layerwise.amax().count(key)) << key;
    EXPECT_EQ(Bits(layerwise.amax().at(key)), Bits(amax)) << key;
  }
  ASSERT_EQ(runner.hidden().size(), expected.size());
  EXPECT_TRUE(
      std::memcmp(runner.hidden().data(), expected.data(), expected.size() * sizeof(float)) == 0);
}

// Sequential calibration: with rerun_transform T every layer runs again with T's weights, so the
// final hidden states are those of the whole model loaded with T, the rerun hooks see that
// model's activations, and the main pass's q|k|v input of layer l (which depends only on layers
// before l, all re-run) is that model's too, while layer 0's sites are the original model's.
TEST_F(LayerwiseTest, RerunTransformGivesTheTransformedModel) {
  const std::unique_ptr<WeightSource> weights = OpenCheckpointWeights(dir_);
  const WeightTransform truncate = [](const std::string&, std::span<float> w, int64_t, int64_t) {
    for (float& v : w) {
      uint32_t b = Bits(v) & 0xFFF00000u;  // 3 of BF16's 7 mantissa bits: changes the weights
      std::memcpy(&v, &b, 4);
    }
  };
  AmaxRecorder original;
  std::vector<float> unused;
  Model::Load(config_, *weights, nullptr)->Forward(batch_, unused, &original);
  AmaxRecorder transformed;
  std::vector<float> expected;
  Model::Load(config_, *weights, nullptr, LoadOptions{.weight_transform = truncate})
      ->Forward(batch_, expected, &transformed);

  std::vector<std::string> rerun_names;
  LayerwiseCallbacks callbacks;
  callbacks.rerun_transform = [&](const std::string& name, std::span<float> w, int64_t rows,
                                  int64_t cols) {
    rerun_names.push_back(name);
    truncate(name, w, rows, cols);
  };
  AmaxRecorder main_pass;
  AmaxRecorder rerun;
  callbacks.rerun_hooks = &rerun;
  LayerwiseRunner runner(config_, *weights, nullptr, {}, LayerwiseOptions{.lm_head_input = true});
  runner.Run(batch_, &main_pass, callbacks);

  ASSERT_EQ(rerun_names.size(), 3u * 7u);
  EXPECT_EQ(rerun_names[0], "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(rerun_names.back(), "model.layers.2.mlp.down_proj.weight");
  ASSERT_EQ(runner.hidden().size(), expected.size());
  size_t mismatches = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    if (Bits(runner.hidden()[i]) != Bits(expected[i]) && mismatches++ < 5) {
      ADD_FAILURE() << "hidden[" << i << "]: layerwise " << std::hex << Bits(runner.hidden()[i])
                    << " transformed model " << Bits(expected[i]);
    }
  }
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(rerun.amax(), transformed.amax());
  for (int64_t l = 0; l < 3; ++l) {
    const std::string key =
        "0/" + std::to_string(l) + "/model.layers." + std::to_string(l) + ".self_attn.q_proj";
    ASSERT_TRUE(main_pass.amax().count(key)) << key;
    EXPECT_EQ(Bits(main_pass.amax().at(key)), Bits(transformed.amax().at(key))) << key;
  }
  for (const auto& [key, amax] : original.amax()) {
    if (key.find("/0/") == std::string::npos) continue;  // layer 0: before any transform
    EXPECT_EQ(Bits(main_pass.amax().at(key)), Bits(amax)) << key;
  }
  // Layer 1's o_proj input comes from its original weights: not the transformed model's.
  const std::string o1 = "0/1/model.layers.1.self_attn.o_proj";
  EXPECT_NE(Bits(main_pass.amax().at(o1)), Bits(transformed.amax().at(o1)));
}

TEST(LayerwiseMemoryTest, FormulaTermsForLlama32OneB) {
  // Llama-3.2-1B: hidden 2048, intermediate 8192, 32 heads, 8 kv heads of 64, vocab 128256.
  ModelConfig c;
  c.hidden_size = 2048;
  c.intermediate_size = 8192;
  c.num_attention_heads = 32;
  c.num_key_value_heads = 8;
  c.head_dim = 64;
  c.vocab_size = 128256;
  const LayerwiseMemory m = EstimateLayerwiseMemory(c, 128, 512, 2);
  EXPECT_EQ(m.residual, 4ull * 128 * 512 * 2048);  // 512 MiB
  // Two norms 2 * 2048, q|k|v 3072 * 2048, o 2048 * 2048, gate|up|down 3 * 8192 * 2048.
  EXPECT_EQ(m.layer_weights, 4ull * (4096 + 6291456 + 4194304 + 50331648));  // 232 MiB
  // 8 sequences of 512 per batch (4096 tokens): normed + mixed, then max(qkv + q = 5120,
  // gate|up = 16384) columns; two workers' 64 x 512 score blocks.
  EXPECT_EQ(m.batch_activations, 4ull * 4096 * (2 * 2048 + 16384) + 4ull * 64 * 512 * 2);
  // 65536 tokens touch at most 65536 rows of 2048 BF16.
  EXPECT_EQ(m.embedding_rows, 2ull * 65536 * 2048);
  // gate_proj, up_proj and down_proj: 8192 x 2048 BF16 each.
  EXPECT_EQ(m.load_mapping, 2ull * 8192 * 2048);
  EXPECT_EQ(m.Total(), m.residual + m.layer_weights + m.batch_activations);
  // Few tokens: widening the largest tensor is the peak.
  const LayerwiseMemory few = EstimateLayerwiseMemory(c, 2, 64, 2);
  EXPECT_EQ(few.Total(), few.residual + few.layer_weights + few.load_mapping);
}

}  // namespace
}  // namespace qf
