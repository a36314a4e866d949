#include "group/sync.h"

namespace ckpt::group {

namespace {

// Blocks until `ready()` holds, the slot is woken, or an interrupt. The
// waiter count is raised before `ready` is re-checked, and posters read it
// after changing the state, so a wake-up is never lost (both orders are
// sequentially consistent).
template <typename Ready>
void BlockUntil(Slot* s, platform::WaitQueue* q, WaitContext* ctx, Ready ready) {
  ctx->SetBlocked(s, q);
  std::uint32_t seq = s->seq.load();
  s->waiters.fetch_add(1);
  if (!ready() && !ctx->Interrupted()) q->Wait(seq);
  s->waiters.fetch_sub(1);
  ctx->SetBlocked(nullptr, nullptr);
}

void Wake(Slot* s, platform::WaitQueue* q, std::uint32_t n) {
  if (s->waiters.load() == 0) return;
  s->seq.fetch_add(1);
  q->Wake(n);
}

}  // namespace

bool SemTryTake(Slot* s) {
  std::uint32_t v = s->value.load(std::memory_order_relaxed);
  while (v > 0) {
    if (s->value.compare_exchange_weak(v, v - 1, std::memory_order_acquire, std::memory_order_relaxed))
      return true;
  }
  return false;
}

WaitResult SemWait(Slot* s, platform::WaitQueue* q, WaitContext* ctx) {
  for (;;) {
    if (SemTryTake(s)) return WaitResult::kDone;
    if (ctx->Interrupted()) return WaitResult::kInterrupted;
    BlockUntil(s, q, ctx, [s] { return s->value.load() > 0; });
  }
}

void SemPost(Slot* s, platform::WaitQueue* q, std::uint32_t n) {
  s->value.fetch_add(n);
  Wake(s, q, n);
}

bool BarrierArrive(Slot* s, platform::WaitQueue* q, std::uint32_t* gen) {
  std::uint64_t w = s->barrier.load();
  for (;;) {
    std::uint32_t g = static_cast<std::uint32_t>(w >> 32);
    std::uint32_t arrived = static_cast<std::uint32_t>(w) + 1;
    bool release = arrived >= s->parties;
    std::uint64_t next = release ? static_cast<std::uint64_t>(g + 1) << 32 : (w & ~0xffffffffULL) | arrived;
    if (s->barrier.compare_exchange_weak(w, next)) {
      *gen = g;
      if (release) {
        s->seq.fetch_add(1);
        q->Wake(s->waiters.load() + 1);
      }
      return release;
    }
  }
}

WaitResult BarrierAwait(Slot* s, platform::WaitQueue* q, WaitContext* ctx, std::uint32_t gen) {
  auto passed = [s, gen] { return static_cast<std::uint32_t>(s->barrier.load() >> 32) != gen; };
  for (;;) {
    if (passed()) return WaitResult::kDone;
    if (ctx->Interrupted()) {
      // Withdraw the arrival, unless the barrier completed meanwhile.
      std::uint64_t w = s->barrier.load();
      while (static_cast<std::uint32_t>(w >> 32) == gen) {
        if (s->barrier.compare_exchange_weak(w, w - 1)) return WaitResult::kInterrupted;
      }
      return WaitResult::kDone;
    }
    BlockUntil(s, q, ctx, passed);
  }
}

void WakeAll(Slot* s, platform::WaitQueue* q) {
  s->seq.fetch_add(1);
  std::uint32_t n = s->waiters.load();
  q->Wake(n == 0 ? 1 : n);
}

}  // namespace ckpt::group
