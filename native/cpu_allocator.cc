// A caching allocator for large CPU tensor buffers, installed as libtorch's CPU allocator when the
// addon loads (INNERLOOP_CPU_ALLOCATOR=default keeps libtorch's own).
//
// Why: a training step frees and allocates the same large buffers (activations, gradients) every
// step. Through glibc's malloc they land in the heap between small long-lived objects (tensor
// metadata, Node-API references) or in fresh mmap'd chunks: the first fragments the heap, so a
// long run's resident memory creeps up (by tens of percent over 2,000 small steps, measured), and
// the second takes a page fault for every page of every buffer, every step (2-3% of a CPU step).
// Here buffers of kLargeBytes and more are mapped once, kept when freed, and handed out again for
// a request of the same size class: resident memory stays at the step's working set and the pages
// stay warm. Smaller buffers go to libtorch's own allocation functions, as before.
//
// Buffers under kLargeBytes (most tensors of a small model, and the many temporaries of any step)
// come from a per-thread cache of freed blocks, without a lock: through glibc they cost an aligned
// allocation each (posix_memalign, which skips malloc's own per-thread cache) and a lookup in the
// table of large blocks on every free. That cache keeps at most kSmallPerClass blocks of a size
// class and kSmallBytesPerThread bytes in all, and frees what it holds when its thread ends.
//
// The cache is bounded (INNERLOOP_CPU_CACHE_MB, default 256 MiB; 0 disables caching): past the
// bound, the blocks freed longest ago are unmapped to make room for the one just freed. The default suits a library inside another program: it holds
// the working set of the small and mid models (the `mid` bench step keeps about 110 MB cached)
// and gives their step-time benefit, without keeping gigabytes after the work is done
// (BENCHMARKS.md, "CPU buffer cache"). When a mapping fails, the cache is released and the mapping
// tried once more; then the request fails with libtorch's wording ("can't allocate memory"), which
// the addon turns into an OutOfMemoryError. `cpuCacheInfo()` reports the cache, `cpuEmptyCache()`
// returns it to the system, `cpuCacheLimit(bytes)` changes the bound while the program runs (an
// analysis raises it for its duration: lib/analysis/analyze.ts).
#include <malloc.h>
#include <sys/mman.h>

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <cmath>
#include <cstdint>
#include <list>
#include <cstdlib>
#include <string>
#include <vector>
#include <mutex>
#include <unordered_map>

#include "binding.h"

namespace innerloop {
namespace {

constexpr size_t kLargeBytes = 64 * 1024;
constexpr size_t kPage = 4096;
constexpr size_t kHugePage = size_t{2} << 20;

// Rounds up to a size class: multiples of 1/16 of the request's power of two (at most 6% slack),
// and whole pages.
size_t SizeClass(size_t n) {
  size_t p = 1;
  while (p < n) p <<= 1;
  const size_t step = std::max(kPage, p / 16);
  return (n + step - 1) / step * step;
}

// ---------------------------------------------------------------------------------------------
// Small blocks. Size classes: multiples of 64 bytes up to 1 KiB, then 8 classes per power of two
// up to kLargeBytes. A freed block goes to the largest class its usable size covers, so a block
// taken from class c always holds at least c's size.
constexpr size_t kAlign = 64;  // libtorch's CPU alignment (c10::alloc_cpu)
constexpr int kSmallPerClass = 32;
constexpr size_t kSmallBytesPerThread = 8 << 20;
constexpr int kLinearClasses = 16;                              // 64, 128, ..., 1024
constexpr int kGeometricClasses = 8 * 6;                        // (1 KiB, 64 KiB], 8 per doubling
constexpr int kSmallClasses = kLinearClasses + kGeometricClasses;

size_t SmallClassSize(int c) {
  if (c < kLinearClasses) return static_cast<size_t>(c + 1) * 64;
  const int g = c - kLinearClasses;  // 1 KiB * 2^(g / 8) * (1 + (g % 8 + 1) / 8)
  const size_t base = size_t{1024} << (g / 8);
  return base + base / 8 * static_cast<size_t>(g % 8 + 1);
}

// The smallest class that holds n bytes (n < kLargeBytes), or -1.
int SmallClassUp(size_t n) {
  if (n <= 1024) return n == 0 ? 0 : static_cast<int>((n - 1) / 64);
  int c = kLinearClasses;
  size_t base = 1024;
  while (base * 2 < n) base *= 2, c += 8;
  const size_t step = base / 8;
  c += static_cast<int>((n - base + step - 1) / step) - 1;
  return c < kSmallClasses ? c : -1;
}

// The largest class whose size is at most n, or -1.
int SmallClassDown(size_t n) {
  int c = SmallClassUp(n);
  if (c < 0) c = kSmallClasses - 1;
  while (c >= 0 && SmallClassSize(c) > n) --c;
  return c;
}

struct SmallCache {
  void* blocks[kSmallClasses][kSmallPerClass];
  int count[kSmallClasses] = {};
  size_t bytes = 0;
  ~SmallCache() {
    for (int c = 0; c < kSmallClasses; ++c) {
      for (int i = 0; i < count[c]; ++i) std::free(blocks[c][i]);
    }
  }
};

// The calling thread's cache: made on first use, freed when the thread ends; afterwards (a tensor
// freed by a static destructor at exit) blocks go straight back to malloc.
enum class CacheState : unsigned char { kNone, kLive, kGone };
thread_local CacheState tSmallState = CacheState::kNone;

struct SmallCacheOwner {
  SmallCache* cache = new SmallCache();
  SmallCacheOwner() { tSmallState = CacheState::kLive; }
  ~SmallCacheOwner() {
    tSmallState = CacheState::kGone;
    delete cache;
  }
};

SmallCache* ThreadSmallCache() {
  if (tSmallState == CacheState::kGone) return nullptr;
  thread_local SmallCacheOwner owner;
  return owner.cache;
}

void* SmallAllocate(size_t n) {
  const int c = SmallClassUp(n);
  SmallCache* cache = ThreadSmallCache();
  if (cache != nullptr && cache->count[c] > 0) {
    void* p = cache->blocks[c][--cache->count[c]];
    cache->bytes -= malloc_usable_size(p);
    return p;
  }
  void* p = nullptr;
  if (posix_memalign(&p, kAlign, SmallClassSize(c)) != 0) p = nullptr;
  if (p == nullptr) {
    TORCH_CHECK_WITH(OutOfMemoryError, false, "DefaultCPUAllocator: can't allocate memory: you tried to allocate ", n,
                     " bytes.");
  }
  return p;
}

void SmallDelete(void* p) {
  if (p == nullptr) return;
  SmallCache* cache = ThreadSmallCache();
  if (cache != nullptr) {
    const size_t usable = malloc_usable_size(p);
    const int c = SmallClassDown(usable);
    if (c >= 0 && cache->count[c] < kSmallPerClass && cache->bytes + usable <= kSmallBytesPerThread) {
      cache->blocks[c][cache->count[c]++] = p;
      cache->bytes += usable;
      return;
    }
  }
  std::free(p);
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  explicit CachingCpuAllocator(size_t capBytes) : cap_(capBytes) {}

  c10::DataPtr allocate(size_t n) override {
    if (n == 0) return {nullptr, nullptr, &SmallDelete, c10::Device(c10::DeviceType::CPU)};
    if (n < kLargeBytes) {
      void* p = SmallAllocate(n);
      return {p, p, &SmallDelete, c10::Device(c10::DeviceType::CPU)};
    }
    const size_t size = SizeClass(n);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        // The most recently freed block of the class: its pages are the likeliest still in cache.
        auto entry = it->second.back();
        it->second.pop_back();
        void* p = entry->p;
        lru_.erase(entry);
        cachedBytes_ -= size;
        return {p, p, &Delete, c10::Device(c10::DeviceType::CPU)};
      }
    }
    void* p = Map(size);
    if (p == nullptr) {
      EmptyCache();
      p = Map(size);
    }
    if (p == nullptr) {
      TORCH_CHECK_WITH(OutOfMemoryError, false, "DefaultCPUAllocator: can't allocate memory: you tried to allocate ", n,
                       " bytes.");
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      sizes_[p] = size;
      mappedBytes_ += size;
    }
    return {p, p, &Delete, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &Delete; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  // Frees a block made by this allocator: large ones back into the cache, small ones to libtorch's
  // free. Past the bound, the blocks freed longest ago are unmapped to make room: the newest is
  // the likeliest to be asked for again (a loop over chunks frees and takes the same sizes each
  // turn), where keeping the oldest and unmapping the newest made every turn of such a loop map
  // and fault its buffers afresh (GPT-2 124M's analysis faulted 14 GB of fresh pages for two
  // windows with a 256 MiB bound).
  void Free(void* p) {
    if (p == nullptr) return;
    size_t size = 0;
    std::vector<std::pair<void*, size_t>> victims;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = sizes_.find(p);
      if (it != sizes_.end()) {
        size = it->second;
        if (size <= cap_) {
          while (cachedBytes_ + size > cap_ && !lru_.empty()) victims.push_back(EvictOldest());
          free_[size].push_back(lru_.insert(lru_.end(), Cached{p, size}));
          cachedBytes_ += size;
          size = 0;  // kept
        } else {
          sizes_.erase(it);
          mappedBytes_ -= size;
        }
      } else {
        size = SIZE_MAX;  // not a large block
      }
    }
    for (auto& [q, n] : victims) munmap(q, n);
    if (size == SIZE_MAX) SmallDelete(p);  // raw_deallocate of a small block
    else if (size != 0) munmap(p, size);
  }

  void EmptyCache() {
    std::list<Cached> blocks;
    {
      std::lock_guard<std::mutex> lock(mu_);
      blocks.swap(lru_);
      free_.clear();
      for (const Cached& b : blocks) {
        sizes_.erase(b.p);
        mappedBytes_ -= b.size;
      }
      cachedBytes_ = 0;
    }
    for (const Cached& b : blocks) munmap(b.p, b.size);
  }

  std::pair<size_t, size_t> Info() {
    std::lock_guard<std::mutex> lock(mu_);
    return {cachedBytes_, mappedBytes_};
  }

  size_t Cap() {
    std::lock_guard<std::mutex> lock(mu_);
    return cap_;
  }

  // A new bound; the blocks freed longest ago are unmapped until the cache is within it.
  void SetCap(size_t capBytes) {
    std::vector<std::pair<void*, size_t>> victims;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cap_ = capBytes;
      while (cachedBytes_ > cap_ && !lru_.empty()) victims.push_back(EvictOldest());
    }
    for (auto& [q, n] : victims) munmap(q, n);
  }

  static void Delete(void* p);

 private:
  // Takes the block freed longest ago out of the cache (mu_ held); the caller unmaps it.
  std::pair<void*, size_t> EvictOldest() {
    const Cached old = lru_.front();
    auto& cls = free_[old.size];
    for (size_t k = 0; k < cls.size(); ++k) {
      if (cls[k] == lru_.begin()) {
        cls.erase(cls.begin() + static_cast<std::ptrdiff_t>(k));
        break;
      }
    }
    lru_.pop_front();
    sizes_.erase(old.p);
    mappedBytes_ -= old.size;
    cachedBytes_ -= old.size;
    return {old.p, old.size};
  }

  // Blocks of kHugePage and more start on a huge-page boundary and ask for transparent huge pages
  // (where the system allows them, "madvise" mode included): a 2 MiB page costs one fault
  // instead of 512, and one TLB entry. Page faults were about 10% of the CPU time of an analysis
  // of GPT-2 124M (perf, not counting the zeroing of the pages, which stays), whose buffers are
  // larger than the cache keeps. INNERLOOP_CPU_HUGEPAGES=0 maps them as before.
  static void* Map(size_t size) {
    static const bool huge = [] {
      const char* v = std::getenv("INNERLOOP_CPU_HUGEPAGES");
      return v == nullptr || std::string(v) != "0";
    }();
    if (!huge || size < kHugePage) {
      void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      return p == MAP_FAILED ? nullptr : p;
    }
    // Map a huge page more than asked, then return the parts before the first boundary and after
    // the block, so that the block itself is exactly [aligned, aligned + size) for munmap.
    void* raw = mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return nullptr;
    const auto start = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t aligned = (start + kHugePage - 1) & ~(uintptr_t{kHugePage} - 1);
    if (aligned > start) munmap(raw, aligned - start);
    const uintptr_t end = start + size + kHugePage;
    if (end > aligned + size) munmap(reinterpret_cast<void*>(aligned + size), end - (aligned + size));
    madvise(reinterpret_cast<void*>(aligned), size, MADV_HUGEPAGE);  // a hint: failure changes nothing
    return reinterpret_cast<void*>(aligned);
  }

  std::mutex mu_;
  struct Cached {
    void* p;
    size_t size;
  };
  std::list<Cached> lru_;  // every cached block, freed longest ago first
  std::unordered_map<size_t, std::vector<std::list<Cached>::iterator>> free_;  // size class -> its cached blocks, last freed last
  std::unordered_map<void*, size_t> sizes_;  // every mapped block, in use or free
  size_t cachedBytes_ = 0;
  size_t mappedBytes_ = 0;
  size_t cap_;
};

// Never destroyed: tensors may outlive every static destructor.
CachingCpuAllocator* gAllocator = nullptr;

void CachingCpuAllocator::Delete(void* p) { gAllocator->Free(p); }

Napi::Value CpuCacheInfo(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  auto [cached, mapped] = gAllocator != nullptr ? gAllocator->Info() : std::pair<size_t, size_t>{0, 0};
  o.Set("enabled", gAllocator != nullptr);
  o.Set("cachedBytes", static_cast<double>(cached));
  o.Set("mappedBytes", static_cast<double>(mapped));
  return o;
}

// cpuCacheLimit() -> the cache's bound in bytes (0 without innerloop's allocator);
// cpuCacheLimit(bytes) sets it and returns the previous one.
Napi::Value CpuCacheLimit(const Napi::CallbackInfo& info) {
  if (gAllocator == nullptr) return Napi::Number::New(info.Env(), 0);
  const double before = static_cast<double>(gAllocator->Cap());
  if (info.Length() > 0 && !info[0].IsUndefined()) {
    const double bytes = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
    if (!(bytes >= 0 && bytes <= 9007199254740991.0 && bytes == std::floor(bytes))) {
      throw Napi::RangeError::New(info.Env(), "setCpuCacheLimit: bytes must be a non-negative whole number");
    }
    gAllocator->SetCap(static_cast<size_t>(bytes));
  }
  return Napi::Number::New(info.Env(), before);
}

Napi::Value CpuEmptyCache(const Napi::CallbackInfo& info) {
  if (gAllocator != nullptr) gAllocator->EmptyCache();
  return info.Env().Undefined();
}

}  // namespace

void RegisterCpuAllocator(Napi::Env env, Napi::Object exports) {
  // Once per process, also when worker threads load the addon again.
  static std::once_flag once;
  std::call_once(once, [] {
    const char* which = std::getenv("INNERLOOP_CPU_ALLOCATOR");
    if (which != nullptr && std::string(which) == "default") return;
    const char* mb = std::getenv("INNERLOOP_CPU_CACHE_MB");
    const size_t cap = (mb != nullptr ? static_cast<size_t>(std::strtoull(mb, nullptr, 10)) : 256) << 20;
    gAllocator = new CachingCpuAllocator(cap);
    c10::SetCPUAllocator(gAllocator, /*priority=*/1);
  });
  exports.Set("cpuCacheInfo", Napi::Function::New(env, CpuCacheInfo, "cpuCacheInfo"));
  exports.Set("cpuEmptyCache", Napi::Function::New(env, CpuEmptyCache, "cpuEmptyCache"));
  exports.Set("cpuCacheLimit", Napi::Function::New(env, CpuCacheLimit, "cpuCacheLimit"));
}

}  // namespace innerloop
