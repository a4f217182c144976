// Helpers shared by the export tests: seeded weights, scalar read-back, and writing a small
// checkpoint directory through the io layer's CheckpointWriter.
#pragma once

#include <cstring>
#include <filesystem>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "quantforge/checkpoint.h"
#include "quantforge/export.h"
#include "quantforge/formats.h"

namespace qf::testutil {

// Normal(0, 0.02) weights with a heavy tail: every 97th element is an outlier up to 12 sigma,
// and one all-zero block of 16 at the start of row 1 (a zero NVFP4 block scale case).
inline std::vector<float> RandomWeights(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::uniform_real_distribution<float> outlier(-0.24f, 0.24f);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < w.size(); ++i) w[i] = i % 97 == 13 ? outlier(gen) : normal(gen);
  if (rows > 1 && cols >= 16) std::fill(w.begin() + cols, w.begin() + cols + 16, 0.0f);
  return w;
}

inline float ScalarOf(const ExportTensor& t) {
  float v = 0.0f;
  std::memcpy(&v, t.bytes.data(), sizeof(v));
  return v;
}

inline ByteBuffer ToBf16Bytes(const std::vector<float>& w) {
  ByteBuffer bytes(w.size() * 2);  // uninitialized: every byte is written below
  for (size_t i = 0; i < w.size(); ++i) {
    const uint16_t b = EncodeBF16(w[i]);
    std::memcpy(bytes.data() + 2 * i, &b, 2);
  }
  return bytes;
}

inline std::vector<float> FromBf16Bytes(std::span<const uint8_t> bytes) {
  std::vector<float> w(bytes.size() / 2);
  for (size_t i = 0; i < w.size(); ++i) {
    uint16_t b;
    std::memcpy(&b, bytes.data() + 2 * i, 2);
    w[i] = DecodeBF16(b);
  }
  return w;
}

// Writes `tensors` as a safetensors checkpoint into `dir` (created).
inline void WriteCheckpoint(const std::filesystem::path& dir,
                            const std::vector<ExportTensor>& tensors) {
  std::filesystem::create_directories(dir);
  std::vector<TensorSpec> plan;
  for (const ExportTensor& t : tensors) plan.push_back({t.name, t.dtype, t.shape});
  CheckpointWriter writer(dir, plan);
  for (const ExportTensor& t : tensors) writer.Write(t.name, t.Bytes());
  writer.Finish();
}

}  // namespace qf::testutil
