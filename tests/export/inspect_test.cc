// Inspection: tensor formats recognised from names, dtypes and siblings in both export layouts
// and in an unquantized checkpoint; totals and BPE; the declared config; a checkpoint written
// through CheckpointWriter read back by InspectCheckpoint; the --json line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "quantforge/error.h"
#include "quantforge/export.h"
#include "tests/export/export_test_util.h"

namespace qf {
namespace {

TensorInfo Info(std::string name, DType dtype, Shape shape) {
  TensorInfo t;
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.data_end = static_cast<uint64_t>(NumElements(t.shape)) * DTypeSize(dtype);
  return t;
}

const InspectedTensor& Find(const InspectReport& r, std::string_view name) {
  for (const InspectedTensor& t : r.tensors) {
    if (t.name == name) return t;
  }
  ADD_FAILURE() << "no tensor " << name;
  return r.tensors.front();
}

TEST(ExportInspect, Nvfp4ModelOptBpe) {
  // One NVFP4 W4A4 linear [64, 128]: 4096 B codes + 512 B block scales + two 4 B scalars over
  // 8192 logical elements: 8 * 4616 / 8192 = 4.5078125 = 4.5 + 64 / 8192.
  const std::vector<TensorInfo> t = {
      Info("l.weight", DType::kU8, {64, 64}), Info("l.weight_scale", DType::kF8E4M3, {64, 8}),
      Info("l.weight_scale_2", DType::kF32, {}), Info("l.input_scale", DType::kF32, {})};
  const InspectReport r = InspectTensors(t, "", R"({"producer": {}, "quantization": {}})");
  EXPECT_EQ(Find(r, "l.weight").format, "NVFP4 packed weight");
  EXPECT_EQ(Find(r, "l.weight").num_logical_elements, 8192);
  EXPECT_EQ(Find(r, "l.weight_scale").format, "NVFP4 block scale");
  EXPECT_EQ(Find(r, "l.weight_scale_2").format, "NVFP4 global scale");
  EXPECT_EQ(Find(r, "l.input_scale").format, "input scale");
  EXPECT_EQ(r.total_bytes, 4616u);
  EXPECT_EQ(r.total_logical_elements, 8192);
  EXPECT_DOUBLE_EQ(r.bpe, 4.5078125);
  EXPECT_EQ(r.layout, "modelopt");
}

TEST(ExportInspect, CompressedTensorsAndOtherFormats) {
  const std::vector<TensorInfo> t = {Info("a.weight_packed", DType::kU8, {8, 16}),
                                     Info("a.weight_scale", DType::kF8E4M3, {8, 2}),
                                     Info("a.weight_global_scale", DType::kF32, {1}),
                                     Info("a.input_global_scale", DType::kF32, {1}),
                                     Info("b.weight", DType::kF8E4M3, {8, 32}),
                                     Info("b.weight_scale", DType::kF32, {1}),
                                     Info("c.weight", DType::kF8E4M3, {8, 64}),
                                     Info("c.weight_scale", DType::kU8, {8, 2}),
                                     Info("d.weight", DType::kU8, {8, 32}),
                                     Info("d.weight_scale", DType::kU8, {8, 2}),
                                     Info("e.weight", DType::kF8E4M3, {8, 32}),
                                     Info("e.weight_scale", DType::kF32, {8, 1}),
                                     Info("attn.k_proj.k_scale", DType::kF32, {}),
                                     Info("norm.weight", DType::kBF16, {64})};
  const InspectReport r =
      InspectTensors(t, R"({"quantization_config": {"quant_method": "compressed-tensors"}})", "");
  EXPECT_EQ(r.layout, "compressed-tensors");
  EXPECT_EQ(Find(r, "a.weight_packed").format, "NVFP4 packed weight");
  EXPECT_EQ(Find(r, "a.weight_global_scale").format, "NVFP4 global scale (reciprocal)");
  EXPECT_EQ(Find(r, "b.weight").format, "FP8 E4M3 weight");
  EXPECT_EQ(Find(r, "b.weight_scale").format, "FP8 per-tensor scale");
  EXPECT_EQ(Find(r, "c.weight").format, "MXFP8 weight");
  EXPECT_EQ(Find(r, "c.weight_scale").format, "MX E8M0 block scale");
  EXPECT_EQ(Find(r, "d.weight").format, "MXFP4 packed weight");
  EXPECT_EQ(Find(r, "d.weight").num_logical_elements, 8 * 64);
  EXPECT_EQ(Find(r, "e.weight_scale").format, "FP8 per-channel scale");
  EXPECT_EQ(Find(r, "attn.k_proj.k_scale").format, "KV cache scale");
  EXPECT_EQ(Find(r, "norm.weight").format, "BF16");
  EXPECT_EQ(r.format_counts.at("NVFP4 packed weight"), 1);
}

TEST(ExportInspect, UnquantizedCheckpointIsSixteenBits) {
  const std::vector<TensorInfo> t = {Info("model.embed_tokens.weight", DType::kBF16, {32, 16}),
                                     Info("model.norm.weight", DType::kBF16, {16})};
  const InspectReport r = InspectTensors(t, R"({"hidden_size": 16})", "");
  EXPECT_DOUBLE_EQ(r.bpe, 16.0);
  EXPECT_EQ(r.layout, "none");
  EXPECT_EQ(r.quantization_config, "null");
  EXPECT_THROW(InspectTensors(t, "[1]", ""), Error);
}

TEST(ExportInspect, WrittenCheckpointAndJsonLine) {
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / "qf_export_inspect_ckpt";
  std::filesystem::remove_all(dir);
  const std::vector<float> w = testutil::RandomWeights(32, 64, 11);
  std::vector<ExportTensor> tensors =
      ExportLinear({"model.layers.0.mlp.up_proj",
                    QuantizeNvfp4(MakeView(std::span(w), {32, 64}), {}),
                    false,
                    {}},
                   ExportFormat::kModelOpt);
  tensors.push_back({"model.norm.weight",
                     DType::kBF16,
                     {64},
                     testutil::ToBf16Bytes(std::vector<float>(w.begin(), w.begin() + 64))});
  testutil::WriteCheckpoint(dir, tensors);
  ExportManifest m;
  m.quantized = {{"model.layers.0.mlp.up_proj", QuantAlgo::kW4A16Nvfp4, false}};
  WriteQuantConfigFiles(dir, dir / "no_such_config.json", m, ExportFormat::kModelOpt);

  const InspectReport r = InspectCheckpoint(dir);
  EXPECT_EQ(r.layout, "modelopt");
  ASSERT_EQ(r.tensors.size(), 4u);
  // (1024 + 128 + 4 + 128) bytes * 8 / (2048 + 64) elements.
  EXPECT_DOUBLE_EQ(r.bpe, 8.0 * 1284 / 2112);
  const auto json = nlohmann::json::parse(InspectReportJson(r));
  EXPECT_DOUBLE_EQ(json["bpe"].get<double>(), r.bpe);
  EXPECT_EQ(json["tensors"][0]["name"], "model.layers.0.mlp.up_proj.weight");
  EXPECT_EQ(json["tensors"][0]["format"], "NVFP4 packed weight");
  EXPECT_EQ(json["tensors"][0]["shape"], nlohmann::json::array({32, 32}));
  EXPECT_EQ(json["tensors"][0]["bytes"], 1024);
  EXPECT_EQ(json["quantization_config"]["quant_algo"], "W4A16_NVFP4");
  EXPECT_THAT(InspectReportText(r), ::testing::HasSubstr("BPE: 4.8636"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qf
