// The public group objects (include/ckpt/group.hpp) on top of GroupMember
// and the algorithms in group/sync.h.
#include "ckpt/group.hpp"
#include "group/member.h"

namespace ckpt {

void Semaphore::wait() {
  for (;;) {
    if (group::SemWait(h_->slot, h_->queue.get(), h_->member) == group::WaitResult::kDone) return;
    h_->member->Quiesce("semaphore " + h_->name);
  }
}

bool Semaphore::try_wait() {
  return group::SemTryTake(h_->slot);
}

void Semaphore::post(std::uint32_t n) {
  group::SemPost(h_->slot, h_->queue.get(), n);
}

std::uint32_t Semaphore::value() const {
  return h_->slot->value.load();
}

void Barrier::wait() {
  for (;;) {
    std::uint32_t gen = 0;
    if (group::BarrierArrive(h_->slot, h_->queue.get(), &gen)) return;
    if (group::BarrierAwait(h_->slot, h_->queue.get(), h_->member, gen) == group::WaitResult::kDone) return;
    h_->member->Quiesce("barrier " + h_->name);  // the arrival was withdrawn: arrive again after
  }
}

void Mutex::lock() {
  for (;;) {
    if (group::SemWait(h_->slot, h_->queue.get(), h_->member) == group::WaitResult::kDone) break;
    h_->member->Quiesce("mutex " + h_->name);
  }
  h_->slot->holder.store(static_cast<std::uint32_t>(h_->member->rank()) + 1);
  h_->member->LockTaken();
}

bool Mutex::try_lock() {
  if (!group::SemTryTake(h_->slot)) return false;
  h_->slot->holder.store(static_cast<std::uint32_t>(h_->member->rank()) + 1);
  h_->member->LockTaken();
  return true;
}

void Mutex::unlock() {
  h_->slot->holder.store(0);
  h_->member->LockReleased();
  group::SemPost(h_->slot, h_->queue.get(), 1);
}

int Group::rank() const {
  return m_->rank();
}
int Group::size() const {
  return m_->size();
}
bool Group::coordinated() const {
  return m_->coordinated();
}
const std::string& Group::id() const {
  return m_->id();
}

Semaphore& Group::semaphore(std::string_view name, std::uint32_t initial) {
  return *m_->OpenSync(name, group::ObjKind::kSemaphore, initial)->sem;
}

Barrier& Group::barrier(std::string_view name, std::uint32_t parties) {
  return *m_->OpenSync(name, group::ObjKind::kBarrier, parties)->barrier;
}

Mutex& Group::mutex(std::string_view name) {
  return *m_->OpenSync(name, group::ObjKind::kMutex, 0)->mutex;
}

void* Group::segment(std::string_view name, std::size_t bytes, SegmentOptions options) {
  return m_->OpenSegment(name, bytes, 1, 1, nullptr, options.base);
}

void* Group::TypedSegment(std::string_view name, std::size_t count, std::size_t elem_size, std::size_t align,
                          std::unique_ptr<detail::ElemCodec> codec, SegmentOptions options) {
  return m_->OpenSegment(name, count, elem_size, align, std::move(codec), options.base);
}

}  // namespace ckpt
