// Every malformed recipe gets a qf::Error naming the file and the line, and saying what was
// wrong: YAML syntax, unknown keys at every level (typo protection), unknown formats, bad glob
// patterns, wrong value types, and entries ModelOpt's validators reject.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "quantforge/error.h"
#include "quantforge/recipe.h"

namespace qf {
namespace {

// Parses `yaml` as "bad.yaml" and checks the error's location and message.
void ExpectError(const std::string& yaml, int line, const std::string& needle) {
  try {
    ParseRecipe(yaml, "bad.yaml");
    ADD_FAILURE() << "no error for:\n" << yaml;
  } catch (const Error& e) {
    const std::string message = e.what();
    const std::string where = "bad.yaml:" + std::to_string(line) + ": ";
    EXPECT_EQ(message.rfind(where, 0), 0u) << "expected '" << where << "' in: " << message;
    EXPECT_NE(message.find(needle), std::string::npos)
        << "expected '" << needle << "' in: " << message;
  }
}

TEST(LoaderErrorsTest, YamlSyntax) {
  ExpectError("quant_cfg:\n  - {quantizer_name: '*', enable: false\n", 3, "YAML syntax error");
  ExpectError("quant_cfg:\n  - a\n - b\n", 3, "YAML syntax error");
}

TEST(LoaderErrorsTest, UnknownKeys) {
  ExpectError("quantise:\n  quant_cfg: []\n", 1, "unknown key 'quantise'");
  ExpectError("quantize:\n  quant_cfg: []\n  algorithms: max\n", 3,
              "unknown key 'algorithms' in quantize");
  ExpectError("metadata: {recipe_typ: ptq}\nquant_cfg: []\n", 1,
              "unknown key 'recipe_typ' in metadata");
  ExpectError("quant_cfg:\n  - quantizer_name: '*'\n    enabled: false\n", 3,
              "unknown key 'enabled' in quant_cfg entry");
  ExpectError("quant_cfg:\n  - quantizer_name: '*'\n    cfg:\n      num_bit: 8\n", 4,
              "unknown key 'num_bit' in cfg");
  ExpectError(
      "quant_cfg:\n  - quantizer_name: '*'\n    cfg:\n      num_bits: e2m1\n      block_sizes:\n"
      "        -1: 16\n        scale_bit: e4m3\n",
      7, "unknown key 'scale_bit' in block_sizes");
  ExpectError("algorithm:\n  method: mse\n  start_mult: 1.0\nquant_cfg: []\n", 3,
              "unknown key 'start_mult' in algorithm 'mse'");
  ExpectError("algorithm: {method: max, step_size: 0.5}\nquant_cfg: []\n", 1,
              "unknown key 'step_size' in algorithm 'max'");
}

TEST(LoaderErrorsTest, UnknownFormats) {
  ExpectError("quant_cfg:\n  - {quantizer_name: '*', cfg: {num_bits: fp4}}\n", 2,
              "unknown num_bits format 'fp4'");
  ExpectError("quant_cfg:\n\n  - {quantizer_name: '*', cfg: {num_bits: e8m0}}\n", 3,
              "unknown num_bits format E8M0");
  ExpectError("quant_cfg:\n  - {quantizer_name: '*', cfg: {num_bits: '(4,3'}}\n", 2,
              "unknown num_bits format");
  ExpectError(
      "quant_cfg:\n  - {quantizer_name: '*', cfg: {num_bits: e2m1, block_sizes: {-1: 16, "
      "scale_bits: fp8}}}\n",
      2, "unknown scale_bits format 'fp8'");
  ExpectError("quant_cfg:\n  - {quantizer_name: '*', cfg: {num_bits: e4m3, type: sometimes}}\n", 2,
              "unknown type 'sometimes'");
  ExpectError("algorithm: gptqq\nquant_cfg: []\n", 1, "unknown algorithm 'gptqq'");
  ExpectError("metadata: {recipe_type: auto_quantize}\nquant_cfg: []\n", 1,
              "recipe_type 'auto_quantize'");
}

TEST(LoaderErrorsTest, BadPatterns) {
  ExpectError(
      "quant_cfg:\n  - {quantizer_name: '*', enable: false}\n  - {quantizer_name: "
      "'*[kv_bmm_quantizer', enable: true}\n",
      3, "'[' at column 2 is never closed");
  ExpectError("quant_cfg:\n  '*mlp[': {enable: false}\n", 2, "never closed");
}

TEST(LoaderErrorsTest, WrongTypes) {
  ExpectError("quant_cfg:\n  - {quantizer_name: '*', enable: maybe}\n", 2,
              "'enable' must be true or false");
  ExpectError(
      "quant_cfg:\n  - {quantizer_name: '*', cfg: {num_bits: e2m1, block_sizes: {-1: sixteen}}}\n",
      2, "must be an integer");
  ExpectError("quant_cfg: 5\n", 1, "quant_cfg must be a list");
  ExpectError("quant_cfg:\n  - {quantizer_name: [a, b], enable: false}\n", 2,
              "'quantizer_name' must be a string");
  ExpectError("quant_cfg:\n  - {quantizer_name: '*', cfg: e4m3}\n", 2, "'cfg' must be a mapping");
  ExpectError("algorithm: {method: mse, start_multiplier: big}\nquant_cfg: []\n", 1,
              "'start_multiplier' must be a number");
  ExpectError(
      "algorithm: {method: mse, start_multiplier: 2.0, stop_multiplier: 1.0}\nquant_cfg: []\n", 1,
      "start_multiplier <= stop_multiplier");
  ExpectError("quant_cfg:\n  - {quantizer_name: '*', cfg: {num_bits: 0}}\n", 2, "out of range");
  ExpectError("quant_cfg:\n  - {quantizer_name: '*', cfg: {num_bits: e4m3, effective_bits: 20}}\n",
              2, "effective_bits must be in (0, 16]");
}

TEST(LoaderErrorsTest, InvalidEntries) {
  ExpectError(
      "quant_cfg:\n  - {quantizer_name: '*', enable: false}\n  - {quantizer_name: '*lm_head*'}\n",
      3, "has neither 'cfg' nor 'enable'");
  ExpectError("quant_cfg:\n  - {quantizer_name: '*', cfg: {}}\n", 2, "empty 'cfg'");
  ExpectError("quant_cfg:\n  - {quantizer_name: '*', cfg: {}, enable: true}\n", 2, "empty 'cfg'");
  ExpectError("quant_cfg:\n  - {enable: false, cfg: {num_bits: 8}}\n", 2, "no 'quantizer_name'");
  ExpectError("quant_cfg:\n  - {quantizer_name: '*', cfg: {num_bits: 8, enable: true}}\n", 2,
              "'enable' belongs on the quant_cfg entry");
  ExpectError(
      "quant_cfg:\n  - {quantizer_name: '*', cfg: {num_bits: e4m3, axis: 0, block_sizes: {-1: "
      "16}}}\n",
      2, "axis and block_sizes cannot both be set");
  ExpectError("quant_cfg:\n  - {quantizer_name: '*', enable: false, enable: true}\n", 2,
              "appears twice");
  ExpectError("quant_cfg:\n  - $import: nvfp4\n", 2, "$import 'nvfp4' is not declared");
  ExpectError("imports: {x: configs/numerics/nope}\nquant_cfg:\n  - $import: x\n", 3,
              "import path 'configs/numerics/nope'");
  ExpectError("algorithm: max\n", 1, "no 'quant_cfg'");
  ExpectError("auto_quantize: {}\n", 1, "auto_quantize recipes are not supported yet");
  ExpectError("quantize: {quant_cfg: []}\nalgorithm: max\n", 2, "must sit inside 'quantize:'");
}

TEST(LoaderErrorsTest, FileNameAndLineFromDiskAndImportCycles) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("qf_recipe_errors_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::filesystem::path path = dir / "typo.yaml";
  std::ofstream(path) << "quantize:\n  quant_cfg:\n    - quantizer_name: '*'\n      cfg: "
                         "{num_bits: e4m3, axs: 0}\n";
  try {
    LoadRecipe(path.string());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path.string() + ":4: unknown key 'axs'", 0), 0u)
        << e.what();
  }
  std::ofstream(dir / "loop_unit.yaml") << "imports: {me: loop_unit}\n---\n- $import: me\n";
  std::ofstream(dir / "loop.yaml") << "imports: {u: loop_unit}\nquant_cfg:\n  - $import: u\n";
  try {
    LoadRecipe((dir / "loop.yaml").string());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("import cycle"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qf
