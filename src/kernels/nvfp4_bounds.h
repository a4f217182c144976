// E2M1 decision bounds of NVFP4 for BF16 inputs: the division-free form of
// q = x / (float(s) * g) -> E2M1 that the BF16 kernels use (nvfp4_bf16-inl.h).
//
// Why it is exact. The divisor d = float(s) * g takes one value per E4M3 scale code, so one row
// per code serves a whole tensor. IEEE division is correctly rounded and monotone, so for a
// representable boundary B of EncodeE2M1 (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5; each has an even
// last mantissa bit, so a tie rounds onto B):
//   fl(|x| / d) >= B  <=>  |x| >= ((pred(B) + B) / 2) * d
//   fl(|x| / d) >  B  <=>  |x| >  ((B + succ(B)) / 2) * d
// where the products are exact in double (25 + 24 significant bits). For a BF16 x each condition
// is |x| >= t for the smallest BF16 magnitude t that satisfies it, so the E2M1 magnitude code is
// the number of the 7 bounds that the BF16 bits of |x| reach, with integer compares. The sign
// bit of the code is (q < 0): it equals "x negative and not -0" as long as no nonzero BF16 x
// makes q underflow to -0, i.e. d < 2^17 (smallest BF16 subnormal 2^-133 over 2^-150).
//
// Build() refuses (returns false) a global scale outside that regime: d == 0 (x / 0 gives Inf or
// NaN, which EncodeE2M1 maps to 7) or d >= 2^17 for some code, i.e. g below 0x1.01p-141 or above
// 0x1.249248p+8: a global amax below about 2^-129.6 (2^-130.4 with the four-over-six constant
// 256) or from 786,432 (449,390 with 256) on. Those tensors take the division kernels.
#pragma once

#include <cstdint>

namespace qf {

struct Nvfp4DecisionTable {
  static constexpr int kCodes = 128;  // E4M3 codes; the kernels use 1..126 (s in [2^-9, 448])
  static constexpr int kBounds = 7;
  // One row per E4M3 code c, 256 bytes (one address per block in the kernels):
  struct alignas(64) Row {
    // bound[k][*] = t - 1 for the BF16 magnitude bits t of bound k (E2M1 magnitude code > k iff
    // int16(|x| bits) > t - 1), repeated over a 256-bit vector so that a compare can read it
    // from memory.
    int16_t bound[kBounds][16];
    // magnitude[m] = (E2M1 value m * float(s)) * g in float32, as the reference dequantizes:
    // the block loss of a candidate is sum((|x| - magnitude[code & 7])^2) (the signs of x and
    // of the code agree in the regime above, so x - deq has the magnitude of |x| - magnitude).
    float magnitude[8];
  };
  Row row[kCodes];  // 32 KiB; a tensor's blocks use a few dozen rows

  // The same codes from one table lookup (the AVX-512 kernels' vpermi2w or vpermb), where each
  // bucket of 32 consecutive BF16 magnitude patterns holds at most one bound t, i.e. almost
  // always: the bounds lie a factor of 1.4 or more apart (about 60 patterns; 51 at the least over
  // all tables) once they are normal numbers.
  // With base = the first bucket's start (the first bound minus one rounded down to a multiple of
  // 32: every pattern up to base has code 0) and
  // rel = min(max(bits - base, 0), 1023), bucket b = rel / 32 holds
  //   entry[b] = n * 2048 + 2047 - (t - base - 1)   (no bound inside: t - base - 1 := 32 b + 31)
  // for the n bounds at or below the bucket's start and the bound t inside it, so that
  //   code = (entry[rel / 32] + rel) / 2048,
  // all in unsigned 16-bit lanes (the sum stays below 2^14).
  // The same entries as bytes for vpermb (AVX-512 VBMI, the AVX3_DL target: one uop where
  // vpermi2w takes three), with r = rel % 32 the position inside the bucket:
  //   byte_entry[b] = n * 32 + 32 - (t - base - 32 b)   (no bound inside: t - base - 32 b := 32),
  //   code = (byte_entry[rel / 32] + r) / 32,
  // since t - base - 32 b is in [1, 31] for a bound inside (at most 6 * 32 + 31 + 31 = 254).
  struct alignas(64) BucketRow {
    uint16_t base[16];        // repeated over a 256-bit vector
    uint8_t byte_entry[32];   // for vpermb
    float magnitude[8];       // as Row::magnitude
    uint16_t entry[32];       // for vpermi2w; 1024 patterns from base on (the bounds span ~20x)
    uint8_t unused[96];       // rows of 256 bytes: the kernels address a row by code << 8
  };
  BucketRow bucket_row[kCodes];  // 32 KiB
  // Every row fits the bucket form: g from about 2^-118.3 on (a global amax from about 2^-107),
  // though not monotonically just above that. One row that does not fit sends the whole tensor
  // to the binary search.
  bool has_buckets = false;

  // Fills the table for global scale g; false when g is outside the exact regime above (the
  // contents are then unspecified).
  bool Build(float global_scale);
};

}  // namespace qf
