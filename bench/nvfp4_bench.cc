// Micro benchmark of the NVFP4 quantizer (Google Benchmark): bytes of BF16 input per second for
// each algorithm, 1 thread and all threads, next to two baselines measured in the same run: a
// plain memory-read pass over the same buffer and the scalar reference. Sizes span L2 (256 KiB)
// to DRAM (64 MiB); the 1 GiB report is bench/quant_throughput_bench.cc.
//   nvfp4_bench --benchmark_filter=BM_Nvfp4/...
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "quantforge/formats.h"
#include "quantforge/quantize.h"
#include "quantforge/thread_pool.h"
#include "src/quant/nvfp4_reference.h"

namespace qf {
namespace {

// Heavy-tailed BF16 weights (Student-t, 3 dof) with 0.1% outliers, 16-element rows of 4096.
const std::vector<uint16_t>& Weights(size_t num_bytes) {
  static std::vector<uint16_t> cache;
  const size_t n = num_bytes / 2;
  if (cache.size() != n) {
    std::mt19937 rng(1);
    std::student_t_distribution<float> student(3.0f);
    std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
    cache.resize(n);
    for (size_t i = 0; i < n; ++i) {
      cache[i] = EncodeBF16(0.01f * student(rng) * (uniform(rng) < 0.001f ? 50.0f : 1.0f));
    }
  }
  return cache;
}

TensorView View(const std::vector<uint16_t>& w) {
  return MakeView(std::span<const uint16_t>(w), {static_cast<int64_t>(w.size() / 4096), 4096});
}

ThreadPool* Pool(int threads) {
  static ThreadPool all(0);
  return threads == 1 ? nullptr : &all;
}

void BM_MemoryRead(benchmark::State& state) {
  const auto& w = Weights(state.range(0));
  const uint64_t* p = reinterpret_cast<const uint64_t*>(w.data());
  const size_t n = w.size() / 4;
  for (auto _ : state) {
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i + 4 <= n; i += 4) {
      a ^= p[i], b ^= p[i + 1], c ^= p[i + 2], d ^= p[i + 3];
    }
    benchmark::DoNotOptimize(a ^ b ^ c ^ d);
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}

void BM_Nvfp4(benchmark::State& state) {
  const auto& w = Weights(state.range(0));
  Nvfp4Options options;
  options.algorithm = static_cast<BlockScaleAlgorithm>(state.range(1));
  ThreadPool* pool = Pool(static_cast<int>(state.range(2)));
  for (auto _ : state) benchmark::DoNotOptimize(QuantizeNvfp4(View(w), options, pool));
  state.SetBytesProcessed(state.iterations() * state.range(0));
  state.SetLabel(std::string(AlgorithmName(options.algorithm)) +
                 (state.range(2) == 1 ? " 1 thread" : " all threads"));
}

void BM_Nvfp4Reference(benchmark::State& state) {
  const auto& w = Weights(state.range(0));
  Nvfp4Options options;
  options.algorithm = static_cast<BlockScaleAlgorithm>(state.range(1));
  for (auto _ : state) benchmark::DoNotOptimize(ReferenceQuantizeNvfp4(View(w), options));
  state.SetBytesProcessed(state.iterations() * state.range(0));
  state.SetLabel(std::string(AlgorithmName(options.algorithm)) + " scalar reference");
}

constexpr int64_t kSizes[] = {256 << 10, 64 << 20};
constexpr int64_t kMax = static_cast<int64_t>(BlockScaleAlgorithm::kMax);
constexpr int64_t kMse = static_cast<int64_t>(BlockScaleAlgorithm::kMse);
constexpr int64_t k46 = static_cast<int64_t>(BlockScaleAlgorithm::kFourOverSix);

void Args(benchmark::internal::Benchmark* b) {
  for (int64_t size : kSizes) {
    for (int64_t algorithm : {kMax, k46, kMse}) {
      for (int64_t threads : {1, 0}) b->Args({size, algorithm, threads});
    }
  }
}

BENCHMARK(BM_MemoryRead)->Arg(256 << 10)->Arg(64 << 20)->UseRealTime();
BENCHMARK(BM_Nvfp4)->Apply(Args)->UseRealTime();
BENCHMARK(BM_Nvfp4Reference)->Args({4 << 20, kMax})->Args({4 << 20, k46})->UseRealTime();

}  // namespace
}  // namespace qf

BENCHMARK_MAIN();
