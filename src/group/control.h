// The control block of a running group: one small shared segment per group
// ("ckpt.<gid>.ctl") holding a table of its named objects and, for
// semaphores, barriers and mutexes, their state words. This is a run-time
// layout on one host (never written to an image), so it is a plain struct of
// lock-free atomics. The table is guarded by a spin lock held for a few
// instructions; the state words are used lock-free by every member.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace ckpt::group {

enum class ObjKind : std::uint32_t { kSegment = 1, kSemaphore = 2, kBarrier = 3, kMutex = 4 };
const char* ObjKindName(ObjKind k);

enum SlotState : std::uint32_t { kSlotFree = 0, kSlotCreating = 1, kSlotReady = 2, kSlotFailed = 3 };

inline constexpr std::size_t kNameMax = 63;
inline constexpr std::size_t kDescMax = 255;
inline constexpr std::uint32_t kCapacity = 128;
inline constexpr std::uint32_t kControlMagic = 0x4c544347;  // "GCTL"
inline constexpr std::uint32_t kControlVersion = 1;

struct Slot {
  std::atomic<std::uint32_t> state;
  std::atomic<std::uint32_t> seq;      // wait-queue word: bumped by every wake
  std::atomic<std::uint32_t> value;    // semaphore count; mutex: 1 free, 0 held
  std::atomic<std::uint32_t> waiters;  // threads blocked (or about to block) on seq
  std::atomic<std::uint64_t> barrier;  // generation << 32 | arrived
  std::atomic<std::uint32_t> holder;   // mutex: holder's rank + 1, 0 when free
  std::uint32_t kind;
  std::uint32_t parties;  // barrier
  std::uint32_t creator;  // rank that created it
  std::uint64_t size;     // segment bytes
  std::uint64_t count;    // typed segment: elements
  std::uint64_t base;     // fixed base asked by the creator, 0 = anywhere
  char name[kNameMax + 1];
  char desc[kDescMax + 1];  // typed segment: element type descriptor; "" = bytes
};

struct ControlBlock {
  std::atomic<std::uint32_t> magic;
  std::uint32_t version;
  std::uint32_t capacity;
  std::uint32_t group_size;
  std::atomic<std::uint32_t> lock;
  std::atomic<std::uint32_t> attached;
  Slot slots[kCapacity];
};

static_assert(std::atomic<std::uint32_t>::is_always_lock_free, "group state words must be lock-free");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "group barrier words must be lock-free");

// Fills a freshly created (zeroed) block and publishes it.
void InitControl(ControlBlock* cb, std::uint32_t group_size);
// Waits (bounded) until a block created by another member is published.
Status AwaitControl(const ControlBlock* cb, int timeout_ms);

// Scoped table lock.
class TableLock {
 public:
  explicit TableLock(ControlBlock* cb);
  ~TableLock();
  TableLock(const TableLock&) = delete;
  TableLock& operator=(const TableLock&) = delete;

 private:
  ControlBlock* cb_;
};

// Under the lock: the slot named `name`, or nullptr.
Slot* FindSlot(ControlBlock* cb, std::string_view name);
// Under the lock: a free slot, marked creating and named; error when full.
Result<Slot*> ClaimSlot(ControlBlock* cb, std::string_view name, ObjKind kind, std::uint32_t creator);
std::uint32_t SlotIndex(const ControlBlock* cb, const Slot* s);

// Object names: 1..63 characters of [A-Za-z0-9_.-].
Status CheckObjectName(std::string_view name);

}  // namespace ckpt::group
