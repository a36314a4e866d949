// SharedSegment and WaitQueue for Windows: pagefile-backed named file
// mappings (CreateFileMappingA + MapViewOfFileEx at a fixed base when asked)
// and named semaphores as wait queues.
#include <windows.h>

#include <climits>
#include <cstdio>

#include "platform/shm.h"
#include "platform/windows_util.h"

namespace ckpt::platform {

namespace {

std::string Hex(std::uintptr_t v) {
  char b[32];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

Result<void*> MapView(const std::string& name, HANDLE h, std::size_t size, std::uintptr_t base) {
  void* p = MapViewOfFileEx(h, FILE_MAP_ALL_ACCESS, 0, 0, size, reinterpret_cast<void*>(base));
  if (p == nullptr) {
    DWORD e = GetLastError();
    if (base != 0) {
      return FailedPrecondition("map shared segment " + name + " at base " + Hex(base) + ": the range " +
                                Hex(base) + ".." + Hex(base + size) + " is not free in this process (" +
                                WindowsError("", "", e).message() + ")");
    }
    return WindowsError("map shared segment", name, e);
  }
  return p;
}

}  // namespace

Result<std::unique_ptr<SharedSegment>> SharedSegment::Create(const std::string& name, std::size_t size,
                                                             std::uintptr_t base) {
  std::uint64_t sz = size;
  HANDLE h = CreateFileMappingA(INVALID_HANDLE_VALUE, nullptr, PAGE_READWRITE, static_cast<DWORD>(sz >> 32),
                                static_cast<DWORD>(sz), name.c_str());
  if (h == nullptr) return WindowsError("create shared segment", name, GetLastError());
  if (GetLastError() == ERROR_ALREADY_EXISTS) {
    CloseHandle(h);
    return FailedPrecondition("create shared segment " + name + ": it exists already");
  }
  auto p = MapView(name, h, size, base);
  if (!p.ok()) {
    CloseHandle(h);
    return p.status();
  }
  return std::unique_ptr<SharedSegment>(
      new SharedSegment(name, *p, size, reinterpret_cast<std::intptr_t>(h)));
}

Result<std::unique_ptr<SharedSegment>> SharedSegment::Open(const std::string& name, std::size_t size,
                                                           std::uintptr_t base, int) {
  HANDLE h = OpenFileMappingA(FILE_MAP_ALL_ACCESS, FALSE, name.c_str());
  if (h == nullptr) {
    DWORD e = GetLastError();
    if (e == ERROR_FILE_NOT_FOUND) return NotFound("open shared segment " + name + ": no such segment");
    return WindowsError("open shared segment", name, e);
  }
  auto p = MapView(name, h, size, base);
  if (!p.ok()) {
    CloseHandle(h);
    return p.status();
  }
  MEMORY_BASIC_INFORMATION mi;
  if (VirtualQuery(*p, &mi, sizeof mi) == 0 || mi.RegionSize < size) {
    UnmapViewOfFile(*p);
    CloseHandle(h);
    return FailedPrecondition("shared segment " + name + " is smaller than the " + std::to_string(size) +
                              " bytes asked for");
  }
  return std::unique_ptr<SharedSegment>(
      new SharedSegment(name, *p, size, reinterpret_cast<std::intptr_t>(h)));
}

SharedSegment::~SharedSegment() {
  if (data_ != nullptr) UnmapViewOfFile(data_);
  if (handle_ != 0) CloseHandle(reinterpret_cast<HANDLE>(handle_));
}

Status SharedSegment::Unlink(const std::string&) {
  return Status::Ok();
}
void SharedSegment::UnlinkAll(const std::string&) {}

Result<std::unique_ptr<WaitQueue>> WaitQueue::Open(const std::string& name,
                                                   std::atomic<std::uint32_t>* word) {
  HANDLE h = CreateSemaphoreA(nullptr, 0, LONG_MAX, name.c_str());
  if (h == nullptr) return WindowsError("create semaphore", name, GetLastError());
  return std::unique_ptr<WaitQueue>(new WaitQueue(word, reinterpret_cast<std::intptr_t>(h)));
}

WaitQueue::~WaitQueue() {
  CloseHandle(reinterpret_cast<HANDLE>(handle_));
}

// A semaphore's tokens are not tied to the waiter they were released for.
// Between a waiter's check of the word and its WaitForSingleObject, another
// waiter of the same queue can be woken, find its condition still false, wait
// again and take the token meant for the first, which then sleeps through
// its wake-up (group_wine_migration hung that way: every member asleep in a
// barrier that had completed for one of them). So no wait lasts longer than
// kWaitSliceMs: a waiter whose token was taken returns within it, and the
// caller re-checks its condition (every caller loops; see shm.h).
constexpr DWORD kWaitSliceMs = 50;

void WaitQueue::Wait(std::uint32_t expected, int timeout_ms) {
  if (word_->load() != expected) return;
  DWORD ms = timeout_ms < 0 || static_cast<DWORD>(timeout_ms) > kWaitSliceMs ? kWaitSliceMs
                                                                             : static_cast<DWORD>(timeout_ms);
  WaitForSingleObject(reinterpret_cast<HANDLE>(handle_), ms);
}

void WaitQueue::Wake(std::uint32_t n) {
  if (n == 0) return;
  LONG cnt = n > 1024 ? 1024 : static_cast<LONG>(n);
  ReleaseSemaphore(reinterpret_cast<HANDLE>(handle_), cnt, nullptr);
}

}  // namespace ckpt::platform
