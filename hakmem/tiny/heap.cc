#include "hakmem/tiny/heap.h"

#include <errno.h>
#include <pthread.h>
#include <sys/auxv.h>

#include <new>

#include "hakmem/config.h"
#include "hakmem/registry/registry.h"
#include "hakmem/tiny/tiny_alloc.h"

namespace hakmem {

Slab kEmptySlab{};
// Constant-initialized: the first malloc may come from another library's
// constructor, before any of ours has run.
Heap kEmptyHeap;
static_assert((Heap(), true), "Heap() must stay a constant expression");
__thread Heap* tl_heap __attribute__((tls_model("initial-exec"))) = &kEmptyHeap;
uint64_t g_free_key = 0;

namespace {

// ---- Heap pool: heaps are made once and recycled across threads ------------
pthread_mutex_t g_pool_lock = PTHREAD_MUTEX_INITIALIZER;
Heap* g_pool = nullptr;          // abandoned heaps, waiting for a thread
Heap* g_all_heaps = nullptr;     // every heap ever made
uint64_t g_heaps_created = 0;
uint64_t g_heaps_pooled = 0;
// Heap storage: a few static heaps, then mapped chunks of them.
constexpr int kStaticHeaps = 4;
Heap g_static_heaps[kStaticHeaps];
int g_static_used = 0;
char* g_chunk = nullptr;
size_t g_chunk_left = 0;

pthread_key_t g_thread_key;

// Set once this thread's heap was handed back at thread exit. A later
// allocation (a TLS destructor of another library, in the last destructor
// round) is served from the orphan heap, under its lock: a new heap would
// never be handed back, as no destructor round is left to do it.
__thread bool tl_thread_exited __attribute__((tls_model("initial-exec"))) = false;
pthread_mutex_t g_orphan_lock = PTHREAD_MUTEX_INITIALIZER;
Heap* g_orphan = nullptr;
pthread_mutex_t g_init_lock = PTHREAD_MUTEX_INITIALIZER;
bool g_initialized = false;

void OnThreadExit(void* heap);

// Pool lock held.
Heap* NewHeapLocked() {
  void* mem;
  if (g_static_used < kStaticHeaps) {
    mem = &g_static_heaps[g_static_used++];
  } else {
    constexpr size_t kChunk = 64 * 1024;
    if (g_chunk_left < sizeof(Heap)) {
      g_chunk = static_cast<char*>(platform::MapSparse(kChunk));
      if (g_chunk == nullptr) return nullptr;
      g_chunk_left = kChunk;
    }
    mem = g_chunk;
    const size_t step = (sizeof(Heap) + 63) & ~size_t{63};
    g_chunk += step;
    g_chunk_left = g_chunk_left >= step ? g_chunk_left - step : 0;
  }
  Heap* h = new (mem) Heap();
  for (Slab& f : h->foreign) f.key_flip = kForeignKeyFlip;
  h->all_next = g_all_heaps;
  g_all_heaps = h;
  g_heaps_created++;
  return h;
}

// Blocks carved per refill: about 8 KiB worth, at most 256. Carving writes
// each block's header, so every carved block costs resident memory (a page
// per block for 4 KiB and up) whether or not it is used: a slab of big blocks
// starts with one or two and doubles with use, up to 8 (fewer refills once
// the class is busy; measured: a fixed one per refill cost 6% on 4096-32768).
uint32_t CarveBatch(const Slab* s) {
  const uint32_t by_bytes = 8192 / InfoOf(s)->block_size;
  if (by_bytes >= 8) return by_bytes > 256 ? 256 : by_bytes;
  const uint32_t carved = SlabCarved(s);
  const uint32_t floor = by_bytes < 1 ? 1 : by_bytes;
  return carved < floor ? floor : (carved > 8 ? 8 : carved);
}

int GeometryOf(int slab_shift) { return slab_shift == kSmallSlabShift ? 0 : 1; }

void ReleaseSlab(Heap* h, Slab* s) {
  SuperSlab* ss = SuperSlabOf(s);
  const int g = GeometryOf(ss->slab_shift);
  const bool was_full = SuperSlabFull(ss);
  const bool now_empty = SuperSlabReturnSlab(ss, s);
  // To the front of with_room, where NewSlab looks for warm slabs first.
  if (was_full) {
    h->full[g].Remove(ss);
  } else {
    h->with_room[g].Remove(ss);
  }
  h->with_room[g].Push(ss);
  if (!now_empty) return;
  h->with_room[g].Remove(ss);
  if (h->spare == nullptr) {
    h->spare = ss;
  } else {
    SuperSlabRelease(ss);
  }
}

void ReclaimAbandonedHeaps();
void ReclaimHeapLocked(Heap* h);

// Moves `ss` to the full list if it has no free slab left.
void NoteSlabTaken(Heap* h, int g, SuperSlab* ss) {
  if (SuperSlabFull(ss)) {
    h->with_room[g].Remove(ss);
    h->full[g].Push(ss);
  }
}

Slab* NewSlab(Heap* h, int size_class) {
  const int shift = size_class >= kFirstMidClass ? kMidSlabShift : kSmallSlabShift;
  const int g = GeometryOf(shift);
  // A warm slab of this class first: its blocks are carved already. The
  // SuperSlabs a slab was just returned to are at the front of the list.
  int looked = 0;
  for (SuperSlab* w = h->with_room[g].head; w != nullptr && looked < 4;
       w = w->next, looked++) {
    if (Slab* s = SuperSlabTakeWarmSlab(w, size_class, h)) {
      NoteSlabTaken(h, g, w);
      return s;
    }
  }
  SuperSlab* ss = h->with_room[g].head;
  if (ss == nullptr) {
    if (h->spare != nullptr) {
      ss = h->spare;
      h->spare = nullptr;
      SuperSlabFormat(ss, shift);
    } else {
      ReclaimAbandonedHeaps();
      ss = SuperSlabAcquire(h, shift);
      if (ss == nullptr) return nullptr;
    }
    h->with_room[g].Push(ss);
  }
  const int index = SuperSlabTakeFreeSlab(ss);
  NoteSlabTaken(h, g, ss);
  Slab* s = SlabInit(ss, index, ClassSizeOf(size_class), size_class, h);
  SlabCarve(s, CarveBatch(s), g_free_key);
  return s;
}

// A slab whose count says "all free" must list exactly its carved blocks. A
// double free that the fast path let through (it only catches the immediate
// one) shows up here as a longer or looping list; the slab is checked before
// it can be reused for anything else.
void CheckEmptySlab(const Slab* s) {
  const uint32_t carved = SlabCarved(s);
  uint32_t n = 0;
  for (const Block* b = s->free; b != nullptr; b = b->next) {
    if (++n > carved || b->key != g_free_key) {
      platform::ReportAndAbort("free(): double free", b,
                               "a block was freed twice (slab free list has it twice)");
    }
  }
}

// Where class `c`'s real current slab is: current[c], or parked[c] while the
// foreign slab is installed.
Slab** RealCurrentSlot(Heap* h, int c) {
  return ForeignInstalled(h, c) ? &h->parked[c] : &h->current[c];
}

// Makes `s` (a real slab or kEmptySlab) the current slab of class `c`.
void SetCurrent(Heap* h, int c, Slab* s) {
  Slab** slot = RealCurrentSlot(h, c);
  if (*slot != &kEmptySlab) (*slot)->role = kSlabDetached;
  if (s != &kEmptySlab) s->role = kSlabCurrent;
  *slot = s;
}

void UninstallForeign(Heap* h, int c) {
  h->current[c] = h->parked[c];
  h->parked[c] = nullptr;
}

// Returns the current slabs that are empty. Run by the time-gated upkeep
// (at most every 100 ms), so a class that keeps emptying and refilling its
// slab does not churn.
void CollectRetired(Heap* h) {
  for (int c = 0; c < kNumClasses; c++) {
    Slab* s = *RealCurrentSlot(h, c);
    if (s == &kEmptySlab || s->used != 0) continue;
    SetCurrent(h, c, &kEmptySlab);
    CheckEmptySlab(s);
    ReleaseSlab(h, s);
  }
}

// Gives back what `h` holds idle: empty current slabs, its spare SuperSlab.
void ReleaseIdle(Heap* h) {
  CollectRetired(h);
  if (h->spare != nullptr) {
    SuperSlabRelease(h->spare);
    h->spare = nullptr;
  }
}

// What follows a local free into a slab that is not current: it became
// empty, or had no free block before.
void AfterLocalFree(Heap* h, Slab* s) {
  const int c = InfoOf(s)->size_class;
  if (s->used == 0) {
    if (s->role == kSlabPartial) h->partial[c].Remove(s);
    s->role = kSlabDetached;
    CheckEmptySlab(s);
    ReleaseSlab(h, s);
  } else if (s->role == kSlabDetached) {
    h->partial[c].Push(s);
    s->role = kSlabPartial;
  }
}

void LocalFree(Heap* h, Slab* s, Block* b) {
  Block* head = s->free;
  b->next = head;
  b->key = g_free_key;
  s->free = b;
  if ((--s->used == 0 || head == nullptr) && s->role != kSlabCurrent) {
    AfterLocalFree(h, s);
  }
}

void DrainRemote(Heap* h) {
  Block* b = h->remote.TakeAll();
  const uint64_t remote_key = RemoteFreeKey();
  while (b != nullptr) {
    // Checked before its link is followed: a block freed again by its owner
    // while it waited here has a local link and the local key.
    if (b->key != remote_key) {
      platform::ReportAndAbort("free(): double free", b,
                               "a block freed by another thread was freed again");
    }
    Block* next = b->next;
    LocalFree(h, SlabOf(b), b);
    b = next;
  }
}

// Pushes the batch of blocks freed for another heap.
void FlushOutgoing(Heap* h) {
  RemoteBatch& batch = h->outgoing;
  if (batch.count == 0) return;
  Heap* owner = batch.owner;
  owner->remote.PushChain(batch.first, batch.last);
  batch = RemoteBatch{};
  // The owner thread is gone: free the blocks now rather than when a new
  // thread adopts its heap (never, perhaps).
  if (owner->state.load(std::memory_order_relaxed) == HeapState::kAbandoned &&
      pthread_mutex_trylock(&g_pool_lock) == 0) {
    if (owner->state.load(std::memory_order_relaxed) == HeapState::kAbandoned) {
      ReclaimHeapLocked(owner);
    }
    pthread_mutex_unlock(&g_pool_lock);
  }
}

// Queues `b` (a block of `owner`'s, already marked free) for its owner.
void FreeRemote(Heap* h, Heap* owner, Block* b) {
  if (h == &kEmptyHeap) {  // a thread that never allocated has no batch
    owner->remote.Push(b);
    return;
  }
  RemoteBatch& batch = h->outgoing;
  if (batch.owner != owner) {
    FlushOutgoing(h);
    batch.owner = owner;
    batch.last = b;
    b->next = nullptr;
  } else {
    b->next = batch.first;
  }
  batch.first = b;
  if (++batch.count == RemoteBatch::kMaxBlocks) FlushOutgoing(h);
}

// Blocks (or unblocks) keeping on the empty foreign slabs of `h`.
void SetForeignBlocked(Heap* h, bool blocked) {
  h->foreign_blocked = blocked;
  for (Slab& f : h->foreign) {
    if (f.free == nullptr) f.used = blocked ? kForeignBlockedUsed : 0;
  }
}

// Sends every kept foreign block back to its owner (thread exit, trim).
void ReturnForeign(Heap* h) {
  for (int c = 0; c < kNumClasses; c++) {
    if (ForeignInstalled(h, c)) UninstallForeign(h, c);
    Slab* f = &h->foreign[c];
    while (Block* b = f->free) {
      if (b->key != ForeignFreeKey()) ReportCorruptFreeList(b);
      f->free = b->next;
      b->key = RemoteFreeKey();
      Heap* owner = static_cast<Heap*>(const_cast<void*>(
          __atomic_load_n(&SlabInfoOf(b)->owner, __ATOMIC_ACQUIRE)));
      FreeRemote(h, owner, b);
    }
  }
  SetForeignBlocked(h, h->foreign_blocked);  // the counts of the empty slabs
  FlushOutgoing(h);
}

// A slab of class `size_class` with a free block, or nullptr (out of memory).
Slab* Refill(Heap* h, int size_class) {
  if (!h->remote.Empty()) {
    DrainRemote(h);  // may refill, or retire and return, current slabs
    if (h->current[size_class]->free != nullptr) return h->current[size_class];
  }
  Slab* s = h->current[size_class];  // the real one: the caller uninstalled
  if (s != &kEmptySlab && SlabCanCarve(s)) {
    SlabCarve(s, CarveBatch(s), g_free_key);
    return s;
  }
  // The current slab is full: it leaves `current` and stays off the lists
  // until a free gives it room again.
  while (Slab* p = h->partial[size_class].head) {
    h->partial[size_class].Remove(p);
    SetCurrent(h, size_class, p);
    if (p->free == nullptr && SlabCanCarve(p)) SlabCarve(p, CarveBatch(p), g_free_key);
    if (p->free != nullptr) return p;
  }
  s = NewSlab(h, size_class);
  if (s == nullptr) return nullptr;
  SetCurrent(h, size_class, s);
  return s;
}

// Drains the remote frees that piled up in heaps of exited threads, so their
// blocks (and then slabs and SuperSlabs) become reusable.
// Frees what an exited thread's heap still holds idle: pending remote
// frees, empty current slabs, its spare SuperSlab. Pool lock held.
void ReclaimHeapLocked(Heap* h) {
  if (!h->remote.Empty()) DrainRemote(h);
  ReleaseIdle(h);
}

void ReclaimAbandonedHeaps() {
  if (__atomic_load_n(&g_pool, __ATOMIC_RELAXED) == nullptr) return;
  pthread_mutex_lock(&g_pool_lock);
  for (Heap* h = g_pool; h != nullptr; h = h->pool_next) ReclaimHeapLocked(h);
  pthread_mutex_unlock(&g_pool_lock);
}

void InitFreeKey() {
  uint64_t key = 0x9e3779b97f4a7c15ull;
  const unsigned char* random =
      reinterpret_cast<const unsigned char*>(getauxval(AT_RANDOM));
  if (random != nullptr) {
    for (int i = 0; i < 8; i++) key = (key << 8 | key >> 56) ^ random[i];
  }
  key ^= reinterpret_cast<uintptr_t>(&g_free_key);
  g_free_key = key | 1;  // never 0: malloc clears the key to 0
}

// A heap still marked active for this thread's pthread_t, or nullptr. Such a
// heap belonged to an exited thread whose descriptor this thread reuses: its
// last allocations came after its last TLS destructor round, so nothing
// handed the heap back. Pool lock held.
Heap* FindHeapOfDeadThreadLocked(uintptr_t self) {
  for (Heap* h = g_all_heaps; h != nullptr; h = h->all_next) {
    if (h->thread_id == self && h->state.load(std::memory_order_relaxed) == HeapState::kActive) {
      return h;
    }
  }
  return nullptr;
}

Heap* AttachHeap() {
  TinyGlobalInit();
  const uintptr_t self = static_cast<uintptr_t>(pthread_self());
  pthread_mutex_lock(&g_pool_lock);
  Heap* h = FindHeapOfDeadThreadLocked(self);
  if (h == nullptr && g_pool != nullptr) {
    h = g_pool;
    g_pool = h->pool_next;
    g_heaps_pooled--;
  } else if (h == nullptr) {
    h = NewHeapLocked();
  }
  if (h != nullptr) h->thread_id = self;
  // State changes happen under the pool lock: FlushOutgoing drains a heap
  // it saw abandoned only after re-checking under that lock.
  if (h != nullptr) h->state.store(HeapState::kActive, std::memory_order_relaxed);
  pthread_mutex_unlock(&g_pool_lock);
  if (h == nullptr) return nullptr;
  h->pool_next = nullptr;
  tl_heap = h;
  // Keys below PTHREAD_KEY_2NDLEVEL_SIZE never allocate here.
  pthread_setspecific(g_thread_key, h);
  if (!h->remote.Empty()) DrainRemote(h);
  return h;
}

void DetachHeap(Heap* h) {
  ReturnForeign(h);
  DrainRemote(h);
  ReleaseIdle(h);
  SuperSlabCacheEnforceLimits();
  tl_heap = &kEmptyHeap;
  pthread_mutex_lock(&g_pool_lock);
  h->state.store(HeapState::kAbandoned, std::memory_order_relaxed);
  h->pool_next = g_pool;
  g_pool = h;
  g_heaps_pooled++;
  pthread_mutex_unlock(&g_pool_lock);
}

void OnThreadExit(void* heap) {
  Heap* h = static_cast<Heap*>(heap);
  tl_thread_exited = true;
  if (h != nullptr && h == tl_heap) DetachHeap(h);
}

bool IsInFreeList(const Slab* s, const Block* b) {
  uint32_t steps = 0;
  const uint32_t capacity = SlabCapacity(s);
  for (const Block* f = s->free; f != nullptr && steps <= capacity;
       f = f->next, steps++) {
    if (f == b) return true;
  }
  return false;
}

// Pops a block of `size_class` from `h` (refilling it), or nullptr.
void* PopFromHeap(Heap* h, int size_class) {
  // A foreign slab that ran dry goes back to the parked slab (also when a
  // heap is adopted with one installed: fork, a dead thread's heap).
  if (ForeignInstalled(h, size_class)) UninstallForeign(h, size_class);
  Slab* s = h->current[size_class];
  if (s->free == nullptr) {
    s = Refill(h, size_class);
    if (s == nullptr) return nullptr;
  }
  Block* b = s->free;
  if (b->key != FreeKeyOf(s)) ReportCorruptFreeList(b);
  s->free = b->next;
  s->used++;
  b->key = 0;
  return b;
}

void* OrphanMalloc(int size_class) {
  pthread_mutex_lock(&g_orphan_lock);
  if (g_orphan == nullptr) {
    pthread_mutex_lock(&g_pool_lock);
    g_orphan = NewHeapLocked();
    pthread_mutex_unlock(&g_pool_lock);
    if (g_orphan != nullptr) {
      g_orphan->state.store(HeapState::kOrphan, std::memory_order_relaxed);
    }
  }
  void* p = g_orphan != nullptr ? PopFromHeap(g_orphan, size_class) : nullptr;
  pthread_mutex_unlock(&g_orphan_lock);
  return p;
}

}  // namespace

void TinyUpkeep() {
  static uint64_t next_reclaim_ns = 0;  // atomic access
  SuperSlabCacheMaybeEnforceLimits();
  const uint64_t now = platform::NowNs();
  if (now < __atomic_load_n(&next_reclaim_ns, __ATOMIC_RELAXED)) return;
  __atomic_store_n(&next_reclaim_ns, now + RegionCache::kCheckIntervalNs,
                   __ATOMIC_RELAXED);
  ReclaimAbandonedHeaps();
  // This thread's empty current slabs, too: they pin their SuperSlabs.
  if (tl_heap != &kEmptyHeap) CollectRetired(tl_heap);
}

void TinyGlobalInit() {
  if (__atomic_load_n(&g_initialized, __ATOMIC_ACQUIRE)) return;
  pthread_mutex_lock(&g_init_lock);
  if (!g_initialized) {
    InitConfigFromEnvironment();
    InitFreeKey();
    pthread_key_create(&g_thread_key, &OnThreadExit);
    const uint64_t prewarm = GetOption(Option::kSuperslabPrewarm);
    if (prewarm != 0) SuperSlabPrewarm(prewarm);
    __atomic_store_n(&g_initialized, true, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&g_init_lock);
}

void* TinyMallocSlow(int size_class) {
  Heap* h = tl_heap;
  void* p;
  if (h == &kEmptyHeap && tl_thread_exited) {
    p = OrphanMalloc(size_class);
  } else {
    if (h == &kEmptyHeap) h = AttachHeap();
    if (h == nullptr) {
      errno = ENOMEM;
      return nullptr;
    }
    if (h->foreign_blocked) SetForeignBlocked(h, false);  // it mallocs now
    FlushOutgoing(h);
    TinyUpkeep();
    p = PopFromHeap(h, size_class);
  }
  if (p == nullptr) errno = ENOMEM;
  return p;
}

void ReportCorruptFreeList(const void* block) {
  platform::ReportAndAbort("malloc(): double free detected", block,
                           "a block was freed twice (found on a free list twice)");
}

void TinyFreeTransition(Slab* s) { AfterLocalFree(tl_heap, s); }

namespace {
// Owner of the slab holding `p`, after checking that `p` is a carved block
// start of a slab in use; reports and aborts otherwise.
Heap* CheckedOwner(const void* p, const char* operation) {
  const SlabInfo* info = SlabInfoOf(p);
  Heap* owner = static_cast<Heap*>(
      const_cast<void*>(__atomic_load_n(&info->owner, __ATOMIC_ACQUIRE)));
  if (owner == nullptr) {
    platform::ReportAndAbort(operation, p,
                             "not a live block (its slab is free: double free?)");
  }
  if (!IsBlockStart(info, p)) {
    platform::ReportAndAbort(operation, p,
                             "not the start of a block (interior pointer?)");
  }
  return owner;
}
}  // namespace

void TinyCheckLiveBlock(const void* p, const char* operation) {
  CheckedOwner(p, operation);
  const uint64_t key = static_cast<const Block*>(p)->key;
  if (key == g_free_key || key == RemoteFreeKey() || key == ForeignFreeKey()) {
    platform::ReportAndAbort(operation, p, "block is free (use after free?)");
  }
}

void TinyFreeSlow(void* p) {
  Heap* owner = CheckedOwner(p, "free(): invalid pointer");
  Slab* s = SlabOf(p);
  Block* b = static_cast<Block*>(p);
  Heap* h = tl_heap;
  if (h == &kEmptyHeap && !tl_thread_exited) {
    // A thread that only frees (a consumer) gets a heap too, for batching
    // what it sends back; it keeps nothing until it allocates.
    h = AttachHeap();
    if (h == nullptr) h = &kEmptyHeap;
    if (h != &kEmptyHeap) SetForeignBlocked(h, true);
  }
  // Freed by another thread: waiting for the owner, or kept by that thread.
  if (b->key == RemoteFreeKey() || b->key == ForeignFreeKey()) {
    platform::ReportAndAbort("free(): double free", p, "block is already free");
  }
  if (b->key == g_free_key) {
    if (owner != h) {
      platform::ReportAndAbort("free(): double free", p,
                               "block is already free");
    }
    // Confirm: the key could in theory be user data. Pending remote frees
    // are drained first so the slab's list is complete.
    DrainRemote(h);
    if (InfoOf(s)->owner != h || IsInFreeList(s, b)) {
      platform::ReportAndAbort("free(): double free", p,
                               "block is already free");
    }
  }
  if (owner == h) {
    LocalFree(h, s, b);
  } else {
    if (h != &kEmptyHeap && TinyKeepForeign(h, InfoOf(s)->size_class, b)) return;
    b->key = RemoteFreeKey();
    FreeRemote(h, owner, b);
  }
}

void TinyReclaimExitedThreads() { ReclaimAbandonedHeaps(); }

void TinyTrim() {
  Heap* h = tl_heap;
  if (h != &kEmptyHeap) {
    ReturnForeign(h);
    ReleaseIdle(h);
  }
  ReclaimAbandonedHeaps();
}

void TinyThreadExit() {
  Heap* h = tl_heap;
  if (h != &kEmptyHeap) DetachHeap(h);
}

void TinyLockForFork() {
  pthread_mutex_lock(&g_orphan_lock);
  pthread_mutex_lock(&g_pool_lock);
}

void TinyUnlockAfterFork(bool in_child) {
  if (!in_child) {
    pthread_mutex_unlock(&g_pool_lock);
    pthread_mutex_unlock(&g_orphan_lock);
    return;
  }
  pthread_mutex_init(&g_pool_lock, nullptr);
  pthread_mutex_init(&g_orphan_lock, nullptr);
  // Only the forking thread lives on in the child: every other active heap
  // is orphaned, so hand it to the pool for the child's future threads.
  for (Heap* h = g_all_heaps; h != nullptr; h = h->all_next) {
    if (h->state.load(std::memory_order_relaxed) == HeapState::kActive &&
        h != tl_heap) {
      h->state.store(HeapState::kAbandoned, std::memory_order_relaxed);
      h->pool_next = g_pool;
      g_pool = h;
      g_heaps_pooled++;
    }
  }
}

namespace {
void CountSlabs(SuperSlab* ss, void* arg) {
  TinyStats* stats = static_cast<TinyStats*>(arg);
  for (int i = 0; i < kMaxSlabsPerSuperSlab; i++) {
    const Slab& s = ss->slabs[i];
    const SlabInfo& info = ss->infos[i];
    if (__atomic_load_n(&info.owner, __ATOMIC_RELAXED) == nullptr) continue;
    stats->slabs_in_use[info.size_class]++;
    stats->blocks_in_use[info.size_class] += __atomic_load_n(&s.used, __ATOMIC_RELAXED);
  }
}
}  // namespace

void GetTinyStats(TinyStats* stats) {
  *stats = TinyStats{};
  pthread_mutex_lock(&g_pool_lock);
  stats->heaps_created = g_heaps_created;
  stats->heaps_pooled = g_heaps_pooled;
  pthread_mutex_unlock(&g_pool_lock);
  ForEachSuperSlab(&CountSlabs, stats);
}

}  // namespace hakmem
