// The run-time quantizers of SimulationHooks against direct scalar implementations written here
// (their own E4M3 table and E2M1 threshold chain, independent of src/numerics): NVFP4 inputs
// (Model Optimizer's fp4_fake_quant_block), FP8 static inputs, FP8 per token, FP8 K / V; input
// scale resolution over fused groups; MXFP8 / MXFP4 inputs; the scheme summary line.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <random>

#include "quantforge/error.h"
#include "quantforge/eval.h"

namespace qf {
namespace {

// Every finite non-negative E4M3 value, by code (0x00..0x7E): e == 0 subnormal m/8 * 2^-6,
// else (1 + m/8) * 2^(e-7); 0x7F is NaN.
std::vector<double> E4M3Values() {
  std::vector<double> values;
  for (int code = 0; code < 0x7F; ++code) {
    const int e = code >> 3, m = code & 7;
    values.push_back(e == 0 ? m / 8.0 * std::ldexp(1.0, -6)
                            : (1 + m / 8.0) * std::ldexp(1.0, e - 7));
  }
  return values;
}

// Round |x| to E4M3, nearest, ties to the even code, saturating at 448; sign kept.
float RefE4M3(float x) {
  static const std::vector<double> values = E4M3Values();
  const double a = std::min(std::abs(static_cast<double>(x)), 448.0);
  size_t best = 0;
  for (size_t c = 1; c < values.size(); ++c) {
    const double d = std::abs(values[c] - a), b = std::abs(values[best] - a);
    if (d < b || (d == b && c % 2 == 0)) best = c;
  }
  return static_cast<float>(std::signbit(x) ? -values[best] : values[best]);  // -0 stays -0
}

// Model Optimizer's E2M1 threshold chain (fp4_fake_quant_block), on a magnitude.
float RefE2M1(float a) {
  if (a <= 0.25f) return 0.0f;
  if (a < 0.75f) return 0.5f;
  if (a <= 1.25f) return 1.0f;
  if (a < 1.75f) return 1.5f;
  if (a <= 2.5f) return 2.0f;
  if (a < 3.5f) return 3.0f;
  if (a <= 5.0f) return 4.0f;
  return 6.0f;
}

std::vector<float> RefNvfp4(std::vector<float> x, float input_scale) {
  for (size_t b = 0; b < x.size(); b += 16) {
    const size_t e = std::min(x.size(), b + 16);
    float amax = 0;
    for (size_t i = b; i < e; ++i) amax = std::max(amax, std::abs(x[i]));
    float s = RefE4M3(std::min(amax / (6.0f * input_scale), 448.0f)) * input_scale;
    if (s < 1e-5f) s = 1.0f;
    for (size_t i = b; i < e; ++i) {
      const float q = RefE2M1(std::abs(x[i]) / s) * s;
      x[i] = x[i] >= 0 ? q : -q;
    }
  }
  return x;
}

void ExpectSameBits(const std::vector<float>& input, const std::vector<float>& expected,
                    const std::vector<float>& actual, const char* what) {
  ASSERT_EQ(expected.size(), actual.size());
  int64_t mismatches = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    if (std::bit_cast<uint32_t>(expected[i]) != std::bit_cast<uint32_t>(actual[i])) {
      if (++mismatches <= 5) {
        ADD_FAILURE() << what << " index " << i << " input " << input[i] << " (0x" << std::hex
                      << std::bit_cast<uint32_t>(input[i]) << ") expected 0x"
                      << std::bit_cast<uint32_t>(expected[i]) << " found 0x"
                      << std::bit_cast<uint32_t>(actual[i]) << std::dec;
      }
    }
  }
  EXPECT_EQ(mismatches, 0) << what;
}

// Seeded rows: normal, heavy-tailed outliers, an all-zero block, a tiny block (scale guard),
// values beyond the calibrated amax (saturation), and a partial last block.
std::vector<float> TestRow(uint32_t seed, int64_t n) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = normal(rng);
  for (int i = 0; i < n / 20; ++i) x[rng() % n] *= 30.0f;    // outliers past the global amax
  std::fill(x.begin() + 16, x.begin() + 32, 0.0f);           // zero block
  for (int i = 32; i < 48; ++i) x[i] = normal(rng) * 1e-7f;  // tiny block
  x[48] = -0.0f;
  return x;
}

TEST(Simulate, Nvfp4InputMatchesScalarReference) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    const int64_t n = seed % 2 ? 256 : 200;  // 200: a partial last block of 8
    const std::vector<float> x = TestRow(seed, n);
    for (const float input_scale : {4.0f / 2688.0f, 30.0f / 2688.0f, 1.0f}) {
      std::vector<float> actual = x;
      FakeQuantNvfp4Input(actual.data(), n, input_scale);
      ExpectSameBits(x, RefNvfp4(x, input_scale), actual, "nvfp4");
    }
  }
  // Hand-made: amax 6 with input_scale 1/256 -> block scale e4m3(6 / (6/256)) = 256, s = 1:
  // values round to the E2M1 grid directly (ties to even: 2.5 -> 2, 0.75 -> 1, 5 -> 4).
  std::vector<float> x = {6, 2.5f, 0.75f, 5, -1.75f, 0.2f, 3.49f, -6, 0, 0, 0, 0, 0, 0, 0, 0};
  FakeQuantNvfp4Input(x.data(), 16, 1.0f / 256.0f);
  const std::vector<float> expected = {6, 2, 1, 4, -2, 0, 3, -6, 0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(x, expected);
}

TEST(Simulate, Fp8MatchesScalarReference) {
  for (uint32_t seed = 1; seed <= 10; ++seed) {
    const std::vector<float> x = TestRow(seed, 256);
    const float scale = 3.0f / 448.0f;  // calibrated amax 3: outliers saturate at 448 * scale
    std::vector<float> expected = x, actual = x;
    for (float& v : expected) v = RefE4M3(v / scale) * scale;
    FakeQuantFp8(actual.data(), 256, scale);
    ExpectSameBits(x, expected, actual, "fp8 static");

    float amax = 0;
    for (float v : x) amax = std::max(amax, std::abs(v));
    expected = x;
    for (float& v : expected) v = RefE4M3(v / (amax / 448.0f)) * (amax / 448.0f);
    actual = x;
    FakeQuantFp8PerToken(actual.data(), 256);
    ExpectSameBits(x, expected, actual, "fp8 per token");
  }
  std::vector<float> zeros(32, 0.0f);
  FakeQuantFp8PerToken(zeros.data(), 32);
  EXPECT_EQ(zeros, std::vector<float>(32, 0.0f));
  // vLLM's dynamic_per_token_scaled_fp8_quant floors the scale at 1 / (448 * 512) (FBGEMM's
  // bound): a row with amax below 1/512 is quantized on that grid, not on amax / 448's.
  for (const float row_amax : {1e-3f, 1.0f / 512.0f, 3e-3f}) {
    std::vector<float> x = TestRow(3, 64);
    float amax = 0;
    for (float v : x) amax = std::max(amax, std::abs(v));
    for (float& v : x) v *= row_amax / amax;
    amax = 0;
    for (float v : x) amax = std::max(amax, std::abs(v));
    const float scale = std::max(amax / 448.0f, 1.0f / 229376.0f);
    std::vector<float> expected = x, actual = x;
    for (float& v : expected) v = RefE4M3(v / scale) * scale;
    FakeQuantFp8PerToken(actual.data(), 64);
    ExpectSameBits(x, expected, actual, "fp8 per token, small row");
  }
}

QuantizationScheme TinyScheme() {
  QuantizationScheme scheme;
  scheme.layout = "modelopt";
  for (const char* m : {"q_proj", "k_proj", "v_proj"}) {
    scheme.linears[std::string("model.layers.0.self_attn.") + m] = {
        "NVFP4", StoredWeightFormat::kNvfp4, {InputQuantKind::kNvfp4, 2.0f / 2688.0f}};
  }
  scheme.linears["model.layers.0.mlp.down_proj"] = {
      "FP8", StoredWeightFormat::kFp8PerTensor, {InputQuantKind::kFp8Static, 0.5f / 448.0f}};
  scheme.kv["model.layers.0.self_attn"] = {0.25f, 0.125f};
  return scheme;
}

TEST(Simulate, HooksQuantizeEachSiteAsTheSchemeSays) {
  SimulationHooks hooks(TinyScheme());
  const std::vector<std::string> qkv = {"model.layers.0.self_attn.q_proj",
                                        "model.layers.0.self_attn.k_proj",
                                        "model.layers.0.self_attn.v_proj"};
  const std::vector<std::string> k = {qkv[1]}, v = {qkv[2]};
  const std::vector<std::string> down = {"model.layers.0.mlp.down_proj"};
  const std::vector<std::string> o = {"model.layers.0.self_attn.o_proj"};
  const std::vector<float> x = TestRow(7, 2 * 48);  // two rows of 32 in a [2, 48] buffer
  const auto run = [&](ActivationKind kind, const std::vector<std::string>& modules) {
    std::vector<float> y = x;
    hooks.OnActivation({kind, 0, modules}, y.data(), 2, 32, 48);
    return y;
  };
  const auto expect_rows = [&](const std::vector<float>& y, const auto& f, const char* what) {
    std::vector<float> expected = x;
    for (int r = 0; r < 2; ++r) {
      std::vector<float> row(x.begin() + r * 48, x.begin() + r * 48 + 32);
      row = f(row);
      std::copy(row.begin(), row.end(), expected.begin() + r * 48);  // columns 32..47 untouched
    }
    ExpectSameBits(x, expected, y, what);
  };
  expect_rows(
      run(ActivationKind::kLinearInput, qkv),
      [](const std::vector<float>& r) { return RefNvfp4(r, 2.0f / 2688.0f); }, "qkv");
  expect_rows(
      run(ActivationKind::kLinearInput, down),
      [](std::vector<float> r) {
        for (float& a : r) a = RefE4M3(a / (0.5f / 448.0f)) * (0.5f / 448.0f);
        return r;
      },
      "down");
  expect_rows(
      run(ActivationKind::kKey, k),
      [](std::vector<float> r) {
        for (float& a : r) a = RefE4M3(a / 0.25f) * 0.25f;
        return r;
      },
      "k");
  expect_rows(
      run(ActivationKind::kValue, v),
      [](std::vector<float> r) {
        for (float& a : r) a = RefE4M3(a / 0.125f) * 0.125f;
        return r;
      },
      "v");
  EXPECT_EQ(run(ActivationKind::kLinearInput, o), x);  // o_proj not quantized: untouched
}

// MX inputs, per 32: X = 2^ceil(log2(amax / element_max)) (Model Optimizer's E8M0 rule, never
// clipping); MXFP8 elements E4M3 RNE, MXFP4 elements by Model Optimizer's export chain (the count
// of bounds strictly below |x|: ties round down).
std::vector<float> RefMx(std::vector<float> x, bool fp4) {
  static constexpr float kBounds[7] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
  static constexpr float kGrid[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  for (size_t b = 0; b < x.size(); b += 32) {
    float amax = 0;
    for (size_t i = b; i < b + 32; ++i) amax = std::max(amax, std::abs(x[i]));
    const float descale = amax / (fp4 ? 6.0f : 448.0f);
    const float scale =
        descale == 0 ? std::ldexp(1.0f, -127) : std::ldexp(1.0f, std::ceil(std::log2(descale)));
    for (size_t i = b; i < b + 32; ++i) {
      const float q = x[i] / scale;
      if (fp4) {
        int code = 0;
        for (float bound : kBounds) code += std::abs(q) > bound;
        x[i] = (q > 0 ? kGrid[code] : -kGrid[code]) * scale;
      } else {
        x[i] = RefE4M3(q) * scale;
      }
    }
  }
  return x;
}

TEST(Simulate, MxInputsMatchScalarReference) {
  for (const bool fp4 : {false, true}) {
    QuantizationScheme scheme;
    const std::string module = "model.layers.0.mlp.down_proj";
    scheme.linears[module] = {fp4 ? "MXFP4" : "MXFP8",
                              fp4 ? StoredWeightFormat::kMxfp4 : StoredWeightFormat::kMxfp8,
                              {fp4 ? InputQuantKind::kMxfp4 : InputQuantKind::kMxfp8, 0.0f}};
    SimulationHooks hooks(scheme);
    for (uint32_t seed = 1; seed <= 5; ++seed) {
      std::vector<float> x = TestRow(seed, 3 * 64);                    // three rows of 64
      std::vector<float> expected;
      for (int r = 0; r < 3; ++r) {
        const std::vector<float> row = RefMx({x.begin() + r * 64, x.begin() + (r + 1) * 64}, fp4);
        expected.insert(expected.end(), row.begin(), row.end());
      }
      std::vector<float> actual = x;
      hooks.OnActivation({ActivationKind::kLinearInput, 0, std::span(&module, 1)}, actual.data(), 3,
                         64, 64);
      ExpectSameBits(x, expected, actual, fp4 ? "mxfp4" : "mxfp8");
    }
  }
}

TEST(Simulate, FusedInputScalesResolve) {
  QuantizationScheme scheme = TinyScheme();
  const std::vector<std::string> qkv = {"model.layers.0.self_attn.q_proj",
                                        "model.layers.0.self_attn.k_proj",
                                        "model.layers.0.self_attn.v_proj"};
  EXPECT_EQ(ResolveInputQuantizer(scheme, qkv).input_scale, 2.0f / 2688.0f);
  // Unequal scales (not loadable as is): the max, with a warning.
  scheme.linears[qkv[1]].input.input_scale = 3.0f / 2688.0f;
  const InputQuantizer q = ResolveInputQuantizer(scheme, qkv);
  EXPECT_EQ(q.kind, InputQuantKind::kNvfp4);
  EXPECT_EQ(q.input_scale, 3.0f / 2688.0f);
  // Different kinds in one fused group, or a quantized member next to an unquantized one.
  scheme.linears[qkv[2]].input = {InputQuantKind::kFp8Static, 1.0f};
  EXPECT_THROW(ResolveInputQuantizer(scheme, qkv), Error);
  scheme.linears.erase(qkv[2]);
  EXPECT_THROW(ResolveInputQuantizer(scheme, qkv), Error);
  EXPECT_EQ(ResolveInputQuantizer(scheme, std::vector<std::string>{"lm_head"}).kind,
            InputQuantKind::kNone);
}

TEST(Simulate, SummaryLine) {
  QuantizationScheme scheme;
  EXPECT_EQ(scheme.Summary(), "unquantized");
  scheme.linears["a"] = {"NVFP4", StoredWeightFormat::kNvfp4, {InputQuantKind::kNvfp4, 1.0f}};
  scheme.linears["b"] = {"NVFP4", StoredWeightFormat::kNvfp4, {InputQuantKind::kNvfp4, 1.0f}};
  scheme.kv["attn"] = {};
  EXPECT_EQ(scheme.Summary(), "NVFP4 W4A4 (weights + activations), FP8 KV");
  scheme.linears["c"] = {"W4A16_NVFP4", StoredWeightFormat::kNvfp4, {}};
  EXPECT_EQ(scheme.Summary(),
            "mixed: 2 x NVFP4 W4A4 (weights + activations); 1 x NVFP4 W4A16 (weights only), "
            "FP8 KV");
}

}  // namespace
}  // namespace qf
