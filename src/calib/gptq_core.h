// Internal to src/calib: the format-independent GPTQ sweep. A format plugs in as a
// GptqElementQuantizer that rounds one weight to its grid and records the code; the sweep owns
// the column order, the error propagation and the threading.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "quantforge/calib.h"

namespace qf::calib {

class GptqElementQuantizer {
 public:
  virtual ~GptqElementQuantizer() = default;
  // Columns sharing one scale whose scale is chosen at group start (kAtGroupStart), else 0.
  virtual int64_t GroupSize() const { return 0; }
  // Called when the sweep reaches column `first_col` (a multiple of GroupSize()) of `row`, with
  // the current (updated) values of the group's columns, fewer at the right edge.
  virtual void StartGroup(int64_t /*row*/, int64_t /*first_col*/,
                          std::span<const float> /*values*/) {}
  // Quantizes w at (row, col), stores its code and returns the dequantized value. Called from
  // several threads at once, but for a given row always from one thread.
  virtual float Quantize(int64_t row, int64_t col, float w) = 0;
};

// Runs GPTQ over w [rows, cols] with the upper factor u of the damped inverse Hessian (already
// permuted when `perm` is given: position i of the sweep is original column perm[i]). Rows are
// independent given u, so tasks are fixed tiles of rows.
void RunGptqSweep(std::span<const float> w, int64_t rows, int64_t cols,
                  std::span<const double> u, std::span<const int64_t> perm, int64_t block_size,
                  GptqElementQuantizer& quantizer, ThreadPool* pool);

// Shape checks, preparation (dead columns, damping, act-order permutation, factor) and the
// sweep: what every Gptq<Format> call does around its quantizer.
void RunGptq(std::span<const float> w, int64_t rows, int64_t cols, const Hessian& h,
             const GptqOptions& options, GptqElementQuantizer& quantizer, ThreadPool* pool,
             GptqStats* stats);

}  // namespace qf::calib
