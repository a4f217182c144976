// The cache of freed large ByteBuffer blocks (include/quantforge/byte_buffer.h).
//
// Blocks are sized in 2 MiB classes and taken back only by a request of the same class, so a
// block's size is always known from the class of the request that frees it. At most kSlots
// blocks are held; the least recently freed goes first when the limit is exceeded. Freeing
// happens outside the lock. An allocation that fails empties the cache and tries once more, so
// under an address-space limit the cache never makes a job fail that would have run without
// it; under overcommit or a cgroup limit an allocation does not fail (the process is killed),
// which is why the cache is off until a program sizes it for its machine.
#include "quantforge/byte_buffer.h"

#include <cstdint>
#include <cstdlib>
#include <mutex>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace qf {
namespace {

constexpr size_t kClassBytes = size_t{2} << 20;  // a huge page
constexpr int kSlots = 64;

size_t SizeClass(size_t bytes) { return (bytes + kClassBytes - 1) / kClassBytes * kClassBytes; }

struct Cache {
  std::mutex mutex;
  struct Block {
    void* p;
    size_t bytes;
  };
  Block blocks[kSlots];  // [0, count): least recently freed first
  int count = 0;
  size_t cached_bytes = 0;
  size_t limit = 0;

  // Removes block i (keeping the others' order) and returns it.
  void* Take(int i) {
    void* p = blocks[i].p;
    cached_bytes -= blocks[i].bytes;
    for (int k = i + 1; k < count; ++k) blocks[k - 1] = blocks[k];
    --count;
    return p;
  }
  void* PopOldest() { return Take(0); }
  // Pops the least recently freed blocks into `out` until at most `bytes` are held; returns
  // their number.
  int EvictTo(size_t bytes, void** out) {
    int n = 0;
    while (count > 0 && cached_bytes > bytes) out[n++] = PopOldest();
    return n;
  }
};

// Never destroyed: buffers may be freed by other static destructors at exit.
Cache& TheCache() {
  static Cache* const cache = new Cache;
  return *cache;
}

// Frees cached blocks (outside the lock), least recently freed first, until at most `bytes`
// are held.
void TrimTo(Cache& cache, size_t bytes) {
  void* evicted[kSlots];
  int n = 0;
  {
    const std::lock_guard<std::mutex> lock(cache.mutex);
    n = cache.EvictTo(bytes, evicted);
  }
  for (int i = 0; i < n; ++i) std::free(evicted[i]);
}

}  // namespace

namespace byte_buffer_internal {

void* AllocateRecycledBlock(size_t bytes) {
  if (bytes > SIZE_MAX - kClassBytes) throw std::bad_alloc();
  const size_t size = SizeClass(bytes);
  Cache& cache = TheCache();
  {
    const std::lock_guard<std::mutex> lock(cache.mutex);
    for (int i = cache.count - 1; i >= 0; --i) {  // the most recently freed of the class
      if (cache.blocks[i].bytes == size) return cache.Take(i);
    }
  }
  void* p = std::aligned_alloc(kClassBytes, size);
  if (p == nullptr) {  // under an address-space or memory limit: give the cache back, then retry
    TrimTo(cache, 0);
    p = std::aligned_alloc(kClassBytes, size);
    if (p == nullptr) throw std::bad_alloc();
  }
#ifdef __linux__
  madvise(p, size, MADV_HUGEPAGE);
#endif
  return p;
}

void FreeRecycledBlock(void* p, size_t bytes) noexcept {
  const size_t size = SizeClass(bytes);
  Cache& cache = TheCache();
  void* evicted[kSlots + 1];
  int n = 0;
  {
    const std::lock_guard<std::mutex> lock(cache.mutex);
    if (size > cache.limit) {
      evicted[n++] = p;
    } else {
      if (cache.count == kSlots) evicted[n++] = cache.PopOldest();
      cache.blocks[cache.count++] = {p, size};
      cache.cached_bytes += size;
      n += cache.EvictTo(cache.limit, evicted + n);
    }
  }
  for (int i = 0; i < n; ++i) std::free(evicted[i]);
}

}  // namespace byte_buffer_internal

size_t ByteBufferCacheLimit() {
  Cache& cache = TheCache();
  const std::lock_guard<std::mutex> lock(cache.mutex);
  return cache.limit;
}

void SetByteBufferCacheLimit(size_t bytes) {
#if defined(__SANITIZE_ADDRESS__)
  bytes = 0;  // AddressSanitizer's quarantine must see every free
#endif
  Cache& cache = TheCache();
  {
    const std::lock_guard<std::mutex> lock(cache.mutex);
    cache.limit = bytes;
  }
  TrimTo(cache, bytes);
}

size_t ByteBufferCachedBytes() {
  Cache& cache = TheCache();
  const std::lock_guard<std::mutex> lock(cache.mutex);
  return cache.cached_bytes;
}

}  // namespace qf
