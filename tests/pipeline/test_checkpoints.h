// Small hand-made Llama-named checkpoints for pipeline tests, written with the real writer, plus
// helpers to compare directories and to check that a failed job left nothing behind.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "quantforge/checkpoint.h"
#include "quantforge/pipeline.h"
#include "quantforge/tensor.h"

namespace qf::testing {

struct TestTensor {
  std::string name;
  Shape shape;
  DType dtype = DType::kBF16;
  std::vector<float> values;  // row-major; converted to dtype when written
};

// A one-layer Llama-named model (hidden 32, intermediate 48, vocab 64, BF16) with heavy-tailed
// weights drawn from `seed`.
std::vector<TestTensor> TinyLlamaTensors(uint32_t seed);

// Writes model.safetensors + config.json into `dir` (created).
void WriteCheckpoint(const std::filesystem::path& dir, const std::vector<TestTensor>& tensors);

// A fresh empty directory under the test temp dir, removed by the caller's fixture.
std::filesystem::path FreshDir(const std::string& name);

// file name -> bytes of every regular file below `dir` (relative paths).
std::map<std::string, std::string> ReadTree(const std::filesystem::path& dir);

// The whole file as text (empty when absent).
std::string ReadText(const std::filesystem::path& path);

// The value of a 0-d F32 tensor of `checkpoint` (NaN, with a test failure, when absent).
float ScalarF32(const Checkpoint& checkpoint, const std::string& name);

// Names of the entries directly in `dir`.
std::vector<std::string> ListDir(const std::filesystem::path& dir);

// Runs the quantize job, expects a qf::Error containing `needle`, and checks that nothing was
// left beside the output (no output directory, no temporary sibling) and the input model is
// unchanged.
void ExpectQuantizeRefused(const QuantizeOptions& options, const std::string& needle);

}  // namespace qf::testing
