// GPTQ for each weight format (calib.h): the element quantizers the sweep of gptq_core.h calls,
// and the public GptqNvfp4 / GptqFp8 / GptqMx entry points.
//
// Initial scales come from the numerics core's own quantizers on the original weights, so the
// result carries exactly the scales (and global scale) QuantizeNvfp4 / QuantizeFp8 / QuantizeMx
// would give, and only the codes differ from round-to-nearest. Each element is then encoded with
// the format's own arithmetic (docs/FORMATS.md): NVFP4 e2m1(w / (s * g)), FP8 e4m3(w / scale),
// MX element(w / 2^e); the value propagated is the dequantized code, as an exporter would read it.
#include <string>

#include "quantforge/error.h"
#include "quantforge/formats.h"
#include "src/calib/gptq_core.h"
#include "src/calib/nvfp4_block.h"
#include "src/quant/mx_reference.h"

namespace qf {
namespace {

// Read-modify-write of one nibble: `codes` must already hold the round-to-nearest codes (the
// quantizers write every byte), so the other nibble of the byte keeps its value.
void SetNibble(std::span<uint8_t> codes, int64_t index, uint8_t code) {
  uint8_t& byte = codes[static_cast<size_t>(index / 2)];
  byte = index % 2 == 0 ? static_cast<uint8_t>((byte & 0xF0) | code)
                        : static_cast<uint8_t>((byte & 0x0F) | (code << 4));
}

void CheckWeight(std::span<const float> w, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0 || static_cast<int64_t>(w.size()) != rows * cols) {
    throw Error("GPTQ weight holds " + std::to_string(w.size()) + " floats for shape [" +
                std::to_string(rows) + ", " + std::to_string(cols) + "]; expected rows * cols > 0");
  }
}

// NVFP4 with every block scale known before the sweep, or (group_start) chosen by `rule` when
// the sweep reaches the block.
class Nvfp4Quantizer : public calib::GptqElementQuantizer {
 public:
  Nvfp4Quantizer(Nvfp4Tensor& out, const calib::Nvfp4BlockRule* group_start_rule)
      : out_(out), rule_(group_start_rule), blocks_per_row_(out.padded_cols / kNvfp4BlockSize) {}
  int64_t GroupSize() const override { return rule_ != nullptr ? kNvfp4BlockSize : 0; }
  void StartGroup(int64_t row, int64_t first_col, std::span<const float> values) override {
    float block[16] = {};  // the padding of a partial last block is zero, as in QuantizeNvfp4
    for (size_t k = 0; k < values.size(); ++k) block[k] = values[k];
    uint8_t codes[16], chosen = 0;
    const int64_t b = row * blocks_per_row_ + first_col / kNvfp4BlockSize;
    out_.block_scales[b] = calib::ChooseNvfp4BlockScale(block, {}, *rule_, codes, &chosen);
    if (!out_.chosen_candidate.empty()) out_.chosen_candidate[b] = chosen;
  }
  float Quantize(int64_t row, int64_t col, float w) override {
    const float s = DecodeE4M3(out_.block_scales[row * blocks_per_row_ + col / kNvfp4BlockSize]);
    const float g = out_.global_scale;
    const uint8_t code = EncodeE2M1(w / (s * g));
    SetNibble(out_.codes, row * out_.padded_cols + col, code);
    return (DecodeE2M1(code) * s) * g;
  }

 private:
  Nvfp4Tensor& out_;
  const calib::Nvfp4BlockRule* rule_;
  int64_t blocks_per_row_;
};

class Fp8Quantizer : public calib::GptqElementQuantizer {
 public:
  explicit Fp8Quantizer(Fp8Tensor& out) : out_(out) {}
  float Quantize(int64_t row, int64_t col, float w) override {
    const float scale = out_.scales.size() == 1 ? out_.scales[0] : out_.scales[row];
    const uint8_t code = EncodeE4M3(w / scale);
    out_.codes[row * out_.cols + col] = code;
    return DecodeE4M3(code) * scale;
  }

 private:
  Fp8Tensor& out_;
};

class MxQuantizer : public calib::GptqElementQuantizer {
 public:
  MxQuantizer(MxTensor& out, MxScaleRule rule) : out_(out), rule_(rule) {}
  float Quantize(int64_t row, int64_t col, float w) override {
    const int64_t blocks_per_row = out_.padded_cols / kMxBlockSize;
    const float scale = DecodeE8M0(out_.scales[row * blocks_per_row + col / kMxBlockSize]);
    const float x = w / scale;
    if (out_.element == MxElement::kE4M3) {
      const uint8_t code = EncodeE4M3(x);
      out_.codes[row * out_.padded_cols + col] = code;
      return DecodeE4M3(code) * scale;
    }
    // The element rounding QuantizeMx uses for this scale rule (see mx_reference.h).
    const uint8_t code =
        rule_ == MxScaleRule::kCeil ? ReferenceModelOptMxfp4Element(x) : EncodeE2M1(x);
    SetNibble(out_.codes, row * out_.padded_cols + col, code);
    return DecodeE2M1(code) * scale;
  }

 private:
  MxTensor& out_;
  MxScaleRule rule_;
};

}  // namespace

Nvfp4Tensor GptqNvfp4(std::span<const float> w, int64_t rows, int64_t cols, const Hessian& h,
                      const GptqOptions& options, const Nvfp4Options& nvfp4, ThreadPool* pool,
                      GptqStats* stats) {
  CheckWeight(w, rows, cols);
  // Validates the weights (NaN / Inf, a global_amax override below the own amax) and gives the
  // global scale and, for kFixedBeforeUpdates, every block scale.
  Nvfp4Tensor out = QuantizeNvfp4(MakeView(w, {rows, cols}), nvfp4, pool);
  if (options.scale_timing == GptqScaleTiming::kFixedBeforeUpdates) {
    return GptqNvfp4FromScales(w, rows, cols, h, options, out, pool, stats);
  }
  // The global scale stays the one of the original weights (Model Optimizer fixes global_amax
  // before any search); updated weights above it saturate at scale 448 and E2M1 6.
  const calib::Nvfp4BlockRule rule = calib::MakeNvfp4BlockRule(nvfp4, out.global_amax, false);
  Nvfp4Quantizer quantizer(out, &rule);
  calib::RunGptq(w, rows, cols, h, options, quantizer, pool, stats);
  return out;
}

Nvfp4Tensor GptqNvfp4FromScales(std::span<const float> w, int64_t rows, int64_t cols,
                                const Hessian& h, const GptqOptions& options,
                                const Nvfp4Tensor& initial, ThreadPool* pool, GptqStats* stats) {
  CheckWeight(w, rows, cols);
  if (options.scale_timing != GptqScaleTiming::kFixedBeforeUpdates) {
    throw Error("GPTQ from given NVFP4 scales needs scale_timing kFixedBeforeUpdates");
  }
  const int64_t padded_cols = (cols + kNvfp4BlockSize - 1) / kNvfp4BlockSize * kNvfp4BlockSize;
  if (initial.rows != rows || initial.cols != cols || initial.padded_cols != padded_cols ||
      static_cast<int64_t>(initial.block_scales.size()) != rows * padded_cols / kNvfp4BlockSize ||
      static_cast<int64_t>(initial.codes.size()) != rows * padded_cols / 2) {
    throw Error("initial NVFP4 tensor is [" + std::to_string(initial.rows) + ", " +
                std::to_string(initial.cols) + "] with " +
                std::to_string(initial.block_scales.size()) + " block scales; expected [" +
                std::to_string(rows) + ", " + std::to_string(cols) + "]");
  }
  Nvfp4Tensor out = initial;
  Nvfp4Quantizer quantizer(out, nullptr);
  calib::RunGptq(w, rows, cols, h, options, quantizer, pool, stats);
  return out;
}

Fp8Tensor GptqFp8(std::span<const float> w, int64_t rows, int64_t cols, const Hessian& h,
                  const GptqOptions& options, Fp8Granularity granularity,
                  std::optional<float> amax, ThreadPool* pool, GptqStats* stats) {
  CheckWeight(w, rows, cols);
  Fp8Tensor out = QuantizeFp8(MakeView(w, {rows, cols}), granularity, amax, pool);
  if (options.scale_timing != GptqScaleTiming::kFixedBeforeUpdates) {
    throw Error("GPTQ for FP8 supports only scales fixed before the updates");
  }
  Fp8Quantizer quantizer(out);
  calib::RunGptq(w, rows, cols, h, options, quantizer, pool, stats);
  return out;
}

MxTensor GptqMx(std::span<const float> w, int64_t rows, int64_t cols, const Hessian& h,
                const GptqOptions& options, MxElement element, MxScaleRule rule,
                ThreadPool* pool, GptqStats* stats) {
  CheckWeight(w, rows, cols);
  MxTensor out = QuantizeMx(MakeView(w, {rows, cols}), element, rule, pool);
  if (options.scale_timing != GptqScaleTiming::kFixedBeforeUpdates) {
    throw Error("GPTQ for MX supports only scales fixed before the updates");
  }
  MxQuantizer quantizer(out, rule);
  calib::RunGptq(w, rows, cols, h, options, quantizer, pool, stats);
  return out;
}

}  // namespace qf
