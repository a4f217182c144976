// Recipes: which quantizer gets which format, in NVIDIA Model Optimizer's schema, and the
// per-tensor plan a checkpoint pipeline follows.
//
// The policy is data, exactly as in ModelOpt (modelopt/torch/quantization/config.py,
// conversion.py::set_quantizer_by_cfg): an ordered list of rules, each a glob over quantizer names
// (`<module>.weight_quantizer`, `<module>.input_quantizer`, `<attn>.k_bmm_quantizer`,
// `<attn>.v_bmm_quantizer`), carrying a full attribute config (`cfg`) and/or an `enable` toggle.
// Recipe files in ModelOpt's YAML format load unchanged (a `quantize:` mapping with `algorithm:`
// and `quant_cfg:`, `imports:` + `$import` of ModelOpt's `configs/numerics/*` and
// `configs/ptq/units/*` snippets, which are built in), and the presets carry ModelOpt's names.
//
// This layer knows nothing of quantizers or kernels: it only names formats. The pipeline maps a
// QuantFormat onto the quant layer. docs/RECIPES.md has the rule semantics with examples.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "quantforge/tensor.h"

namespace qf {

// ---------------------------------------------------------------------------------------------
// Quantizer attributes (ModelOpt QuantizerAttributeConfig)

// `num_bits`: an integer means INT<n>; an (E, M) pair or the string "eEmM" means a float format.
// ModelOpt allows these float pairs only: (4,3) (5,2) (2,1) (1,2) (0,3) (3,0) (3,2) (2,3).
enum class NumBits : uint8_t {
  kE4M3,
  kE5M2,
  kE2M1,
  kE3M2,
  kE2M3,
  kE1M2,
  kE0M3,
  kE3M0,
  kInt,  // width in QuantizerConfig::int_bits (ModelOpt's default quantizer is INT8)
};

// `block_sizes.scale_bits`: how each block's scale is stored. kNone: not quantized (kept in the
// compute dtype; ModelOpt's default). kOther: a legal ModelOpt value (an integer width or another
// (E, M) pair) that no format quantforge writes uses.
enum class ScaleBits : uint8_t { kNone, kE4M3, kE8M0, kOther };

// `type` (top level or inside block_sizes): static scales are calibrated (and for NVFP4 weights
// searched by mse / four-over-six / gptq) and baked in; dynamic ones are computed from the tensor
// at run time (weights: at quantize time, which for max calibration gives the same bytes).
enum class ScaleType : uint8_t { kStatic, kDynamic };

struct BlockSizes {
  // The `-1` key. has_last_dim false: key absent. last_dim nullopt with has_last_dim: `-1: null`,
  // one block per row (ModelOpt's per-token dynamic quantization).
  bool has_last_dim = false;
  std::optional<int64_t> last_dim;
  // Other axis keys (`-2: 128` for 2-D blockwise FP8). Kept so the format can say "unsupported".
  std::vector<std::pair<int, std::optional<int64_t>>> other_axes;
  ScaleType type = ScaleType::kStatic;  // ModelOpt's default when `type` is absent
  ScaleBits scale_bits = ScaleBits::kNone;
  bool four_over_six = false;  // NVFP4 4/6: FP8 scale normalisation 256 instead of 448
  // `scale_block_sizes` (double quantisation of the scales): legal in ModelOpt, accepted by the
  // parser, and reported as unsupported by QuantizerConfig::Format().
  bool has_scale_block_sizes = false;
};

// Where a quantizer sits; decides how its attributes read (a per-tensor E4M3 config on a
// k_bmm_quantizer is FP8 KV cache).
enum class QuantizerRole : uint8_t { kWeight, kInput, kKvCache };

// What a resolved quantizer does, in the vocabulary of the exporters.
enum class QuantKind : uint8_t {
  kNone,           // disabled: tensor stays in its original dtype
  kNvfp4,          // E2M1, 16-element blocks, E4M3 block scales, F32 global scale
  kFp8PerTensor,   // E4M3, one F32 scale (weights: amax/448; inputs: static, calibrated)
  kFp8PerChannel,  // E4M3 weights, axis 0: one scale per output row
  kFp8PerToken,    // E4M3 inputs, dynamic, one scale per token (block_sizes {-1: null})
  kMxfp4,          // E2M1, 32-element blocks, E8M0 scales (OCP MX v1.0)
  kMxfp8,          // E4M3, 32-element blocks, E8M0 scales
  kFp8Kv,          // E4M3 k/v cache, per-tensor k_scale / v_scale (role kKvCache only)
  kUnsupported,    // a legal ModelOpt config quantforge cannot produce: see `reason`
};

struct QuantFormat {
  QuantKind kind = QuantKind::kNone;
  // kNvfp4 / kMxfp*: elements per block along the last dimension (16 or 32).
  int block_size = 0;
  // kNvfp4: block scales are static (searched by the algorithm); false: dynamic (max).
  bool static_block_scales = false;
  bool four_over_six = false;  // kNvfp4 weights only
  // Inputs and KV: the scale (input_scale, global amax, k/v_scale) comes from activations, so the
  // recipe needs calibration data. False for weights, per-token dynamic inputs and
  // use_constant_amax quantizers.
  bool needs_calibration = false;
  bool use_constant_amax = false;  // KV "cast" mode: amax pinned to 448, no k/v_scale exported
  std::string reason;              // kUnsupported: why, e.g. "INT4 block quantization (INT4_AWQ)"

  bool enabled() const { return kind != QuantKind::kNone; }
};

std::string_view QuantKindName(QuantKind kind);         // "none", "nvfp4", "fp8", ... for messages
std::string FormatToString(const QuantFormat& format);  // "nvfp4(static,4o6)", "fp8-per-tensor"

struct QuantizerConfig {
  bool enabled = true;  // a ModelOpt quantizer that no rule touched is enabled INT8
  NumBits num_bits = NumBits::kInt;
  int int_bits = 8;         // the width when num_bits == kInt
  std::optional<int> axis;  // nullopt: per-tensor (`axis: null`); 0: per-channel
  std::optional<BlockSizes> block_sizes;
  ScaleType type = ScaleType::kStatic;  // the top-level `type` key
  bool use_constant_amax = false;
  std::optional<double> constant_amax;
  std::optional<double> effective_bits;  // AutoQuantize cost (NVFP4 units say 4.5)
  // Set attributes that quantforge parses but does not implement (`bias`, `rotate`, a
  // `calibrator` other than max, a list-valued `cfg` = SequentialQuantizer, ...). Non-empty makes
  // Format() kUnsupported naming them.
  std::vector<std::string> unsupported_attributes;

  QuantFormat Format(QuantizerRole role) const;
};

// ---------------------------------------------------------------------------------------------
// Calibration algorithm (ModelOpt QuantizeAlgorithmConfig and its subclasses)

enum class AlgorithmMethod : uint8_t {
  kNone,  // `algorithm: null`: no calibration (MX presets)
  kMax,
  kMse,
  kLocalHessian,
  kGptq,
  kSmoothQuant,
  kAwqLite,
  kAwqClip,
  kAwqFull,
  kSvdQuant,
  kNvfp4ActHeadroom,
  kLsq,
};

std::string_view AlgorithmMethodName(AlgorithmMethod method);  // ModelOpt's spelling, "none"
// What quantforge implements today: none, max, mse (including fp8_scale_sweep and 4/6).
bool IsAlgorithmSupported(AlgorithmMethod method);

struct MseParams {  // mse and local_hessian; ModelOpt MseCalibConfig defaults
  double start_multiplier = 0.25;
  double stop_multiplier = 4.0;
  double step_size = 0.1;
  bool fp8_scale_sweep = false;  // local_hessian defaults to true
};

struct GptqParams {         // ModelOpt GPTQCalibConfig defaults; kept for the GPTQ issue
  double perc_damp = 0.01;  // also read from `percdamp`
  int block_size = 128;
  bool act_order = false;  // quantforge extension; ModelOpt has no act-order
  bool fused = false;
};

struct AlgorithmConfig {
  AlgorithmMethod method = AlgorithmMethod::kMax;
  MseParams mse;
  GptqParams gptq;
  // Keys accepted for this method whose meaning quantforge ignores (layerwise, distributed_sync,
  // alpha, ...), listed so tools can say so.
  std::vector<std::string> ignored_keys;
};

// ---------------------------------------------------------------------------------------------
// Rules and recipes

struct QuantizerRule {
  std::string quantizer_name;               // fnmatch glob over the full quantizer name
  std::optional<std::string> parent_class;  // e.g. "nn.Embedding"; rule applies to that class only
  std::optional<QuantizerConfig> cfg;       // full replacement of the quantizer's attributes
  std::optional<bool> enable;
  std::string source;  // "file.yaml:12" or "preset NVFP4_DEFAULT_CFG", for messages
};

struct ResolvedQuantizer {
  QuantizerConfig config;
  int decided_by = -1;  // index of the last rule that matched; -1: none (ModelOpt default)
};

struct Recipe {
  std::string name;         // preset name or file path
  std::string description;  // metadata.description, if any
  // In run order; ModelOpt stacks a list (e.g. mse then gptq). The loader always fills at least
  // one entry (ModelOpt's default is max; `algorithm: null` gives one kNone entry).
  std::vector<AlgorithmConfig> algorithms;
  std::vector<QuantizerRule> rules;
  std::optional<double> effective_bits;  // recipe-level AutoQuantize override

  // ModelOpt set_quantizer_by_cfg for one quantizer: start from the default quantizer (enabled
  // INT8 per-tensor), apply every matching rule in order. A rule with cfg replaces all
  // attributes (unspecified ones revert to defaults) and enables unless `enable: false`; a rule
  // with only `enable` toggles. Names are matched as given and, when they differ, with fused
  // experts' `weight_quantizers.N` / `input_quantizers.N` collapsed to the singular.
  // `parent_class` is the quantizer's module class in ModelOpt's spelling ("nn.Linear").
  QuantizerConfig Resolve(std::string_view quantizer_name,
                          std::string_view parent_class = "nn.Linear") const;
  ResolvedQuantizer ResolveWithSource(std::string_view quantizer_name,
                                      std::string_view parent_class = "nn.Linear") const;

  const AlgorithmConfig& algorithm() const { return algorithms.front(); }
};

// A built-in preset name (ModelOpt's, e.g. NVFP4_DEFAULT_CFG; case-insensitive, `_CFG` optional,
// so `mamba_moe_nvfp4_aggressive` works), a YAML file path, or several joined by '+'
// (`NVFP4_DEFAULT_CFG+FP8_KV_CFG`: later parts' rules appended, see WithKvCache). Throws
// qf::Error naming the file and line for YAML syntax errors, unknown keys, unknown formats, bad
// glob patterns (an unclosed '['), wrong value types and invalid entries.
Recipe LoadRecipe(std::string_view name_or_path);
// The same parser over text in memory; `source_name` stands in for the file in messages.
Recipe ParseRecipe(std::string_view yaml_text, std::string_view source_name);
std::vector<std::string> PresetNames();  // ModelOpt's upper-case names, sorted

// Appends the fragment's rules after the body's (a KV fragment has no `*` rule, so it changes
// only the bmm quantizers). The body's algorithm is kept.
Recipe WithKvCache(Recipe body, const Recipe& kv_fragment);

// Glob matching with Python fnmatch semantics over the whole name: `*` (crosses dots), `?`,
// `[abc]`, `[a-z]`, `[!x]`. Case-sensitive (fnmatch on POSIX). Throws qf::Error for an unclosed
// '[' (Python would match it literally; a recipe typo is likelier).
bool GlobMatch(std::string_view pattern, std::string_view name);
void ValidateGlob(std::string_view pattern);  // throws qf::Error describing the problem

// ---------------------------------------------------------------------------------------------
// The per-tensor plan

struct TensorDesc {
  std::string name;
  DType dtype = DType::kBF16;
  Shape shape;
};

struct TensorPlan {
  std::string tensor;  // the checkpoint tensor name
  std::string module;  // "<module>" of "<module>.weight"; empty for other tensors
  // A 2-D floating `<module>.weight` of a linear layer: it carries weight/input quantizers, and
  // when left unquantized it belongs in the exporter's exclude_modules. Also true for a stacked
  // 3-D experts tensor (`<moe>.experts.gate_up_proj`, [E, ...]), whose weight is kUnsupported
  // when the recipe enables it, so a pipeline that refuses kUnsupported refuses it too.
  bool is_linear_weight = false;
  QuantFormat weight;    // <module>.weight_quantizer; kNone when left unquantized
  QuantFormat input;     // <module>.input_quantizer
  QuantFormat kv_cache;  // on <attn>.k_proj / v_proj weights: <attn>.k_bmm / v_bmm_quantizer
  // The module belongs in the exporter's exclude_modules: a linear weight left unquantized (by
  // a rule, or because its last dim is not a multiple of the block), an MoE router, or a
  // stacked-experts tensor whose quantizer is disabled.
  bool excluded = false;
  std::string reason;  // why unquantized/excluded, e.g. "disabled by rule 14 '*lm_head*' (...)"
  // Modules an engine fuses into one GEMM must share weight_scale_2 and input_scale: q/k/v of
  // one attention, gate/up of one MLP or of ONE expert. Empty when the module has no sibling
  // present. (ModelOpt does not unify FP8 groups; the exporter decides per format.)
  std::string fusion_group;
  // Routed experts of one MoE layer share one input_scale per projection: key
  // "<moe>.experts.*.<proj>". Empty for non-expert modules.
  std::string moe_input_group;
};

// Decides every tensor. Throws qf::Error when the recipe's algorithm is not supported yet (gptq,
// awq, ...: "not supported yet") so a pipeline refuses before reading weights. Unsupported
// formats on enabled quantizers are per-tensor (QuantKind::kUnsupported with a reason).
std::vector<TensorPlan> PlanCheckpoint(const Recipe& recipe,
                                       const std::vector<TensorDesc>& tensors);

}  // namespace qf
