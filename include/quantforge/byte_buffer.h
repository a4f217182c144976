// ByteBuffer: the storage of quantized tensors (codes, scales) and of export tensors' bytes.
//
// A std::vector<uint8_t> whose resize() leaves the new bytes uninitialized (resize(n, value),
// assign and the constructors with a value still fill): the quantizers write every byte of their
// outputs, so sizing hundreds of MiB of them costs no extra pass over memory (a zero-fill was a
// fifth of a 2-thread NVFP4 call on 1 GiB of BF16), and the kernels' first touch of fresh pages
// is spread over the threads. Code that fills only some bytes must size with resize(n, 0).
#pragma once

#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

namespace qf {

template <class T>
struct DefaultInitAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  DefaultInitAllocator() = default;
  template <class U>
  DefaultInitAllocator(const DefaultInitAllocator<U>&) noexcept {}
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

using ByteBuffer = std::vector<uint8_t, DefaultInitAllocator<uint8_t>>;

}  // namespace qf
