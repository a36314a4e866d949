// The algorithms of group semaphores, barriers and mutexes on control-block
// slots: lock-free fast paths on shared atomic words, blocking through a
// platform::WaitQueue on the slot's `seq` word. A blocked wait can be
// interrupted (a checkpoint request) and then withdraws cleanly: it has taken
// nothing, so the captured counts are exact. Thread-safe, across processes.
#pragma once

#include <cstdint>

#include "group/control.h"
#include "platform/shm.h"

namespace ckpt::group {

// What a blocking operation needs from the member it runs in.
class WaitContext {
 public:
  virtual ~WaitContext() = default;
  // True once a checkpoint was requested (and not yet served).
  virtual bool Interrupted() = 0;
  // Publishes the object the caller is about to block on (nullptr after).
  virtual void SetBlocked(Slot* slot, platform::WaitQueue* q) = 0;
};

enum class WaitResult { kDone, kInterrupted };

bool SemTryTake(Slot* s);
WaitResult SemWait(Slot* s, platform::WaitQueue* q, WaitContext* ctx);
void SemPost(Slot* s, platform::WaitQueue* q, std::uint32_t n);

// Arrives at the barrier; returns true if this arrival released it. *gen gets
// the generation the caller waits in.
bool BarrierArrive(Slot* s, platform::WaitQueue* q, std::uint32_t* gen);
// Waits for generation `gen` to end. kInterrupted: the arrival was withdrawn.
WaitResult BarrierAwait(Slot* s, platform::WaitQueue* q, WaitContext* ctx, std::uint32_t gen);

// Wakes every thread blocked on the slot, whatever it waits for.
void WakeAll(Slot* s, platform::WaitQueue* q);

}  // namespace ckpt::group
