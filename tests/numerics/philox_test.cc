// Philox4x32 against the Random123 known-answer vectors.
//
// Source: Random123 (D. E. Shaw Research), file tests/kat_vectors, the rows "philox4x32 10" and
// "philox4x32 7" (format: rounds, counter[4], key[2], expected output[4], hex words). The
// 10-round rows are quoted identically by many public ports (Julia, Rust, C, Python test suites);
// the 7-round rows come from the same file.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>

#include "quantforge/formats.h"
#include "tests/numerics/reference.h"

namespace qf::test {
namespace {

struct KnownAnswer {
  int rounds;
  PhiloxCounter counter;
  PhiloxKey key;
  PhiloxCounter expected;
};

const KnownAnswer kKnownAnswers[] = {
    {10, {0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {10,
     {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {10,
     {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},  // digits of pi
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    {7, {0, 0, 0, 0}, {0, 0}, {0x5f6fb709, 0x0d893f64, 0x4f121f81, 0x4f730a48}},
    {7,
     {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x5207ddc2, 0x45165e59, 0x4d8ee751, 0x8c52f662}},
    {7,
     {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0x4dfccaba, 0x190a87f0, 0xc47362ba, 0xb6b5242a}},
};

TEST(PhiloxTest, MatchesRandom123KnownAnswers) {
  for (const KnownAnswer& kat : kKnownAnswers) {
    const PhiloxCounter actual = Philox4x32(kat.counter, kat.key, kat.rounds);
    for (int w = 0; w < 4; ++w) {
      EXPECT_EQ(Hex(actual[w]), Hex(kat.expected[w]))
          << "rounds " << kat.rounds << ", counter[0] " << Hex(kat.counter[0]) << ", word " << w;
    }
  }
}

TEST(PhiloxTest, DefaultIsTenRounds) {
  EXPECT_EQ(Philox4x32({1, 2, 3, 4}, {5, 6}), Philox4x32({1, 2, 3, 4}, {5, 6}, 10));
}

// 5 rounds (SGLang's Mamba cache) and 7 have no published vectors: check they are deterministic,
// differ from each other and from 10, and still change every word when the counter steps by one.
TEST(PhiloxTest, FewerRoundsAreDeterministicAndDistinct) {
  const PhiloxCounter counter = {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344};
  const PhiloxKey key = {0xa4093822, 0x299f31d0};
  const PhiloxCounter r5 = Philox4x32(counter, key, 5);
  const PhiloxCounter r7 = Philox4x32(counter, key, 7);
  const PhiloxCounter r10 = Philox4x32(counter, key, 10);
  EXPECT_EQ(r5, Philox4x32(counter, key, 5));
  EXPECT_EQ(r7, Philox4x32(counter, key, 7));
  EXPECT_NE(r5, r7);
  EXPECT_NE(r5, r10);
  EXPECT_NE(r7, r10);
  const PhiloxCounter next =
      Philox4x32({counter[0] + 1, counter[1], counter[2], counter[3]}, key, 5);
  for (int w = 0; w < 4; ++w) EXPECT_NE(next[w], r5[w]) << "word " << w;
}

// A one-round run is small enough to check by hand from the round function's definition:
// (hi(M1*c2) ^ c1 ^ k0, lo(M1*c2), hi(M0*c0) ^ c3 ^ k1, lo(M0*c0)), M0 = 0xD2511F53,
// M1 = 0xCD9E8D57. With counter {1, 0, 1, 0} and key {0, 0} that is the halves of M1 and M0.
TEST(PhiloxTest, OneRoundFollowsTheDefinition) {
  const PhiloxCounter out = Philox4x32({1, 0, 1, 0}, {0, 0}, 1);
  EXPECT_EQ(out, (PhiloxCounter{0, 0xCD9E8D57, 0, 0xD2511F53}));
}

}  // namespace
}  // namespace qf::test
