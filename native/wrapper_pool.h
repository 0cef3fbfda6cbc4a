// Memory for TensorWrap objects, and the test that a pointer napi_unwrap returned is one of them.
//
// napi_unwrap also succeeds on objects that other addons wrapped, so a pointer must be checked
// before it is used. A hash set of every live wrapper did that, but every tensor made, disposed
// or passed touched a table as large as the number of wrappers awaiting garbage collection: a
// cache miss each time, 15-20% of a small op's whole call. Here wrappers live in 64 KiB chunks
// of this thread's own, and a pointer is ours exactly when its chunk is one of them: a lookup in
// a table of a few chunk addresses. Freed slots are reused last-in first-out, so the next tensor
// lands in memory that is still in cache. A chunk is returned to the system when its last
// wrapper goes, so a worker thread that ends leaves nothing behind.
#pragma once

#include <cstddef>

namespace innerloop {

class WrapperPool {
 public:
  // Memory for one object of `bytes` (at most kMaxObject), from the calling thread's pool.
  static void* Allocate(std::size_t bytes);
  // Returns memory from Allocate, on the thread that allocated it.
  static void Free(void* p) noexcept;
  // Whether `p` points into the calling thread's pool. Never reads through `p`.
  static bool Owns(const void* p) noexcept;

  static constexpr std::size_t kMaxObject = 128;  // sizeof(TensorWrap), rounded up (checked in tensor.cc)
};

}  // namespace innerloop
