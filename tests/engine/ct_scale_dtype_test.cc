// compressed-tensors FP8 checkpoints as llm-compressor writes them: weight_scale and input_scale
// in the model's dtype (BF16), not F32 (compressed-tensors' initialize_module_for_quantization
// gives scales module.weight.dtype). eval must read them, widened exactly as vLLM does, and
// dequantize e4m3(code) * scale; the reference here decodes the stored bytes independently.
#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "quantforge/checkpoint.h"
#include "quantforge/eval.h"
#include "quantforge/formats.h"
#include "quantforge/pipeline.h"
#include "quantforge/synth.h"
#include "quantforge/thread_pool.h"

namespace qf {
namespace {

namespace fs = std::filesystem;

uint16_t Bf16Bits(const std::byte* f32) {
  float v;
  std::memcpy(&v, f32, 4);
  return EncodeBF16(v);
}

TEST(CtScaleDtype, Bf16Fp8ScalesAreReadAndWidened) {
  const fs::path root = fs::temp_directory_path() / ("qf_ct_bf16_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "orig");
  ThreadPool pool(2);
  GenerateLlamaCheckpoint(root / "orig", *LlamaPreset("tiny"), SynthCheckpointOptions{}, &pool);
  {
    std::mt19937 rng(3);
    std::ofstream calib(root / "calib.jsonl");
    for (int doc = 0; doc < 8; ++doc) {
      std::vector<int32_t> ids(64);
      for (int32_t& t : ids) t = static_cast<int32_t>(rng() % 256);
      calib << nlohmann::json{{"input_ids", ids}}.dump() << "\n";
    }
  }
  QuantizeOptions o;
  o.model = root / "orig";
  o.recipe = "FP8_DEFAULT_CFG";  // W8A8: per-tensor weight_scale and static input_scale
  o.out = root / "fp8_ct";
  o.format = ExportFormat::kCompressedTensors;
  o.sync_to_disk = false;
  o.calib_data = root / "calib.jsonl";
  o.calib_samples = 8;
  o.calib_seq_len = 64;
  RunQuantize(o, &pool);

  // The same checkpoint with every F32 scale rewritten as BF16.
  const fs::path dir = root / "fp8_ct_bf16";
  fs::create_directories(dir);
  fs::copy_file(o.out / "config.json", dir / "config.json");
  const Checkpoint src = Checkpoint::Open(o.out);
  std::vector<TensorSpec> plan;
  std::map<std::string, std::vector<std::byte>> bytes;
  int64_t rewritten = 0;
  for (const TensorInfo& info : src.Tensors()) {
    const TensorView view = src.View(info);
    std::vector<std::byte> data(view.data.begin(), view.data.end());
    DType dtype = info.dtype;
    const bool scale = info.name.ends_with(".weight_scale") || info.name.ends_with(".input_scale");
    if (scale && dtype == DType::kF32) {
      std::vector<std::byte> bf16(data.size() / 2);
      for (size_t i = 0; i < data.size() / 4; ++i) {
        const uint16_t bits = Bf16Bits(data.data() + 4 * i);
        std::memcpy(bf16.data() + 2 * i, &bits, 2);
      }
      data = std::move(bf16);
      dtype = DType::kBF16;
      ++rewritten;
    }
    plan.push_back({info.name, dtype, info.shape});
    bytes[info.name] = std::move(data);
  }
  ASSERT_GT(rewritten, 0);
  {
    CheckpointWriter writer(dir, plan);
    for (const auto& [name, data] : bytes) writer.Write(name, data);
    writer.Finish();
  }

  const QuantizedCheckpoint q = OpenQuantizedCheckpoint(dir, &pool);
  const Checkpoint raw = Checkpoint::Open(dir);
  ASSERT_FALSE(q.scheme.linears.empty());
  for (const auto& [module, linear] : q.scheme.linears) {
    EXPECT_EQ(linear.weight, StoredWeightFormat::kFp8PerTensor) << module;
    uint16_t bits;
    std::memcpy(&bits, raw.View(*raw.Find(module + ".input_scale")).data.data(), 2);
    EXPECT_EQ(std::bit_cast<uint32_t>(linear.input.input_scale),
              std::bit_cast<uint32_t>(DecodeBF16(bits)))
        << module;
    std::memcpy(&bits, raw.View(*raw.Find(module + ".weight_scale")).data.data(), 2);
    const float weight_scale = DecodeBF16(bits);
    const TensorView codes = raw.View(*raw.Find(module + ".weight"));
    const std::optional<TensorView> loaded = q.weights->Find(module + ".weight");
    ASSERT_TRUE(loaded.has_value()) << module;
    ASSERT_EQ(loaded->dtype, DType::kF32);
    ASSERT_EQ(loaded->data.size(), codes.data.size() * 4) << module;
    int64_t mismatches = 0;
    for (size_t i = 0; i < codes.data.size(); ++i) {
      const float expected = DecodeE4M3(static_cast<uint8_t>(codes.data[i])) * weight_scale;
      float got;
      std::memcpy(&got, loaded->data.data() + 4 * i, 4);
      if (std::bit_cast<uint32_t>(got) != std::bit_cast<uint32_t>(expected) && mismatches++ < 3) {
        ADD_FAILURE() << module << " index " << i << " code 0x" << std::hex
                      << static_cast<int>(codes.data[i]) << " expected 0x"
                      << std::bit_cast<uint32_t>(expected) << " found 0x"
                      << std::bit_cast<uint32_t>(got);
      }
    }
    EXPECT_EQ(mismatches, 0) << module;
  }
  fs::remove_all(root);
}

}  // namespace
}  // namespace qf
