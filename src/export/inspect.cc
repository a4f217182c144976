// What a checkpoint holds: each tensor's format recognised from its name, dtype and siblings (the
// layouts of layout.cc, either export format, or a plain unquantized checkpoint), the totals and
// the effective bits per element, and the quantization config the checkpoint declares.
#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "fmt/core.h"
#include "quantforge/error.h"
#include "quantforge/export.h"

namespace qf {
namespace {

using Json = nlohmann::ordered_json;

struct Split {
  std::string_view module;
  std::string_view leaf;
};
Split SplitName(std::string_view name) {
  const size_t dot = name.rfind('.');
  if (dot == std::string_view::npos) return {{}, name};
  return {name.substr(0, dot), name.substr(dot + 1)};
}

// Tensors that only scale others: they add bits but no logical elements. Keyed by leaf name.
struct ScaleRow {
  std::string_view leaf;
  std::string_view format;
};
constexpr ScaleRow kScaleRows[] = {
    {"weight_scale_2", "NVFP4 global scale"},
    {"weight_global_scale", "NVFP4 global scale (reciprocal)"},
    {"input_scale", "input scale"},
    {"input_global_scale", "input global scale (reciprocal)"},
    {"k_scale", "KV cache scale"},
    {"v_scale", "KV cache scale"},
};

class Classifier {
 public:
  explicit Classifier(std::span<const TensorInfo> tensors) {
    for (const TensorInfo& t : tensors) by_name_[t.name] = &t;
  }

  InspectedTensor Classify(const TensorInfo& t) const {
    InspectedTensor out{t.name,       std::string(DTypeName(t.dtype)),
                        t.dtype,      t.shape,
                        t.NumBytes(), NumElements(t.shape)};
    const auto [module, leaf] = SplitName(t.name);
    const bool is_float_scale = t.dtype == DType::kF32 || t.dtype == DType::kBF16;
    for (const ScaleRow& row : kScaleRows) {
      if (leaf == row.leaf && is_float_scale) {
        out.format = row.format;
        out.num_logical_elements = 0;
        return out;
      }
    }
    const TensorInfo* scale = Sibling(module, "weight_scale");
    const bool nvfp4_global =
        Sibling(module, "weight_scale_2") != nullptr || Sibling(module, "weight_global_scale");
    if (leaf == "weight_scale" && scale == &t) {
      out.num_logical_elements = 0;
      if (t.dtype == DType::kF8E4M3) {
        out.format = "NVFP4 block scale";
      } else if (t.dtype == DType::kU8) {
        out.format = "MX E8M0 block scale";
      } else if (is_float_scale) {
        out.format = NumElements(t.shape) == 1 ? "FP8 per-tensor scale" : "FP8 per-channel scale";
      } else {
        out.num_logical_elements = NumElements(t.shape);
      }
      return out;
    }
    if (leaf == "weight" || leaf == "weight_packed") {
      if (t.dtype == DType::kU8 && nvfp4_global) {
        out.format = "NVFP4 packed weight";
        out.num_logical_elements = 2 * NumElements(t.shape);  // two E2M1 codes per byte
      } else if (t.dtype == DType::kU8 && scale != nullptr && scale->dtype == DType::kU8) {
        out.format = "MXFP4 packed weight";
        out.num_logical_elements = 2 * NumElements(t.shape);
      } else if (t.dtype == DType::kF8E4M3 && scale != nullptr && scale->dtype == DType::kU8) {
        out.format = "MXFP8 weight";
      } else if (t.dtype == DType::kF8E4M3) {
        out.format = "FP8 E4M3 weight";
      }
    }
    return out;
  }

 private:
  const TensorInfo* Sibling(std::string_view module, std::string_view leaf) const {
    std::string name(module);
    if (!name.empty()) name += '.';
    name += leaf;
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
  }

  std::map<std::string, const TensorInfo*, std::less<>> by_name_;
};

Json ParseObject(std::string_view text, std::string_view what) {
  if (text.empty()) return nullptr;
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    throw Error("not a JSON object", {.path = std::string(what)});
  }
  return j;
}

std::string ReadIfExists(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) return {};
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open file for reading", {.path = path.string()});
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string ShapeText(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

InspectReport InspectTensors(std::span<const TensorInfo> tensors, std::string_view config_json,
                             std::string_view hf_quant_config_json) {
  InspectReport report;
  const Classifier classifier(tensors);
  for (const TensorInfo& t : tensors) report.tensors.push_back(classifier.Classify(t));
  std::sort(report.tensors.begin(), report.tensors.end(),
            [](const InspectedTensor& a, const InspectedTensor& b) { return a.name < b.name; });
  for (const InspectedTensor& t : report.tensors) {
    ++report.format_counts[t.format];
    report.total_bytes += t.num_bytes;
    report.total_logical_elements += t.num_logical_elements;
  }
  if (report.total_logical_elements > 0) {
    report.bpe = 8.0 * static_cast<double>(report.total_bytes) /
                 static_cast<double>(report.total_logical_elements);
  }

  const Json config = ParseObject(config_json, "config.json");
  const Json hf = ParseObject(hf_quant_config_json, "hf_quant_config.json");
  Json declared = nullptr;
  if (config.is_object() && config.contains("quantization_config")) {
    declared = config["quantization_config"];
  } else if (hf.is_object()) {
    declared = hf;
  }
  report.layout = "none";
  if (hf.is_object()) report.layout = "modelopt";
  if (declared.is_object() && declared.contains("quant_method") &&
      declared["quant_method"].is_string()) {
    const std::string method = declared["quant_method"];
    if (method == "modelopt") report.layout = "modelopt";
    if (method == "compressed-tensors") report.layout = "compressed-tensors";
  }
  report.quantization_config = declared.dump();
  return report;
}

InspectReport InspectCheckpoint(const std::filesystem::path& path) {
  const Checkpoint checkpoint = Checkpoint::Open(path);
  const std::filesystem::path dir = checkpoint.Directory();
  const std::string config = ReadIfExists(dir / "config.json");
  const std::string hf = ReadIfExists(dir / "hf_quant_config.json");
  try {
    return InspectTensors(checkpoint.Tensors(), config, hf);
  } catch (const Error& e) {
    throw Error(e.problem(), {.path = (dir / e.context().path).string()});
  }
}

std::string InspectReportJson(const InspectReport& report) {
  Json tensors = Json::array();
  for (const InspectedTensor& t : report.tensors) {
    tensors.push_back({{"name", t.name},
                       {"format", t.format},
                       {"dtype", DTypeName(t.dtype)},
                       {"shape", t.shape},
                       {"bytes", t.num_bytes}});
  }
  Json out = {{"bpe", report.bpe},
              {"total_bytes", report.total_bytes},
              {"total_logical_elements", report.total_logical_elements},
              {"layout", report.layout},
              {"format_counts", report.format_counts},
              {"quantization_config", Json::parse(report.quantization_config)},
              {"tensors", std::move(tensors)}};
  return out.dump();
}

std::string InspectReportText(const InspectReport& report) {
  size_t name_width = 4, format_width = 6;
  for (const InspectedTensor& t : report.tensors) {
    name_width = std::max(name_width, t.name.size());
    format_width = std::max(format_width, t.format.size());
  }
  std::string text = fmt::format("{:<{}}  {:<{}}  {:<8}  {:<20}  {:>14}\n", "name", name_width,
                                 "format", format_width, "dtype", "shape", "bytes");
  for (const InspectedTensor& t : report.tensors) {
    text += fmt::format("{:<{}}  {:<{}}  {:<8}  {:<20}  {:>14}\n", t.name, name_width, t.format,
                        format_width, DTypeName(t.dtype), ShapeText(t.shape), t.num_bytes);
  }
  text += "\nformats:\n";
  for (const auto& [format, count] : report.format_counts) {
    text += fmt::format("  {:<{}}  {}\n", format, format_width, count);
  }
  text += fmt::format(
      "\ntensors: {}  bytes: {}  logical weight elements: {}  BPE: {:.4f}\nlayout: {}\n",
      report.tensors.size(), report.total_bytes, report.total_logical_elements, report.bpe,
      report.layout);
  text += "quantization config: " + Json::parse(report.quantization_config).dump(2) + "\n";
  return text;
}

}  // namespace qf
