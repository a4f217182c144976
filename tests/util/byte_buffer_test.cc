// ByteBuffer (include/quantforge/byte_buffer.h): uninitialized resize, and the cache of freed
// large blocks: recycled by size class, filled correctly when asked to, bounded by its limit.
#include "quantforge/byte_buffer.h"

#include <gtest/gtest.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace qf {
namespace {

constexpr size_t kLarge = size_t{5} << 20;  // 3 size classes of 2 MiB, rounded up to 6 MiB

// Each test starts with an empty cache of 512 MiB and restores the previous limit (emptying the
// cache) after. Under AddressSanitizer the cache stays off, so these tests skip.
class ByteBufferCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    limit_ = ByteBufferCacheLimit();
    SetByteBufferCacheLimit(0);
    SetByteBufferCacheLimit(size_t{512} << 20);
    if (ByteBufferCacheLimit() == 0) GTEST_SKIP() << "the cache is off under AddressSanitizer";
  }
  void TearDown() override {
    SetByteBufferCacheLimit(0);
    SetByteBufferCacheLimit(limit_);
  }
  size_t limit_ = 0;
};

TEST_F(ByteBufferCacheTest, FreedLargeBlockIsReusedBySameSizeClass) {
  const uint8_t* first;
  {
    ByteBuffer a(kLarge, 7);
    first = a.data();
  }
  EXPECT_EQ(ByteBufferCachedBytes(), size_t{6} << 20);
  ByteBuffer b;
  b.resize(kLarge - 1000);  // same 6 MiB class
  EXPECT_EQ(b.data(), first);
  EXPECT_EQ(ByteBufferCachedBytes(), 0u);
  // A different class does not take it.
  ByteBuffer c(kLarge, 1);
  b = ByteBuffer();
  ByteBuffer d(size_t{9} << 20, 0);
  EXPECT_NE(d.data(), first);
}

TEST_F(ByteBufferCacheTest, SmallerClassLeavesABiggerBlockCached) {
  { ByteBuffer big(kLarge); }  // 6 MiB cached
  ByteBuffer small(size_t{3} << 20);
  EXPECT_EQ(ByteBufferCachedBytes(), size_t{6} << 20);
}

TEST_F(ByteBufferCacheTest, RecycledBytesAreFilledWhenAskedTo) {
  { ByteBuffer dirty(kLarge, 0xAB); }
  ByteBuffer zeros(kLarge, 0);  // takes the dirty block back
  EXPECT_TRUE(std::all_of(zeros.begin(), zeros.end(), [](uint8_t v) { return v == 0; }));
  ByteBuffer other;
  { ByteBuffer dirty(kLarge, 0xCD); }
  other.resize(kLarge, 0);
  EXPECT_TRUE(std::all_of(other.begin(), other.end(), [](uint8_t v) { return v == 0; }));
}

TEST_F(ByteBufferCacheTest, HoldsAtMostItsLimit) {
  SetByteBufferCacheLimit(size_t{12} << 20);  // two 6 MiB blocks
  {
    ByteBuffer a(kLarge), b(kLarge), c(kLarge);
  }
  EXPECT_EQ(ByteBufferCachedBytes(), size_t{12} << 20);
  SetByteBufferCacheLimit(size_t{6} << 20);
  EXPECT_EQ(ByteBufferCachedBytes(), size_t{6} << 20);
  { ByteBuffer too_big(size_t{7} << 20); }  // 8 MiB class above the limit: freed at once
  EXPECT_EQ(ByteBufferCachedBytes(), size_t{6} << 20);
  SetByteBufferCacheLimit(0);
  EXPECT_EQ(ByteBufferCachedBytes(), 0u);
  { ByteBuffer a(kLarge); }
  EXPECT_EQ(ByteBufferCachedBytes(), 0u);
}

TEST_F(ByteBufferCacheTest, SmallBuffersBypassTheCache) {
  { ByteBuffer small(kMinRecycledBytes - 1, 3); }
  EXPECT_EQ(ByteBufferCachedBytes(), 0u);
  ByteBuffer grown;
  for (int i = 0; i < 3000; ++i) grown.push_back(static_cast<uint8_t>(i));
  EXPECT_EQ(grown[2999], static_cast<uint8_t>(2999));
}

TEST_F(ByteBufferCacheTest, GrowingCopiesTheContents) {
  ByteBuffer v(kLarge);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>(i * 31);
  v.resize(size_t{11} << 20, 0);  // reallocates into another class
  bool ok = true;
  for (size_t i = 0; i < kLarge; ++i) ok &= v[i] == static_cast<uint8_t>(i * 31);
  EXPECT_TRUE(ok);
  EXPECT_EQ(v[v.size() - 1], 0);
}

// In a child process: the cache holds 200 MiB, the address space is limited to what is mapped
// plus 100 MiB, then a 250 MiB buffer of another size class is asked for. Exits 0 when it came.
[[noreturn]] void AllocateUnderAddressSpaceLimit() {
  { ByteBuffer cached(size_t{200} << 20); }
  long pages = 0;
  FILE* statm = std::fopen("/proc/self/statm", "r");
  if (statm == nullptr || std::fscanf(statm, "%ld", &pages) != 1) std::_Exit(2);
  std::fclose(statm);
  rlimit limit{};
  limit.rlim_cur = static_cast<rlim_t>(pages) * static_cast<rlim_t>(sysconf(_SC_PAGESIZE)) +
                   (rlim_t{100} << 20);
  limit.rlim_max = limit.rlim_cur;
  if (setrlimit(RLIMIT_AS, &limit) != 0) std::_Exit(3);
  try {
    ByteBuffer big(size_t{250} << 20);
    std::_Exit(big.size() == (size_t{250} << 20) ? 0 : 4);
  } catch (const std::bad_alloc&) {
    std::_Exit(5);
  }
}

// Under an address-space limit, an allocation that only fits once the cache is given back
// succeeds: the cache never fails a job that would have run without it. (Not under
// AddressSanitizer, whose shadow memory needs the address space.)
TEST_F(ByteBufferCacheTest, FailedAllocationFirstGivesTheCacheBack) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "RLIMIT_AS and AddressSanitizer do not mix";
#else
  EXPECT_EXIT(AllocateUnderAddressSpaceLimit(), ::testing::ExitedWithCode(0), "");
#endif
}

}  // namespace
}  // namespace qf
