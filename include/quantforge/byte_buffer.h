// ByteBuffer: the storage of quantized tensors (codes, scales) and of export tensors' bytes.
//
// A std::vector<uint8_t> with two differences, both for streaming hundreds of MiB per tensor:
// - resize() leaves the new bytes uninitialized (resize(n, value), assign and the constructors
//   with a value still fill): the quantizers write every byte of their outputs, so sizing them
//   costs no extra pass over memory (a zero-fill was a fifth of a 2-thread NVFP4 call on 1 GiB
//   of BF16). Code that fills only some bytes must size with resize(n, 0).
// - Blocks of at least kMinRecycledBytes are recycled: a freed one goes to a process-wide cache
//   (at most ByteBufferCacheLimit() bytes, least recently freed evicted first) and the next
//   request of the same size class (2 MiB multiples, advised as huge pages on Linux) takes it
//   back, with its old bytes. A pipeline that quantizes tensor after tensor then no longer pays
//   the kernel's first touch of fresh pages (zeroing, faults: 40 ms of a 105 ms NVFP4 call on
//   1 GiB of BF16 on 2 threads), the same way PyTorch's caching allocator spares its users.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace qf {

inline constexpr size_t kMinRecycledBytes = size_t{1} << 20;

// The cache of freed large blocks (byte_buffer.cc). Thread-safe.
void* AllocateRecycledBlock(size_t bytes);            // throws std::bad_alloc
void FreeRecycledBlock(void* p, size_t bytes) noexcept;
size_t ByteBufferCacheLimit();                         // default 512 MiB
void SetByteBufferCacheLimit(size_t bytes);            // 0 disables the cache (frees it)
size_t ByteBufferCachedBytes();                        // currently held, not in use

template <class T>
struct ByteBufferAllocator {
  using value_type = T;
  template <class U>
  struct rebind {
    using other = ByteBufferAllocator<U>;
  };
  ByteBufferAllocator() = default;
  template <class U>
  ByteBufferAllocator(const ByteBufferAllocator<U>&) noexcept {}

  T* allocate(size_t n) {
    if (n * sizeof(T) >= kMinRecycledBytes) {
      return static_cast<T*>(AllocateRecycledBlock(n * sizeof(T)));
    }
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, size_t n) noexcept {
    if (n * sizeof(T) >= kMinRecycledBytes) {
      FreeRecycledBlock(p, n * sizeof(T));
    } else {
      std::allocator<T>().deallocate(p, n);
    }
  }
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  template <class U>
  bool operator==(const ByteBufferAllocator<U>&) const noexcept {
    return true;
  }
};

using ByteBuffer = std::vector<uint8_t, ByteBufferAllocator<uint8_t>>;

}  // namespace qf
