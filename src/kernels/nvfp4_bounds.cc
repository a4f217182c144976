// Nvfp4DecisionTable::Build (nvfp4_bounds.h): scalar, once per tensor, exact double arithmetic.
#include "src/kernels/nvfp4_bounds.h"

#include <bit>
#include <cmath>

#include "quantforge/formats.h"

namespace qf {
namespace {

// EncodeE2M1's boundaries in order; strict: the code passes the boundary only above it (the tie
// rounds down to the even code), otherwise from it on (the tie rounds up).
constexpr float kBoundary[Nvfp4DecisionTable::kBounds] = {0.25f, 0.75f, 1.25f, 1.75f,
                                                          2.5f,  3.5f,  5.0f};
constexpr bool kStrict[Nvfp4DecisionTable::kBounds] = {true, false, true, false, true, false, true};

// The smallest BF16 magnitude pattern (0 .. 0x7F80) whose value exceeds r (strict) or reaches it.
uint16_t SmallestBF16Reaching(double r, bool strict) {
  const auto reaches = [&](uint32_t bits) {
    const double v = DecodeBF16(static_cast<uint16_t>(bits));
    return strict ? v > r : v >= r;
  };
  const float f = static_cast<float>(r);  // within a BF16 step or two of the answer
  uint32_t bits = std::isfinite(f) ? (std::bit_cast<uint32_t>(f) >> 16) : 0x7F80u;
  while (bits < 0x7F80u && !reaches(bits)) ++bits;
  while (bits > 0 && reaches(bits - 1)) --bits;
  return static_cast<uint16_t>(bits);
}

// Row's bounds in the bucket form of BucketRow; false when a bucket would hold two bounds or the
// last bound lies 1024 patterns or more past the base.
bool FillBuckets(const Nvfp4DecisionTable::Row& row, Nvfp4DecisionTable::BucketRow* out) {
  constexpr int kBucket = 32, kBuckets = 32;
  int t[Nvfp4DecisionTable::kBounds];
  for (int k = 0; k < Nvfp4DecisionTable::kBounds; ++k) t[k] = row.bound[k][0] + 1;
  // Below the base (rel 0) the code is 0, so the first bound lies past it: t[0] >= 1.
  const int base = (t[0] - 1) / kBucket * kBucket;
  if (t[Nvfp4DecisionTable::kBounds - 1] - base >= kBucket * kBuckets) return false;
  for (int lane = 0; lane < 16; ++lane) out->base[lane] = static_cast<uint16_t>(base);
  int below = 0;  // bounds at or below the bucket's start (the bounds are sorted)
  for (int b = 0; b < kBuckets; ++b) {
    const int start = base + b * kBucket;
    while (below < Nvfp4DecisionTable::kBounds && t[below] <= start) ++below;
    int inside = below;
    while (inside < Nvfp4DecisionTable::kBounds && t[inside] < start + kBucket) ++inside;
    if (inside - below > 1) return false;
    const int last = inside > below ? t[below] : start + kBucket;  // start + 32: "no bound inside"
    out->entry[b] = static_cast<uint16_t>(below * 2048 + 2047 - (last - base - 1));
    out->byte_entry[b] = static_cast<uint8_t>(below * 32 + 32 - (last - start));
  }
  for (int m = 0; m < 8; ++m) out->magnitude[m] = row.magnitude[m];
  return true;
}

}  // namespace

bool Nvfp4DecisionTable::Build(float global_scale) {
  constexpr float kMaxDivisor = 131072.0f;  // 2^17
  has_buckets = false;                      // until every row is filled
  for (int code = 1; code <= 0x7E; ++code) {
    const float s = DecodeE4M3(static_cast<uint8_t>(code));
    const float divisor = s * global_scale;
    if (!(divisor > 0.0f) || !(divisor < kMaxDivisor)) return false;
    for (int k = 0; k < kBounds; ++k) {
      const double b = kBoundary[k];
      const double neighbour = std::nextafter(kBoundary[k], kStrict[k] ? 1e30f : 0.0f);
      const double r = ((b + neighbour) / 2.0) * static_cast<double>(divisor);  // exact
      const uint32_t t = SmallestBF16Reaching(r, kStrict[k]);
      const int16_t t_minus_1 = static_cast<int16_t>(static_cast<int>(t) - 1);  // t = 0: -1
      for (int lane = 0; lane < 16; ++lane) row[code].bound[k][lane] = t_minus_1;
    }
    for (int m = 0; m < 8; ++m) {
      row[code].magnitude[m] = (DecodeE2M1(static_cast<uint8_t>(m)) * s) * global_scale;
    }
  }
  // Codes 0 (s = 0) and 127 (NaN) never occur (s is clamped to [2^-9, 448]); keep them defined.
  row[0] = row[1];
  row[0x7F] = row[0x7E];
  has_buckets = true;
  for (int code = 0; code < kCodes; ++code) {
    has_buckets = has_buckets && FillBuckets(row[code], &bucket_row[code]);
  }
  return true;
}

}  // namespace qf
