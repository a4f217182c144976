// Export layouts: how a quantized linear layer, the KV-cache scales and the quantization config
// are written so that vLLM, TensorRT-LLM and SGLang load the checkpoint unchanged.
//
// Two on-disk layouts (docs/EXPORT.md puts them side by side, with the loader facts and sources):
//   - kModelOpt: NVIDIA Model Optimizer's unified Hugging Face checkpoint. Per linear P:
//     P.weight, P.weight_scale, P.weight_scale_2 (NVFP4 global scale, a multiplier amax/2688),
//     P.input_scale; hf_quant_config.json plus config.json "quantization_config" with
//     quant_method "modelopt".
//   - kCompressedTensors: llm-compressor's compressed-tensors. NVFP4 as "nvfp4-pack-quantized":
//     P.weight_packed, P.weight_scale (the same bytes), P.weight_global_scale = 1 / weight_scale_2
//     (a divisor), P.input_global_scale = 1 / input_scale; FP8 as "float-quantized".
//
// Everything here is a pure function of its arguments (no files) except WriteQuantConfigFiles and
// InspectCheckpoint. The layer knows nothing of recipe syntax: the pipeline tells it, per module,
// which quantized tensor it holds and whether its input quantizer is enabled.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "quantforge/byte_buffer.h"
#include "quantforge/checkpoint.h"
#include "quantforge/quantize.h"
#include "quantforge/tensor.h"

namespace qf {

enum class ExportFormat { kModelOpt, kCompressedTensors };
std::string_view ExportFormatName(ExportFormat format);  // "modelopt", "compressed-tensors"
std::optional<ExportFormat> ParseExportFormat(std::string_view name);

// Per-layer quantization algorithm, by Model Optimizer's quant_algo names.
enum class QuantAlgo {
  kNvfp4,          // "NVFP4": NVFP4 weights and inputs (W4A4), input_scale required
  kW4A16Nvfp4,     // "W4A16_NVFP4": NVFP4 weights, input quantizer disabled
  kFp8,            // "FP8": E4M3 weights with one scale per tensor (+ input_scale when W8A8)
  kFp8PerChannel,  // "FP8_PER_CHANNEL_PER_TOKEN": one weight scale per output row
  kMxfp8,          // "MXFP8": E4M3 elements, E8M0 scale per 32
  kMxfp4,          // "MXFP4": E2M1 elements, E8M0 scale per 32 (vLLM's modelopt loader rejects it)
};
std::string_view QuantAlgoName(QuantAlgo algo);
// Block size written as group_size: 16 (NVFP4), 32 (MX), 0 for FP8 (no group_size key).
int QuantAlgoGroupSize(QuantAlgo algo);

// ------------------------------------------------------------------------------------------------
// Per-module tensor layouts.

// One quantized linear layer. `prefix` is the module name as in the checkpoint (the weight is
// "<prefix>.weight"); the weight is 2-D [out, in] (split 3-D experts per expert first, as Model
// Optimizer does). The quantized tensor is moved into the exported bytes.
struct QuantizedLinear {
  std::string prefix;
  std::variant<Nvfp4Tensor, MxTensor, Fp8Tensor> weight;
  // The recipe enables this layer's input quantizer (W4A4 / W8A8). NVFP4 and FP8 then need the
  // calibrated activation amax: ExportLinear throws without it.
  bool input_quantized = false;
  std::optional<float> input_amax;
};

QuantAlgo AlgoOf(const QuantizedLinear& linear);

// The algorithm a module is written as. Identity except one case: FP8 per tensor without an input
// scale (weight-only) is written in the modelopt layout as FP8_PER_CHANNEL_PER_TOKEN, the
// per-tensor scale repeated for every row. vLLM's FP8 (per-tensor) linear always applies a static
// input_scale and would read an absent one as its -FLT_MAX placeholder; the per-channel method
// quantizes activations per token at run time. Same weight bytes, same dequantized values.
// compressed-tensors expresses weight-only FP8 directly (naive-quantized, no input activations).
QuantAlgo ExportedAlgo(QuantAlgo algo, bool has_input_scale, ExportFormat format);

struct ExportTensor {
  std::string name;
  DType dtype = DType::kU8;
  Shape shape;
  ByteBuffer bytes;  // little-endian, NumElements(shape) * DTypeSize(dtype)

  std::span<const std::byte> Bytes() const { return std::as_bytes(std::span(bytes)); }
};

// Names, dtypes and shapes of what ExportLinear writes for a module (so a writer's plan can be
// declared before any tensor is quantized). `weight_shape` is the logical [out, in]. Throws
// qf::Error when `in` is not a multiple of the algorithm's block size (such a layer must stay
// unquantized and be listed as excluded), for a shape that is not 2-D, and for a combination the
// format cannot express (MX in compressed-tensors). `with_input_scale`: the module's input
// quantizer is enabled (NVFP4 W4A4, FP8 W8A8), as QuantizedLinear::input_quantized; `algo` is
// mapped through ExportedAlgo, exactly as ExportLinear does.
std::vector<TensorSpec> LinearLayout(std::string_view prefix, QuantAlgo algo,
                                     const Shape& weight_shape, bool with_input_scale,
                                     ExportFormat format);
// The tensors of LinearLayout, filled. input_scale is act_amax/2688 (NVFP4) or act_amax/448 (FP8)
// and is written exactly when the input quantizer is enabled.
std::vector<ExportTensor> ExportLinear(QuantizedLinear linear, ExportFormat format);

// KV-cache scales of one attention module (Model Optimizer's names, which vLLM remaps to
// "<attn>.attn.k_scale"): "<attn>.k_proj.k_scale" and "<attn>.v_proj.v_scale", F32 0-d,
// amax/448. Only with a calibrated amax: without one nothing is written and the engine uses 1.0.
std::vector<TensorSpec> KvScaleLayout(std::string_view attn_prefix, ExportFormat format);
std::vector<ExportTensor> ExportKvScales(std::string_view attn_prefix, float k_amax, float v_amax,
                                         ExportFormat format);

// ------------------------------------------------------------------------------------------------
// Configs.

struct QuantizedModule {
  std::string name;  // module prefix, unfused (q_proj, not qkv_proj)
  QuantAlgo algo;
  // An input_scale was written (W8A8 FP8; always for NVFP4 W4A4). Model Optimizer's config does
  // not tell W8A8 from W8A16 FP8, compressed-tensors' does (input_activations).
  bool has_input_scale = false;
};

// What a checkpoint holds, as the configs describe it.
struct ExportManifest {
  std::vector<QuantizedModule> quantized;  // every quantized linear, in checkpoint order
  // Every linear left unquantized: disabled by the recipe, refused for its shape, lm_head, routers.
  std::vector<std::string> unquantized;
  bool kv_cache_fp8 = false;  // k/v_scale tensors were written (kv_cache_quant_algo "FP8")
};

// hf_quant_config.json (Model Optimizer's legacy form; vLLM reads this file first), or nullopt
// when nothing is quantized. One per-layer config: {"quant_algo", "kv_cache_quant_algo",
// ["group_size"], "exclude_modules"}. More than one: "MIXED_PRECISION" with "quantized_layers".
std::optional<std::string> HfQuantConfigJson(const ExportManifest& manifest);
// The config.json "quantization_config" object as JSON text, for either format.
std::string QuantizationConfigJson(const ExportManifest& manifest, ExportFormat format);
// `original_config_json` with "quantization_config" added (replaced if present), every other key
// kept in order, written with a 2-space indent. Throws qf::Error if the original is not a JSON
// object.
std::string UpdateConfigJson(std::string_view original_config_json, const ExportManifest& manifest,
                             ExportFormat format);
// Writes config.json (from `original_config`, or a minimal {} when it does not exist) and, for
// kModelOpt, hf_quant_config.json into `out_dir`.
void WriteQuantConfigFiles(const std::filesystem::path& out_dir,
                           const std::filesystem::path& original_config,
                           const ExportManifest& manifest, ExportFormat format);

// exclude_modules compression (Model Optimizer's prefix-wildcard summary): each unquantized name
// is replaced by the shortest "prefix*" (cut at a '.') or "prefix.*" that matches no quantized
// module, else kept as is. Sorted. Every returned pattern matches no quantized name under fnmatch,
// as vLLM applies exclude_modules (qf::FnMatch in src/util/fnmatch.h).
std::vector<std::string> CompressExcludeModules(std::span<const std::string> unquantized,
                                                std::span<const std::string> quantized);

// ------------------------------------------------------------------------------------------------
// Fused scales. Engines fuse q/k/v, gate/up (and gate/up within one expert) into one GEMM with one
// global weight scale and one input scale; a shard written against a smaller global dequantizes
// wrong. So, before quantizing, the NVFP4 global amax of a fused group is the max of its members'
// amax (pass it as Nvfp4Options::global_amax), and the input amax is the max over the group and
// over all routed experts of a MoE layer. FP8 groups are not unified (Model Optimizer leaves FP8
// scales per shard; loaders requantize). MX formats have no global scale.

struct AmaxEntry {
  std::string name;  // module prefix
  QuantAlgo algo;
  float weight_amax = 0.0f;  // max |W| of this module alone
  std::optional<float> input_amax;
};

struct FusionGroups {
  // Sets of entry indices whose weights the engine fuses (share weight_scale_2 and input_scale).
  std::vector<std::vector<size_t>> fused;
  // Sets of entry indices that are the routed experts of one MoE layer (share input_scale).
  std::vector<std::vector<size_t>> experts;
};

// Groups by module names: siblings under one parent named {q_proj, k_proj, v_proj},
// {gate_proj, up_proj}, {w1, w3}, {q_a_proj, kv_a_proj_with_mqa}; experts: "<moe>.experts.<N>.*"
// for any N (shared_experts excluded), one set per <moe> and projection kind.
FusionGroups FusionGroupsFromNames(std::span<const std::string> names);
// Groups from the plan's keys (recipe.h TensorPlan::fusion_group / moe_input_group), one key per
// entry: entries sharing a non-empty key form a set. Either span may be empty (no such groups).
FusionGroups FusionGroupsFromKeys(std::span<const std::string> fusion_keys,
                                  std::span<const std::string> moe_input_keys);

struct FusedAmax {
  std::vector<float> weight_global_amax;         // per entry; FP8 and MX: the entry's own amax
  std::vector<std::optional<float>> input_amax;  // per entry, after unification
};
// Throws qf::Error when a fused group mixes algorithms (vLLM refuses such a layer) or an index is
// out of range. An expert without an input amax takes the max of the others.
FusedAmax UnifyFusedAmax(std::span<const AmaxEntry> entries, const FusionGroups& groups);

// ------------------------------------------------------------------------------------------------
// Inspection: what a checkpoint (original or quantized, either layout) holds.

struct InspectedTensor {
  std::string name;
  std::string format;  // "BF16", "NVFP4 packed weight", "NVFP4 block scale", "FP8 E4M3 weight", ...
  DType dtype = DType::kF32;
  Shape shape;
  uint64_t num_bytes = 0;
  int64_t num_logical_elements = 0;  // weights' element count (packed x2); 0 for scale tensors
};

struct InspectReport {
  std::vector<InspectedTensor> tensors;  // sorted by name
  std::map<std::string, int64_t> format_counts;
  uint64_t total_bytes = 0;
  int64_t total_logical_elements = 0;
  // All tensor bits (scales included) over the logical elements of the non-scale tensors:
  // 16 for a BF16 checkpoint, 4.5 + 64/(out*in) for one NVFP4 W4A4 linear.
  double bpe = 0.0;
  std::string layout;               // "modelopt", "compressed-tensors" or "none"
  std::string quantization_config;  // JSON text of what the checkpoint declares ("null" if none)
};

// `config_json` / `hf_quant_config_json`: the files' text, empty when absent.
InspectReport InspectTensors(std::span<const TensorInfo> tensors, std::string_view config_json,
                             std::string_view hf_quant_config_json);
// Opens `path` (a directory or a .safetensors file) and reads config.json / hf_quant_config.json
// next to it.
InspectReport InspectCheckpoint(const std::filesystem::path& path);
// One-line JSON: {"bpe", "total_bytes", "total_logical_elements", "layout", "format_counts",
// "quantization_config", "tensors": [{"name", "format", "dtype", "shape", "bytes"}]}.
std::string InspectReportJson(const InspectReport& report);
// Human-readable table and summary.
std::string InspectReportText(const InspectReport& report);

}  // namespace qf
