// Micro benchmarks of the MXFP4 / MXFP8 / FP8 quantizers and TensorAmax: each vectorized path next
// to its scalar reference and a plain memory-read pass over the same BF16 buffer, measured in the
// same run. Bytes per second count the BF16 input (2 bytes per element); the scalar references
// get the input already widened to F32 (their widening is not timed), so the ratio understates
// the vectorized path's advantage.
//
// Sizes: 256 x 4096 (2 MiB BF16, cache-resident on this machine's L2/L3) and 4096 x 4096
// (32 MiB, DRAM). Threads: 1 (pool nullptr) and all hardware threads (suffix /threads:all).
// Run: mx_fp8_bench --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "quantforge/formats.h"
#include "quantforge/quantize.h"
#include "src/quant/fp8_reference.h"
#include "src/quant/mx_reference.h"

namespace qf {
namespace {

constexpr int64_t kCols = 4096;

// Heavy-tailed weights (Student t, 3 degrees of freedom) with one outlier in 1,000.
struct Data {
  explicit Data(int64_t rows) : rows(rows), bf16(rows * kCols), f32(rows * kCols) {
    std::mt19937 rng(1234);
    std::student_t_distribution<float> student(3.0f);
    std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
    for (size_t i = 0; i < f32.size(); ++i) {
      float x = 0.02f * student(rng);
      if (uniform(rng) < 0.001f) x *= 50.0f;
      bf16[i] = EncodeBF16(x);
      f32[i] = DecodeBF16(bf16[i]);
    }
  }
  TensorView View() const { return MakeView(bf16, {rows, kCols}, "bench"); }
  int64_t rows;
  std::vector<uint16_t> bf16;
  std::vector<float> f32;
};

const Data& GetData(int64_t rows) {
  if (rows == 256) {
    static const Data small(256);  // built on first use, then read-only
    return small;
  }
  static const Data large(4096);
  return large;
}

ThreadPool* PoolFor(const benchmark::State& state) {
  static ThreadPool pool(0);  // all hardware threads, created once
  return state.range(1) != 0 ? &pool : nullptr;
}

void SetBytes(benchmark::State& state, const Data& d) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * d.rows * kCols * 2);
}

void BM_MemoryRead(benchmark::State& state) {
  const Data& d = GetData(state.range(0));
  for (auto _ : state) {
    uint64_t sum = 0;
    const size_t n = d.bf16.size() * 2 / 8;
    const uint8_t* p = reinterpret_cast<const uint8_t*>(d.bf16.data());
    for (size_t i = 0; i < n; ++i) {
      uint64_t w;
      std::memcpy(&w, p + 8 * i, 8);
      sum += w;
    }
    benchmark::DoNotOptimize(sum);
  }
  SetBytes(state, d);
}

void BM_TensorAmax(benchmark::State& state) {
  const Data& d = GetData(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(TensorAmax(d.View(), PoolFor(state)));
  SetBytes(state, d);
}

void BM_TensorAmaxScalar(benchmark::State& state) {
  const Data& d = GetData(state.range(0));
  for (auto _ : state) {
    float amax = 0.0f;
    bool finite = true;
    for (uint16_t b : d.bf16) {
      const float x = DecodeBF16(b);
      finite &= std::isfinite(x);
      amax = std::fabs(x) > amax ? std::fabs(x) : amax;
    }
    benchmark::DoNotOptimize(amax);
    benchmark::DoNotOptimize(finite);
  }
  SetBytes(state, d);
}

template <MxElement kElement, MxScaleRule kRule>
void BM_Mx(benchmark::State& state) {
  const Data& d = GetData(state.range(0));
  for (auto _ : state) {
    MxTensor t = QuantizeMx(d.View(), kElement, kRule, PoolFor(state));
    benchmark::DoNotOptimize(t.codes.data());
  }
  SetBytes(state, d);
}

template <MxElement kElement, MxScaleRule kRule>
void BM_MxScalar(benchmark::State& state) {
  const Data& d = GetData(state.range(0));
  for (auto _ : state) {
    MxTensor t = ReferenceQuantizeMx(d.f32, d.rows, kCols, kElement, kRule);
    benchmark::DoNotOptimize(t.codes.data());
  }
  SetBytes(state, d);
}

template <Fp8Granularity kGranularity>
void BM_Fp8(benchmark::State& state) {
  const Data& d = GetData(state.range(0));
  for (auto _ : state) {
    Fp8Tensor t = QuantizeFp8(d.View(), kGranularity, std::nullopt, PoolFor(state));
    benchmark::DoNotOptimize(t.codes.data());
  }
  SetBytes(state, d);
}

template <Fp8Granularity kGranularity>
void BM_Fp8Scalar(benchmark::State& state) {
  const Data& d = GetData(state.range(0));
  for (auto _ : state) {
    Fp8Tensor t = ReferenceQuantizeFp8(d.f32, d.rows, kCols, kGranularity, std::nullopt);
    benchmark::DoNotOptimize(t.codes.data());
  }
  SetBytes(state, d);
}

// Dequantization: bytes count the F32 output / 2 (i.e. the same element count as above).
template <MxElement kElement>
void BM_MxDequantize(benchmark::State& state) {
  const Data& d = GetData(state.range(0));
  const MxTensor t = QuantizeMx(d.View(), kElement, MxScaleRule::kOcpFloor);
  std::vector<float> out(d.f32.size());
  for (auto _ : state) {
    DequantizeMx(t, out, PoolFor(state));
    benchmark::DoNotOptimize(out.data());
  }
  SetBytes(state, d);
}

template <MxElement kElement>
void BM_MxDequantizeScalar(benchmark::State& state) {
  const Data& d = GetData(state.range(0));
  const MxTensor t = QuantizeMx(d.View(), kElement, MxScaleRule::kOcpFloor);
  std::vector<float> out(d.f32.size());
  for (auto _ : state) {
    ReferenceDequantizeMx(t, out);
    benchmark::DoNotOptimize(out.data());
  }
  SetBytes(state, d);
}

// {rows, threads}: threads 0 = one (the caller), 1 = all hardware threads.
void Vectorized(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "all_threads"})
      ->Args({256, 0})
      ->Args({4096, 0})
      ->Args({4096, 1})
      ->UseRealTime();
}
void Scalar(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "all_threads"})->Args({256, 0})->UseRealTime();
}

BENCHMARK(BM_MemoryRead)->Apply(Scalar)->Args({4096, 0});
BENCHMARK(BM_TensorAmax)->Apply(Vectorized);
BENCHMARK(BM_TensorAmaxScalar)->Apply(Scalar);
BENCHMARK_TEMPLATE(BM_Mx, MxElement::kE2M1, MxScaleRule::kOcpFloor)->Apply(Vectorized);
BENCHMARK_TEMPLATE(BM_MxScalar, MxElement::kE2M1, MxScaleRule::kOcpFloor)->Apply(Scalar);
BENCHMARK_TEMPLATE(BM_Mx, MxElement::kE2M1, MxScaleRule::kCeil)->Apply(Vectorized);
BENCHMARK_TEMPLATE(BM_MxScalar, MxElement::kE2M1, MxScaleRule::kCeil)->Apply(Scalar);
BENCHMARK_TEMPLATE(BM_Mx, MxElement::kE4M3, MxScaleRule::kOcpFloor)->Apply(Vectorized);
BENCHMARK_TEMPLATE(BM_MxScalar, MxElement::kE4M3, MxScaleRule::kOcpFloor)->Apply(Scalar);
BENCHMARK_TEMPLATE(BM_Mx, MxElement::kE4M3, MxScaleRule::kCeil)->Apply(Vectorized);
BENCHMARK_TEMPLATE(BM_MxScalar, MxElement::kE4M3, MxScaleRule::kCeil)->Apply(Scalar);
BENCHMARK_TEMPLATE(BM_Fp8, Fp8Granularity::kPerTensor)->Apply(Vectorized);
BENCHMARK_TEMPLATE(BM_Fp8Scalar, Fp8Granularity::kPerTensor)->Apply(Scalar);
BENCHMARK_TEMPLATE(BM_Fp8, Fp8Granularity::kPerChannel)->Apply(Vectorized);
BENCHMARK_TEMPLATE(BM_Fp8Scalar, Fp8Granularity::kPerChannel)->Apply(Scalar);
BENCHMARK_TEMPLATE(BM_MxDequantize, MxElement::kE2M1)->Apply(Vectorized);
BENCHMARK_TEMPLATE(BM_MxDequantizeScalar, MxElement::kE2M1)->Apply(Scalar);
BENCHMARK_TEMPLATE(BM_MxDequantize, MxElement::kE4M3)->Apply(Vectorized);
BENCHMARK_TEMPLATE(BM_MxDequantizeScalar, MxElement::kE4M3)->Apply(Scalar);

}  // namespace
}  // namespace qf

BENCHMARK_MAIN();
