// Per-module layouts of both export formats: names, dtypes, shapes and scale values, written
// from the loader facts in docs/EXPORT.md (vLLM modelopt.py create_weights, compressed-tensors'
// NVFP4PackedCompressor and ModelOptNvfp4Converter), and the refusals (ragged last dimension,
// missing activation amax, MX in compressed-tensors).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "quantforge/error.h"
#include "quantforge/export.h"
#include "tests/export/export_test_util.h"

namespace qf {
namespace {

using ::testing::HasSubstr;

struct Expected {
  std::string name;
  DType dtype;
  Shape shape;
};

void ExpectLayout(const std::vector<ExportTensor>& got, const std::vector<Expected>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].name, want[i].name) << i;
    EXPECT_EQ(got[i].dtype, want[i].dtype) << want[i].name;
    EXPECT_EQ(got[i].shape, want[i].shape) << want[i].name;
    EXPECT_EQ(got[i].bytes.size(), NumElements(want[i].shape) * DTypeSize(want[i].dtype))
        << want[i].name;
  }
}

TEST(ExportLayout, Nvfp4W4A4ModelOpt) {
  const std::vector<float> w = testutil::RandomWeights(32, 64, 1);
  Nvfp4Tensor q = QuantizeNvfp4(MakeView(std::span(w), {32, 64}, "w"), {});
  const Nvfp4Tensor copy = q;
  const std::vector<ExportTensor> t = ExportLinear(
      {"m.q_proj", std::move(q), /*input_quantized=*/true, 5.376f}, ExportFormat::kModelOpt);
  // vLLM ModelOptNvFp4LinearMethod: weight U8 [out, in/2], weight_scale F8_E4M3 [out, in/16],
  // weight_scale_2 and input_scale F32 scalars (Model Optimizer writes 0-d tensors).
  ExpectLayout(t, {{"m.q_proj.weight", DType::kU8, {32, 32}},
                   {"m.q_proj.weight_scale", DType::kF8E4M3, {32, 4}},
                   {"m.q_proj.weight_scale_2", DType::kF32, {}},
                   {"m.q_proj.input_scale", DType::kF32, {}}});
  EXPECT_EQ(t[0].bytes, copy.codes);
  EXPECT_EQ(t[1].bytes, copy.block_scales);
  EXPECT_EQ(testutil::ScalarOf(t[2]), copy.global_scale);
  // input_scale = act_amax / (6 * 448): 5.376 / 2688 = 0.002 in fp32.
  EXPECT_EQ(testutil::ScalarOf(t[3]), 5.376f / 2688.0f);
  EXPECT_EQ(AlgoOf({"m", copy, true, 1.0f}), QuantAlgo::kNvfp4);
}

TEST(ExportLayout, Nvfp4WeightOnlyHasNoInputScale) {
  const std::vector<float> w = testutil::RandomWeights(16, 32, 2);
  Nvfp4Tensor q = QuantizeNvfp4(MakeView(std::span(w), {16, 32}, "w"), {});
  // W4A16_NVFP4: an input amax given by mistake is not written (the input quantizer is off).
  const auto t = ExportLinear({"m.down_proj", std::move(q), false, 3.0f}, ExportFormat::kModelOpt);
  ExpectLayout(t, {{"m.down_proj.weight", DType::kU8, {16, 16}},
                   {"m.down_proj.weight_scale", DType::kF8E4M3, {16, 2}},
                   {"m.down_proj.weight_scale_2", DType::kF32, {}}});
}

TEST(ExportLayout, Nvfp4CompressedTensorsReciprocalGlobals) {
  const std::vector<float> w = testutil::RandomWeights(16, 32, 3);
  Nvfp4Tensor q = QuantizeNvfp4(MakeView(std::span(w), {16, 32}, "w"), {});
  const Nvfp4Tensor copy = q;
  const auto t =
      ExportLinear({"m.up_proj", std::move(q), true, 10.0f}, ExportFormat::kCompressedTensors);
  // compressed-tensors nvfp4-pack-quantized: weight_packed, the same block-scale bytes, and the
  // globals as divisors of shape [1] (ModelOptNvfp4Converter: 1 / weight_scale_2, 1 / input_scale).
  ExpectLayout(t, {{"m.up_proj.weight_packed", DType::kU8, {16, 16}},
                   {"m.up_proj.weight_scale", DType::kF8E4M3, {16, 2}},
                   {"m.up_proj.weight_global_scale", DType::kF32, {1}},
                   {"m.up_proj.input_global_scale", DType::kF32, {1}}});
  EXPECT_EQ(t[0].bytes, copy.codes);
  EXPECT_EQ(t[1].bytes, copy.block_scales);
  EXPECT_EQ(testutil::ScalarOf(t[2]), 1.0f / copy.global_scale);
  EXPECT_EQ(testutil::ScalarOf(t[3]), 1.0f / (10.0f / 2688.0f));
}

TEST(ExportLayout, Fp8PerTensorAndPerChannel) {
  const std::vector<float> w = testutil::RandomWeights(8, 24, 4);
  const TensorView view = MakeView(std::span(w), {8, 24}, "w");
  Fp8Tensor per_tensor = QuantizeFp8(view, Fp8Granularity::kPerTensor);
  const float scale = per_tensor.scales[0];
  auto t = ExportLinear({"a.o_proj", std::move(per_tensor), true, 44.8f}, ExportFormat::kModelOpt);
  // FP8: weight F8_E4M3 [out, in], weight_scale F32 0-d = amax/448, input_scale = act_amax/448.
  ExpectLayout(t, {{"a.o_proj.weight", DType::kF8E4M3, {8, 24}},
                   {"a.o_proj.weight_scale", DType::kF32, {}},
                   {"a.o_proj.input_scale", DType::kF32, {}}});
  EXPECT_EQ(testutil::ScalarOf(t[1]), scale);
  EXPECT_EQ(testutil::ScalarOf(t[2]), 44.8f / 448.0f);

  Fp8Tensor per_channel = QuantizeFp8(view, Fp8Granularity::kPerChannel);
  const Fp8Tensor copy = per_channel;
  EXPECT_EQ(AlgoOf({"x", copy, false, {}}), QuantAlgo::kFp8PerChannel);
  t = ExportLinear({"a.o_proj", std::move(per_channel), false, {}}, ExportFormat::kModelOpt);
  ExpectLayout(t, {{"a.o_proj.weight", DType::kF8E4M3, {8, 24}},
                   {"a.o_proj.weight_scale", DType::kF32, {8}}});
  t = ExportLinear({"a.o_proj", copy, false, {}}, ExportFormat::kCompressedTensors);
  // compressed-tensors' channel strategy keeps a trailing 1: [out, 1].
  ExpectLayout(t, {{"a.o_proj.weight", DType::kF8E4M3, {8, 24}},
                   {"a.o_proj.weight_scale", DType::kF32, {8, 1}}});
  std::vector<float> scales(8);
  std::memcpy(scales.data(), t[1].bytes.data(), 32);
  EXPECT_EQ(scales, copy.scales);
}

TEST(ExportLayout, Fp8CompressedTensorsScalarsHaveShapeOne) {
  const std::vector<float> w = testutil::RandomWeights(4, 16, 5);
  auto t = ExportLinear(
      {"p", QuantizeFp8(MakeView(std::span(w), {4, 16}), Fp8Granularity::kPerTensor), true, 1.0f},
      ExportFormat::kCompressedTensors);
  ExpectLayout(t, {{"p.weight", DType::kF8E4M3, {4, 16}},
                   {"p.weight_scale", DType::kF32, {1}},
                   {"p.input_scale", DType::kF32, {1}}});
}

TEST(ExportLayout, Fp8WeightOnlyModelOptIsPerChannel) {
  // vLLM's FP8 per-tensor linear always applies a static input_scale (an absent one stays at its
  // -FLT_MAX placeholder), so weight-only FP8 is written as FP8_PER_CHANNEL_PER_TOKEN with the
  // per-tensor scale repeated per row: same codes, same dequantized values.
  const std::vector<float> w = testutil::RandomWeights(6, 32, 9);
  Fp8Tensor q = QuantizeFp8(MakeView(std::span(w), {6, 32}), Fp8Granularity::kPerTensor);
  const Fp8Tensor copy = q;
  EXPECT_EQ(ExportedAlgo(QuantAlgo::kFp8, false, ExportFormat::kModelOpt),
            QuantAlgo::kFp8PerChannel);
  EXPECT_EQ(ExportedAlgo(QuantAlgo::kFp8, true, ExportFormat::kModelOpt), QuantAlgo::kFp8);
  EXPECT_EQ(ExportedAlgo(QuantAlgo::kFp8, false, ExportFormat::kCompressedTensors),
            QuantAlgo::kFp8);
  const auto t = ExportLinear({"m.o_proj", std::move(q), false, {}}, ExportFormat::kModelOpt);
  ExpectLayout(t, {{"m.o_proj.weight", DType::kF8E4M3, {6, 32}},
                   {"m.o_proj.weight_scale", DType::kF32, {6}}});
  EXPECT_EQ(t[0].bytes, copy.codes);
  std::vector<float> scales(6);
  std::memcpy(scales.data(), t[1].bytes.data(), 24);
  EXPECT_EQ(scales, std::vector<float>(6, copy.scales[0]));
  // The declared layout agrees, so a writer plan from LinearLayout matches ExportLinear.
  EXPECT_EQ(
      LinearLayout("m.o_proj", QuantAlgo::kFp8, {6, 32}, false, ExportFormat::kModelOpt)[1].shape,
      Shape{6});
  // compressed-tensors keeps per-tensor weight-only FP8 (naive-quantized): scale [1].
  const auto ct = ExportLinear({"m.o_proj", copy, false, {}}, ExportFormat::kCompressedTensors);
  ExpectLayout(ct, {{"m.o_proj.weight", DType::kF8E4M3, {6, 32}},
                    {"m.o_proj.weight_scale", DType::kF32, {1}}});
}

TEST(ExportLayout, MxFormatsModelOptOnly) {
  const std::vector<float> w = testutil::RandomWeights(4, 64, 6);
  const TensorView view = MakeView(std::span(w), {4, 64});
  MxTensor mx4 = QuantizeMx(view, MxElement::kE2M1, MxScaleRule::kCeil);
  MxTensor mx8 = QuantizeMx(view, MxElement::kE4M3, MxScaleRule::kCeil);
  // MXFP4: packed U8 [out, in/2] + E8M0 U8 [out, in/32]; MXFP8: F8_E4M3 [out, in] + the same.
  ExpectLayout(ExportLinear({"e", mx4, false, {}}, ExportFormat::kModelOpt),
               {{"e.weight", DType::kU8, {4, 32}}, {"e.weight_scale", DType::kU8, {4, 2}}});
  ExpectLayout(ExportLinear({"e", mx8, false, {}}, ExportFormat::kModelOpt),
               {{"e.weight", DType::kF8E4M3, {4, 64}}, {"e.weight_scale", DType::kU8, {4, 2}}});
  try {
    ExportLinear({"e", mx4, false, {}}, ExportFormat::kCompressedTensors);
    FAIL() << "MXFP4 in compressed-tensors must be refused";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("--format modelopt"));
    EXPECT_EQ(e.context().tensor, "e.weight");
  }
}

TEST(ExportLayout, RaggedLastDimensionIsRefused) {
  // A layer whose `in` is not a multiple of the block must stay unquantized (and be excluded).
  try {
    LinearLayout("model.layers.0.mlp.down_proj", QuantAlgo::kNvfp4, {64, 40}, true,
                 ExportFormat::kModelOpt);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.context().tensor, "model.layers.0.mlp.down_proj.weight");
    EXPECT_THAT(e.what(), HasSubstr("40 is not a multiple of the NVFP4 block size 16"));
    EXPECT_THAT(e.what(), HasSubstr("excluded"));
  }
  EXPECT_THROW(LinearLayout("x", QuantAlgo::kMxfp8, {4, 48}, false, ExportFormat::kModelOpt),
               Error);
  EXPECT_NO_THROW(LinearLayout("x", QuantAlgo::kFp8, {4, 7}, false, ExportFormat::kModelOpt));
  // The quantizer pads a ragged tensor; the padded result is refused too.
  const std::vector<float> w = testutil::RandomWeights(2, 40, 7);
  Nvfp4Tensor padded = QuantizeNvfp4(MakeView(std::span(w), {2, 40}, "w"), {});
  ASSERT_EQ(padded.padded_cols, 48);
  try {
    ExportLinear({"r", std::move(padded), false, {}}, ExportFormat::kModelOpt);
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("padded to 48"));
  }
  EXPECT_THROW(LinearLayout("x", QuantAlgo::kFp8, {2, 3, 16}, false, ExportFormat::kModelOpt),
               Error);
}

TEST(ExportLayout, EnabledInputQuantizerNeedsAmax) {
  const std::vector<float> w = testutil::RandomWeights(2, 16, 8);
  Nvfp4Tensor q = QuantizeNvfp4(MakeView(std::span(w), {2, 16}), {});
  try {
    ExportLinear({"m.k_proj", q, true, std::nullopt}, ExportFormat::kModelOpt);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.context().tensor, "m.k_proj.weight");
    EXPECT_THAT(e.what(), HasSubstr("calibrate"));
  }
  EXPECT_THROW(ExportLinear({"m", q, true, 0.0f}, ExportFormat::kModelOpt), Error);
  EXPECT_THROW(ExportLinear({"m", q, true, std::nanf("")}, ExportFormat::kModelOpt), Error);
}

TEST(ExportLayout, KvScales) {
  const auto t = ExportKvScales("model.layers.3.self_attn", 44.8f, 8.96f, ExportFormat::kModelOpt);
  ExpectLayout(t, {{"model.layers.3.self_attn.k_proj.k_scale", DType::kF32, {}},
                   {"model.layers.3.self_attn.v_proj.v_scale", DType::kF32, {}}});
  EXPECT_EQ(testutil::ScalarOf(t[0]), 44.8f / 448.0f);
  EXPECT_EQ(testutil::ScalarOf(t[1]), 8.96f / 448.0f);
  EXPECT_EQ(KvScaleLayout("a", ExportFormat::kCompressedTensors)[0].shape, Shape{1});
  EXPECT_THROW(ExportKvScales("a", 0.0f, 1.0f, ExportFormat::kModelOpt), Error);
}

TEST(ExportLayout, NamesRoundTrip) {
  EXPECT_EQ(ParseExportFormat("modelopt"), ExportFormat::kModelOpt);
  EXPECT_EQ(ParseExportFormat("compressed-tensors"), ExportFormat::kCompressedTensors);
  EXPECT_EQ(ParseExportFormat("gguf"), std::nullopt);
  EXPECT_EQ(QuantAlgoName(QuantAlgo::kW4A16Nvfp4), "W4A16_NVFP4");
  EXPECT_EQ(QuantAlgoGroupSize(QuantAlgo::kNvfp4), 16);
  EXPECT_EQ(QuantAlgoGroupSize(QuantAlgo::kFp8), 0);
  EXPECT_EQ(QuantAlgoGroupSize(QuantAlgo::kMxfp8), 32);
}

}  // namespace
}  // namespace qf
