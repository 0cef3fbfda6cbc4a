#include "wrapper_pool.h"

#include <c10/util/flat_hash_map.h>

#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

namespace innerloop {
namespace {

constexpr std::size_t kChunkBytes = 64 * 1024;  // also the chunk's alignment
constexpr std::size_t kSlot = WrapperPool::kMaxObject;

struct Pool;

struct Chunk {
  Pool* pool;
  void* freeList;      // slots freed in this chunk, linked through their first word
  std::uint32_t live;  // slots handed out and not yet freed
  std::uint32_t used;  // slots handed out at least once (the rest were never touched)
  bool listed;         // in pool->withRoom
};

constexpr std::size_t kFirstSlot = (sizeof(Chunk) + 63) / 64 * 64;
constexpr std::uint32_t kSlots = static_cast<std::uint32_t>((kChunkBytes - kFirstSlot) / kSlot);

struct Pool {
  Chunk* current = nullptr;
  std::vector<Chunk*> withRoom;  // other chunks with a free slot
  ska::flat_hash_set<std::uintptr_t> chunks;
};

// One pool per thread: the main thread and each worker allocate and free their own wrappers
// (N-API runs finalizers on the thread of their environment).
thread_local Pool* tPool = nullptr;

// At the thread's exit: the chunk kept for reuse goes if it is empty, and the pool with it when
// no wrapper is left. A pool that still has wrappers stays, for finalizers that run later still.
struct PoolReaper {
  ~PoolReaper() {
    Pool* pool = tPool;
    if (pool == nullptr) return;
    if (Chunk* c = pool->current; c != nullptr && c->live == 0) {
      pool->chunks.erase(reinterpret_cast<std::uintptr_t>(c));
      pool->current = nullptr;
      c->~Chunk();
      std::free(c);
    }
    if (pool->chunks.empty()) {
      tPool = nullptr;
      delete pool;
    }
  }
};
thread_local PoolReaper tReaper;

Pool& ThisPool() {
  if (tPool == nullptr) {
    tPool = new Pool();
    (void)&tReaper;  // odr-use: registers the reaper for this thread
  }
  return *tPool;
}

Chunk* ChunkOf(const void* p) {
  return reinterpret_cast<Chunk*>(reinterpret_cast<std::uintptr_t>(p) & ~(kChunkBytes - 1));
}

bool HasRoom(const Chunk* c) { return c->freeList != nullptr || c->used < kSlots; }

Chunk* NewChunk(Pool& pool) {
  void* mem = std::aligned_alloc(kChunkBytes, kChunkBytes);
  if (mem == nullptr) throw std::bad_alloc();
  auto* c = new (mem) Chunk{&pool, nullptr, 0, 0, false};
  pool.chunks.insert(reinterpret_cast<std::uintptr_t>(c));
  return c;
}

}  // namespace

void* WrapperPool::Allocate(std::size_t bytes) {
  if (bytes > kSlot) throw std::bad_alloc();
  Pool& pool = ThisPool();
  Chunk* c = pool.current;
  if (c == nullptr || !HasRoom(c)) {
    if (!pool.withRoom.empty()) {
      c = pool.withRoom.back();
      pool.withRoom.pop_back();
      c->listed = false;
    } else {
      c = NewChunk(pool);
    }
    pool.current = c;
  }
  void* slot;
  if (c->freeList != nullptr) {
    slot = c->freeList;
    c->freeList = *static_cast<void**>(slot);
  } else {
    slot = reinterpret_cast<char*>(c) + kFirstSlot + std::size_t{c->used} * kSlot;
    ++c->used;
  }
  ++c->live;
  return slot;
}

void WrapperPool::Free(void* p) noexcept {
  if (p == nullptr) return;
  Chunk* c = ChunkOf(p);
  Pool& pool = *c->pool;
  *static_cast<void**>(p) = c->freeList;
  c->freeList = p;
  if (--c->live == 0 && c != pool.current) {
    if (c->listed) {
      for (auto& e : pool.withRoom) {
        if (e == c) {
          e = pool.withRoom.back();
          pool.withRoom.pop_back();
          break;
        }
      }
    }
    pool.chunks.erase(reinterpret_cast<std::uintptr_t>(c));
    c->~Chunk();
    std::free(c);
    return;
  }
  if (!c->listed && c != pool.current) {
    c->listed = true;
    pool.withRoom.push_back(c);
  }
}

bool WrapperPool::Owns(const void* p) noexcept {
  if (tPool == nullptr || p == nullptr) return false;
  const auto base = reinterpret_cast<std::uintptr_t>(ChunkOf(p));
  if (tPool->chunks.count(base) == 0) return false;
  const std::uintptr_t offset = reinterpret_cast<std::uintptr_t>(p) - base;
  return offset >= kFirstSlot && (offset - kFirstSlot) % kSlot == 0;
}

}  // namespace innerloop
