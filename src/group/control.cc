#include "group/control.h"

#include <chrono>
#include <cstring>
#include <thread>

namespace ckpt::group {

const char* ObjKindName(ObjKind k) {
  switch (k) {
    case ObjKind::kSegment:
      return "segment";
    case ObjKind::kSemaphore:
      return "semaphore";
    case ObjKind::kBarrier:
      return "barrier";
    case ObjKind::kMutex:
      return "mutex";
  }
  return "unknown";
}

void InitControl(ControlBlock* cb, std::uint32_t group_size) {
  cb->version = kControlVersion;
  cb->capacity = kCapacity;
  cb->group_size = group_size;
  cb->magic.store(kControlMagic, std::memory_order_release);
}

Status AwaitControl(const ControlBlock* cb, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (cb->magic.load(std::memory_order_acquire) != kControlMagic) {
    if (std::chrono::steady_clock::now() > deadline)
      return Timeout("the group's control block was not initialised within " + std::to_string(timeout_ms) +
                     " ms (did its creator die?)");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (cb->version != kControlVersion || cb->capacity != kCapacity)
    return FailedPrecondition("the group's control block has version " + std::to_string(cb->version) +
                              "; this build uses " + std::to_string(kControlVersion));
  return Status::Ok();
}

TableLock::TableLock(ControlBlock* cb) : cb_(cb) {
  for (int spins = 0;; ++spins) {
    std::uint32_t expected = 0;
    if (cb_->lock.compare_exchange_weak(expected, 1, std::memory_order_acquire)) return;
    if (spins > 64)
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    else
      std::this_thread::yield();
  }
}

TableLock::~TableLock() {
  cb_->lock.store(0, std::memory_order_release);
}

Slot* FindSlot(ControlBlock* cb, std::string_view name) {
  for (auto& s : cb->slots) {
    if (s.state.load(std::memory_order_acquire) == kSlotFree) continue;
    if (name == s.name) return &s;
  }
  return nullptr;
}

Result<Slot*> ClaimSlot(ControlBlock* cb, std::string_view name, ObjKind kind, std::uint32_t creator) {
  for (auto& s : cb->slots) {
    if (s.state.load(std::memory_order_acquire) != kSlotFree) continue;
    std::memset(s.name, 0, sizeof s.name);
    std::memcpy(s.name, name.data(), name.size());
    std::memset(s.desc, 0, sizeof s.desc);
    s.kind = static_cast<std::uint32_t>(kind);
    s.creator = creator;
    s.parties = 0;
    s.size = s.count = s.base = 0;
    s.value.store(0);
    s.waiters.store(0);
    s.barrier.store(0);
    s.holder.store(0);
    s.state.store(kSlotCreating, std::memory_order_release);
    return &s;
  }
  return FailedPrecondition("the group has " + std::to_string(kCapacity) + " objects already; cannot add '" +
                            std::string(name) + "'");
}

std::uint32_t SlotIndex(const ControlBlock* cb, const Slot* s) {
  return static_cast<std::uint32_t>(s - cb->slots);
}

Status CheckObjectName(std::string_view name) {
  if (name.empty() || name.size() > kNameMax)
    return InvalidArgument("group object name '" + std::string(name) + "' must have 1 to " +
                           std::to_string(kNameMax) + " characters");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-' || c == '.';
    if (!ok)
      return InvalidArgument("group object name '" + std::string(name) +
                             "' may only hold letters, digits, '_', '-' and '.'");
  }
  return Status::Ok();
}

}  // namespace ckpt::group
