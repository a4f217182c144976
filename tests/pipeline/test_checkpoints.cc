// Test checkpoints for the pipeline tests.
#include "tests/pipeline/test_checkpoints.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

#include "quantforge/checkpoint.h"
#include "quantforge/error.h"
#include "quantforge/formats.h"
#include "quantforge/pipeline.h"
#include "quantforge/thread_pool.h"

namespace qf::testing {
namespace {

std::vector<float> HeavyTailed(int64_t count, std::mt19937& rng, float scale) {
  std::student_t_distribution<float> t(4.0f);
  std::vector<float> v(static_cast<size_t>(count));
  for (float& x : v) x = scale * t(rng);
  return v;
}

std::vector<uint8_t> Encode(const TestTensor& t) {
  std::vector<uint8_t> bytes;
  if (t.dtype == DType::kBF16) {
    for (float x : t.values) {
      const uint16_t b = EncodeBF16(x);
      bytes.push_back(static_cast<uint8_t>(b & 0xFF));
      bytes.push_back(static_cast<uint8_t>(b >> 8));
    }
  } else {
    bytes.resize(t.values.size() * 4);
    std::memcpy(bytes.data(), t.values.data(), bytes.size());
  }
  return bytes;
}

}  // namespace

std::vector<TestTensor> TinyLlamaTensors(uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t hidden = 32, inter = 48, vocab = 64;
  std::vector<TestTensor> t;
  auto add = [&](std::string name, Shape shape, float scale) {
    const int64_t n = NumElements(shape);
    t.push_back(TestTensor{std::move(name), std::move(shape), DType::kBF16,
                           HeavyTailed(n, rng, scale)});
  };
  add("model.embed_tokens.weight", {vocab, hidden}, 0.05f);
  const std::string p = "model.layers.0.";
  add(p + "input_layernorm.weight", {hidden}, 0.1f);
  add(p + "post_attention_layernorm.weight", {hidden}, 0.1f);
  add(p + "self_attn.q_proj.weight", {hidden, hidden}, 0.02f);
  add(p + "self_attn.k_proj.weight", {hidden / 2, hidden}, 0.03f);
  add(p + "self_attn.v_proj.weight", {hidden / 2, hidden}, 0.01f);
  add(p + "self_attn.o_proj.weight", {hidden, hidden}, 0.02f);
  add(p + "mlp.gate_proj.weight", {inter, hidden}, 0.02f);
  add(p + "mlp.up_proj.weight", {inter, hidden}, 0.04f);
  add(p + "mlp.down_proj.weight", {hidden, inter}, 0.02f);
  add("model.norm.weight", {hidden}, 0.1f);
  add("lm_head.weight", {vocab, hidden}, 0.05f);
  return t;
}

void WriteCheckpoint(const std::filesystem::path& dir, const std::vector<TestTensor>& tensors) {
  std::filesystem::create_directories(dir);
  std::vector<TensorSpec> specs;
  for (const TestTensor& t : tensors) specs.push_back(TensorSpec{t.name, t.dtype, t.shape});
  CheckpointWriter writer(dir, specs);
  for (const TestTensor& t : tensors) {
    const std::vector<uint8_t> bytes = Encode(t);
    writer.Write(t.name, std::as_bytes(std::span(bytes)));
  }
  writer.Finish();
  std::ofstream(dir / "config.json") << R"({
  "architectures": ["LlamaForCausalLM"],
  "model_type": "llama",
  "hidden_size": 32,
  "intermediate_size": 48,
  "num_hidden_layers": 1,
  "num_attention_heads": 4,
  "num_key_value_heads": 2,
  "vocab_size": 64,
  "torch_dtype": "bfloat16"
}
)";
}

std::filesystem::path FreshDir(const std::string& name) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                                    ("qf_pipeline_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::map<std::string, std::string> ReadTree(const std::filesystem::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    files[std::filesystem::relative(entry.path(), dir).string()] = ss.str();
  }
  return files;
}

std::string ReadText(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

float ScalarF32(const Checkpoint& checkpoint, const std::string& name) {
  const TensorInfo* info = checkpoint.Find(name);
  EXPECT_NE(info, nullptr) << name;
  if (info == nullptr) return NAN;
  float v;
  std::memcpy(&v, checkpoint.View(*info).data.data(), sizeof(v));
  return v;
}

std::vector<std::string> ListDir(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

void ExpectQuantizeRefused(const QuantizeOptions& options, const std::string& needle) {
  const std::filesystem::path parent = options.out.parent_path();
  const auto before = ReadTree(options.model);
  const auto listing = ListDir(parent);
  try {
    ThreadPool pool(2);
    RunQuantize(options, &pool);
    ADD_FAILURE() << "expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
  EXPECT_EQ(ListDir(parent), listing) << "something was left behind";
  EXPECT_EQ(ReadTree(options.model), before) << "the input was modified";
}

}  // namespace qf::testing
