// ByteBuffer: the storage of quantized tensors (codes, scales) and of export tensors' bytes.
//
// A std::vector<uint8_t> with two differences, both for streaming hundreds of MiB per tensor:
// - resize() leaves the new bytes uninitialized (resize(n, value), assign and the constructors
//   with a value still fill): the quantizers write every byte of their outputs, so sizing them
//   costs no extra pass over memory (a zero-fill was a fifth of a 2-thread NVFP4 call on 1 GiB
//   of BF16). Code that fills only some bytes must size with resize(n, 0).
// - Blocks of at least kMinRecycledBytes can be recycled: while the cache is enabled
//   (SetByteBufferCacheLimit; off by default, the quantforge CLI turns it on), a freed one goes
//   to a process-wide cache (at most the limit, least recently freed evicted first) and the next
//   request of the same size class (2 MiB multiples, advised as huge pages on Linux) takes it
//   back, with its old bytes. A pipeline that quantizes tensors of repeating shapes then no
//   longer pays the kernel's first touch of fresh pages (zeroing, faults: 40 ms of a 105 ms NVFP4
//   call on 1 GiB of BF16 on 2 threads), as PyTorch's caching allocator spares its users. Off
//   under AddressSanitizer, whose quarantine must see every free.
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
size_t ByteBufferCacheLimit();               // 0 (off) until set
void SetByteBufferCacheLimit(size_t bytes);  // 0 turns it off and frees what it holds
size_t ByteBufferCachedBytes();              // currently held, not in use

namespace byte_buffer_internal {
void* AllocateRecycledBlock(size_t bytes);  // throws std::bad_alloc
void FreeRecycledBlock(void* p, size_t bytes) noexcept;
}  // namespace byte_buffer_internal

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
      return static_cast<T*>(byte_buffer_internal::AllocateRecycledBlock(n * sizeof(T)));
    }
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, size_t n) noexcept {
    if (n * sizeof(T) >= kMinRecycledBytes) {
      byte_buffer_internal::FreeRecycledBlock(p, n * sizeof(T));
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
