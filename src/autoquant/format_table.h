// Internal to the autoquant layer: how each candidate format reads in a recipe (the ModelOpt
// numerics unit it imports) and which planned QuantFormat stands for it.
#pragma once

#include <string_view>

#include <optional>

#include "quantforge/autoquant.h"
#include "quantforge/eval.h"
#include "quantforge/recipe.h"

namespace qf::autoquant {

// "configs/numerics/nvfp4", ...; empty for kNone.
std::string_view NumericsConfigPath(AutoFormat format);
// The algorithm line a recipe needs for the format: "max", or the four-over-six mse sweep.
std::string_view AlgorithmYaml(bool has_four_over_six);
// True when the planner's resolved weight format is what `format` asks for.
bool PlannedAs(const QuantFormat& planned, AutoFormat format);
// How a serving engine runs a module the recipe's modelopt-layout export writes in `format`:
// FP8 weight-only is exported as FP8_PER_CHANNEL_PER_TOKEN and MX as MXFP8 / MXFP4, whose inputs
// the engine quantizes at run time (per-token FP8, per-32 MX; docs/EVAL.md); NVFP4 is W4A16.
// nullopt for kNone.
std::optional<LinearQuantization> ServedQuantization(AutoFormat format);

}  // namespace qf::autoquant
