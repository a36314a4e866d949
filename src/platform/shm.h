// Named shared memory segments and cross-process wait queues: the OS
// primitives under ckpt's group objects (posix_shm.cc: shm_open + mmap and
// futex; windows_shm.cc: CreateFileMapping + MapViewOfFileEx and named
// semaphores). Objects are not thread-safe; WaitQueue::Wait/Wake are.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "util/status.h"

namespace ckpt::platform {

// A mapped view of a named shared memory object. Destroying it unmaps the
// view and closes the handle; the name stays until Unlink (POSIX) or until the
// last handle anywhere closes (Windows).
class SharedSegment {
 public:
  // Creates the object `name` of `size` bytes (zero-filled) and maps it; fails
  // if it exists. `base` = 0 maps anywhere; otherwise exactly at `base`, and an
  // occupied range is an error that says so.
  static Result<std::unique_ptr<SharedSegment>> Create(const std::string& name, std::size_t size,
                                                       std::uintptr_t base);
  // Opens and maps an existing object; NotFound if there is none. Waits up to
  // `wait_ms` for a concurrent creator to give it its size.
  static Result<std::unique_ptr<SharedSegment>> Open(const std::string& name, std::size_t size,
                                                     std::uintptr_t base, int wait_ms = 2000);
  // Removes the name (POSIX); a no-op on Windows, where objects die with their handles.
  static Status Unlink(const std::string& name);
  // Removes every object whose name starts with `prefix` (POSIX: /dev/shm); best effort.
  static void UnlinkAll(const std::string& prefix);

  ~SharedSegment();
  SharedSegment(const SharedSegment&) = delete;
  SharedSegment& operator=(const SharedSegment&) = delete;

  void* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& name() const { return name_; }

 private:
  SharedSegment(std::string name, void* data, std::size_t size, std::intptr_t handle)
      : name_(std::move(name)), data_(data), size_(size), handle_(handle) {}
  std::string name_;
  void* data_;
  std::size_t size_;
  std::intptr_t handle_;  // fd or HANDLE
};

// Blocks threads of any process on a 32-bit word in shared memory. Linux uses
// a futex on the word itself; Windows a named semaphore (`name`) whose tokens
// Wake releases, so a wake before the wait is not lost.
class WaitQueue {
 public:
  static Result<std::unique_ptr<WaitQueue>> Open(const std::string& name, std::atomic<std::uint32_t>* word);
  ~WaitQueue();
  WaitQueue(const WaitQueue&) = delete;
  WaitQueue& operator=(const WaitQueue&) = delete;

  // Blocks while *word == expected, until a Wake, or `timeout_ms` (< 0: no
  // limit). May return early (on Windows at least every 50 ms, as a wake-up
  // can be taken by another waiter); callers re-check their condition.
  void Wait(std::uint32_t expected, int timeout_ms = -1);
  // Wakes up to `n` waiters.
  void Wake(std::uint32_t n);

 private:
  WaitQueue(std::atomic<std::uint32_t>* word, std::intptr_t handle) : word_(word), handle_(handle) {}
  std::atomic<std::uint32_t>* word_;
  std::intptr_t handle_;  // unused on Linux; the semaphore HANDLE on Windows
};

}  // namespace ckpt::platform
