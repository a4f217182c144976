// Internal to src/engine: the scheme reader shared by OpenQuantizedCheckpoint and its tests.
#pragma once

#include <filesystem>
#include <string>

#include "quantforge/checkpoint.h"
#include "quantforge/eval.h"

namespace qf::engine {

// Reads config.json / hf_quant_config.json in `dir` against the tensors of `ckpt`.
QuantizationScheme ReadScheme(const std::filesystem::path& dir, const Checkpoint& ckpt);

// The one positive finite F32 of a scale tensor (0-d or [1]); qf::Error naming it otherwise.
float ReadPositiveScalar(const Checkpoint& ckpt, const std::string& name);

}  // namespace qf::engine
