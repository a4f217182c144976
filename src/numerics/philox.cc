// Philox4x32 counter-based random number generator (Salmon, Moraes, Dror, Shaw, "Parallel random
// numbers: as easy as 1, 2, 3", SC'11; the Random123 library's philox4x32_R).
//
// output = bijection_key(counter): each round multiplies two of the four 32-bit words by fixed
// odd constants, keeps both halves of the 64-bit products, and mixes them with the other two words
// and the key; the key is bumped by the Weyl constants (golden ratio, sqrt(3) - 1) between rounds,
// so R rounds use R keys and R - 1 bumps. Counter-based means word i of element i's stream needs no
// state, which is what makes stochastic rounding reproducible whatever the thread split.
// Random123 tests 10 rounds (the default); 7 is its "fast" variant and 5 is what SGLang's Mamba
// SSM cache rounding uses, trading statistical margin for speed.
#include "quantforge/formats.h"

namespace qf {
namespace {
constexpr uint32_t kMultiplier0 = 0xD2511F53u;  // PHILOX_M4x32_0
constexpr uint32_t kMultiplier1 = 0xCD9E8D57u;  // PHILOX_M4x32_1
constexpr uint32_t kWeyl0 = 0x9E3779B9u;        // golden ratio
constexpr uint32_t kWeyl1 = 0xBB67AE85u;        // sqrt(3) - 1

// High and low 32 bits of the 64-bit product a * b.
inline void MulHiLo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t product = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
}

PhiloxCounter Round(const PhiloxCounter& c, const PhiloxKey& key) {
  uint32_t hi0, lo0, hi1, lo1;
  MulHiLo(kMultiplier0, c[0], hi0, lo0);
  MulHiLo(kMultiplier1, c[2], hi1, lo1);
  return {hi1 ^ c[1] ^ key[0], lo1, hi0 ^ c[3] ^ key[1], lo0};
}
}  // namespace

PhiloxCounter Philox4x32(PhiloxCounter counter, PhiloxKey key, int rounds) {
  for (int r = 0; r < rounds; ++r) {
    if (r > 0) {  // bump the key between rounds (unsigned wrap-around is intended)
      key[0] += kWeyl0;
      key[1] += kWeyl1;
    }
    counter = Round(counter, key);
  }
  return counter;
}

}  // namespace qf
