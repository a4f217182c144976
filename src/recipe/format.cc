// From ModelOpt quantizer attributes to the format an exporter writes (QuantizerConfig::Format),
// and the names of formats and algorithms.
//
// The mapping follows what ModelOpt's exporter (export/quant_utils.py::get_quantization_format)
// recognises: E2M1 + 16-blocks + E4M3 scales is NVFP4, E2M1/E4M3 + 32-blocks + E8M0 scales is
// MXFP4/MXFP8, E4M3 without blocks is FP8 per-tensor (axis 0: per-channel), and E4M3 with a
// `{-1: null}` dynamic block is FP8 per-token. Anything else ModelOpt accepts is named as
// unsupported with a reason, so the pipeline refuses instead of guessing.
#include <string>

#include "quantforge/recipe.h"

namespace qf {
namespace {

std::string_view NumBitsName(NumBits num_bits) {
  switch (num_bits) {
    case NumBits::kE4M3:
      return "E4M3";
    case NumBits::kE5M2:
      return "E5M2";
    case NumBits::kE2M1:
      return "E2M1";
    case NumBits::kE3M2:
      return "E3M2";
    case NumBits::kE2M3:
      return "E2M3";
    case NumBits::kE1M2:
      return "E1M2";
    case NumBits::kE0M3:
      return "E0M3";
    case NumBits::kE3M0:
      return "E3M0";
    case NumBits::kInt:
      return "INT";
  }
  return "?";
}

QuantFormat Unsupported(std::string reason) {
  QuantFormat format;
  format.kind = QuantKind::kUnsupported;
  format.reason = std::move(reason);
  return format;
}

std::string RoleName(QuantizerRole role) {
  switch (role) {
    case QuantizerRole::kWeight:
      return "weight";
    case QuantizerRole::kInput:
      return "input";
    case QuantizerRole::kKvCache:
      return "KV-cache";
  }
  return "?";
}

QuantFormat Make(QuantKind kind, int block_size = 0) {
  QuantFormat format;
  format.kind = kind;
  format.block_size = block_size;
  return format;
}

// E2M1 and E4M3 with a last-dim block layout: NVFP4, MXFP4, MXFP8 or unsupported.
QuantFormat BlockFormat(const QuantizerConfig& cfg, const BlockSizes& blocks, QuantizerRole role) {
  const bool e2m1 = cfg.num_bits == NumBits::kE2M1;
  const std::string element(NumBitsName(cfg.num_bits));
  if (!blocks.other_axes.empty()) {
    return Unsupported(element +
                       " with 2-D blocks (e.g. FP8_2D_BLOCKWISE_WEIGHT_ONLY) is not "
                       "supported yet");
  }
  if (blocks.has_scale_block_sizes) {
    return Unsupported("double-quantised block scales (scale_block_sizes) are not supported");
  }
  if (!blocks.has_last_dim) return Unsupported("block_sizes without a -1 (last dim) entry");
  if (!blocks.last_dim) {
    // {-1: null}: one block per row, i.e. per-token dynamic scaling of activations.
    if (cfg.num_bits == NumBits::kE4M3 && role == QuantizerRole::kInput &&
        (blocks.type == ScaleType::kDynamic || cfg.type == ScaleType::kDynamic)) {
      return Make(QuantKind::kFp8PerToken);
    }
    return Unsupported("per-row (-1: null) " + element + " on a " + RoleName(role) +
                       " quantizer is not supported");
  }
  const int64_t block = *blocks.last_dim;
  if (role == QuantizerRole::kKvCache) {
    return Unsupported(element + " block-scaled KV cache (e.g. NVFP4_KV_CFG) is not supported yet");
  }
  if (blocks.scale_bits == ScaleBits::kE8M0 && block == 32) {
    if (blocks.four_over_six) return Unsupported("four_over_six applies to NVFP4 only");
    return Make(e2m1 ? QuantKind::kMxfp4 : QuantKind::kMxfp8, 32);
  }
  if (e2m1 && blocks.scale_bits == ScaleBits::kE4M3 && block == 16) {
    QuantFormat format = Make(QuantKind::kNvfp4, 16);
    format.static_block_scales = blocks.type == ScaleType::kStatic;
    format.four_over_six = blocks.four_over_six;
    if (role == QuantizerRole::kInput) {
      // Activation blocks are always scaled on the fly; only the global amax (input_scale) is
      // calibrated. ModelOpt applies 4/6 and static blocks to weights only.
      if (format.static_block_scales || format.four_over_six) {
        return Unsupported("static or four-over-six NVFP4 on an input quantizer");
      }
      format.needs_calibration = !cfg.use_constant_amax && !cfg.constant_amax;
    }
    return format;
  }
  if (e2m1 && blocks.scale_bits == ScaleBits::kE4M3) {
    return Unsupported("NVFP4 with " + std::to_string(block) +
                       "-element blocks (e.g. W4A8_NVFP4_FP8, NVFP4_MLP_WEIGHT_ONLY) is not "
                       "supported yet; NVFP4 uses 16");
  }
  return Unsupported(element + " with " + std::to_string(block) + "-element blocks and " +
                     (blocks.scale_bits == ScaleBits::kNone   ? std::string("unquantised")
                      : blocks.scale_bits == ScaleBits::kE8M0 ? std::string("E8M0")
                      : blocks.scale_bits == ScaleBits::kE4M3 ? std::string("E4M3")
                                                              : std::string("other")) +
                     " scales is not a format quantforge writes");
}

}  // namespace

QuantFormat QuantizerConfig::Format(QuantizerRole role) const {
  if (!enabled) return {};
  if (!unsupported_attributes.empty()) {
    std::string names;
    for (const std::string& name : unsupported_attributes) {
      names += (names.empty() ? "" : ", ") + name;
    }
    return Unsupported("unsupported quantizer attributes: " + names);
  }
  if (num_bits == NumBits::kInt) {
    const std::string what = "INT" + std::to_string(int_bits);
    std::string layout = block_sizes ? " block" : axis ? " per-channel" : " per-tensor";
    return Unsupported(what + layout +
                       " quantization (INT8_*, INT4_AWQ, W4A8_AWQ, MXINT8 presets) is "
                       "not supported yet");
  }
  if (num_bits != NumBits::kE4M3 && num_bits != NumBits::kE2M1) {
    return Unsupported(std::string(NumBitsName(num_bits)) + " elements are not supported yet" +
                       (num_bits == NumBits::kE3M2 ? " (MXFP6)" : ""));
  }
  QuantFormat format;
  if (block_sizes) {
    format = BlockFormat(*this, *block_sizes, role);
  } else if (num_bits == NumBits::kE2M1) {
    format = Unsupported("E2M1 without block scales is not a format quantforge writes");
  } else if (axis && *axis != 0) {
    format = Unsupported("FP8 along axis " + std::to_string(*axis) + " (only axis 0 is supported)");
  } else if (axis) {
    format = role == QuantizerRole::kWeight
                 ? Make(QuantKind::kFp8PerChannel)
                 : Unsupported("per-channel FP8 on a " + RoleName(role) + " quantizer");
  } else if (type == ScaleType::kDynamic && role != QuantizerRole::kWeight) {
    format = Unsupported("dynamic per-tensor FP8 " + RoleName(role) + " scaling is not supported");
  } else if (role == QuantizerRole::kKvCache) {
    format = Make(QuantKind::kFp8Kv);
    format.needs_calibration = !use_constant_amax && !constant_amax;
  } else {
    format = Make(QuantKind::kFp8PerTensor);
    format.needs_calibration =
        role == QuantizerRole::kInput && !use_constant_amax && !constant_amax;
  }
  format.use_constant_amax = use_constant_amax;
  return format;
}

std::string_view QuantKindName(QuantKind kind) {
  switch (kind) {
    case QuantKind::kNone:
      return "none";
    case QuantKind::kNvfp4:
      return "nvfp4";
    case QuantKind::kFp8PerTensor:
      return "fp8";
    case QuantKind::kFp8PerChannel:
      return "fp8-per-channel";
    case QuantKind::kFp8PerToken:
      return "fp8-per-token";
    case QuantKind::kMxfp4:
      return "mxfp4";
    case QuantKind::kMxfp8:
      return "mxfp8";
    case QuantKind::kFp8Kv:
      return "fp8-kv";
    case QuantKind::kUnsupported:
      return "unsupported";
  }
  return "?";
}

std::string FormatToString(const QuantFormat& format) {
  std::string out(QuantKindName(format.kind));
  std::string flags;
  auto add = [&](std::string_view flag) {
    if (!flags.empty()) flags += ',';
    flags += flag;
  };
  if (format.kind == QuantKind::kNvfp4) add(format.static_block_scales ? "static" : "dynamic");
  if (format.four_over_six) add("4o6");
  if (format.use_constant_amax) add("constant-amax");
  if (!flags.empty()) out += "(" + flags + ")";
  if (format.kind == QuantKind::kUnsupported) out += ": " + format.reason;
  return out;
}

std::string_view AlgorithmMethodName(AlgorithmMethod method) {
  switch (method) {
    case AlgorithmMethod::kNone:
      return "none";
    case AlgorithmMethod::kMax:
      return "max";
    case AlgorithmMethod::kMse:
      return "mse";
    case AlgorithmMethod::kLocalHessian:
      return "local_hessian";
    case AlgorithmMethod::kGptq:
      return "gptq";
    case AlgorithmMethod::kSmoothQuant:
      return "smoothquant";
    case AlgorithmMethod::kAwqLite:
      return "awq_lite";
    case AlgorithmMethod::kAwqClip:
      return "awq_clip";
    case AlgorithmMethod::kAwqFull:
      return "awq_full";
    case AlgorithmMethod::kSvdQuant:
      return "svdquant";
    case AlgorithmMethod::kNvfp4ActHeadroom:
      return "nvfp4_act_headroom";
    case AlgorithmMethod::kLsq:
      return "lsq";
  }
  return "?";
}

bool IsAlgorithmSupported(AlgorithmMethod method) {
  return method == AlgorithmMethod::kNone || method == AlgorithmMethod::kMax ||
         method == AlgorithmMethod::kMse || method == AlgorithmMethod::kLocalHessian ||
         method == AlgorithmMethod::kGptq;
}

}  // namespace qf
