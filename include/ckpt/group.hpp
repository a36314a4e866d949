// CKPT group objects: named shared segments, counting semaphores, barriers
// and mutexes shared by the members of a dependent process group, created
// through the Session so that a coordinated checkpoint captures them (their
// bytes, counts and who waits on what). Objects belong to the session's
// thread: call them from the thread that owns the Session.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "ckpt/serialize.hpp"

namespace ckpt {

namespace detail {
class GroupMember;
class SessionImpl;
struct SyncHandle;

// Encodes and decodes the elements of a typed segment (see Group::array).
class ElemCodec {
 public:
  virtual ~ElemCodec() = default;
  virtual TypeDesc Describe() const = 0;
  virtual void Save(Writer& w, const void* data, std::size_t count) const = 0;
  virtual void Load(Reader& r, void* data, std::size_t count, const TypeDesc& img) const = 0;
};

template <typename T>
class ElemCodecFor final : public ElemCodec {
 public:
  TypeDesc Describe() const override { return Traits<T>::Describe(); }
  void Save(Writer& w, const void* data, std::size_t count) const override {
    SaveArray(w, static_cast<const T*>(data), count);
  }
  void Load(Reader& r, void* data, std::size_t count, const TypeDesc& img) const override {
    LoadArray(r, static_cast<T*>(data), count, img);
  }
};
}  // namespace detail

struct SegmentOptions {
  // Map the segment at this address in every member that asks (0: anywhere),
  // so pointers into it stay valid across a restore. A resume where the range
  // is taken fails with a message, never a crash.
  std::uintptr_t base = 0;
};

// A counting semaphore. wait() is a quiescent point: a group checkpoint may
// be taken while it blocks (recorded as a pending wait and re-entered on resume).
class Semaphore {
 public:
  void wait();
  bool try_wait();
  void post(std::uint32_t n = 1);
  std::uint32_t value() const;

 private:
  friend class detail::GroupMember;
  explicit Semaphore(detail::SyncHandle* h) : h_(h) {}
  detail::SyncHandle* h_;
};

// A reusable barrier for `parties` members; wait() is a quiescent point.
class Barrier {
 public:
  void wait();

 private:
  friend class detail::GroupMember;
  explicit Barrier(detail::SyncHandle* h) : h_(h) {}
  detail::SyncHandle* h_;
};

// A mutex between members. Blocking in lock() is a quiescent point; a member
// that holds a mutex defers group checkpoints to its next safepoint outside.
class Mutex {
 public:
  void lock();
  bool try_lock();
  void unlock();

 private:
  friend class detail::GroupMember;
  explicit Mutex(detail::SyncHandle* h) : h_(h) {}
  detail::SyncHandle* h_;
};

// The group this program runs in: under `ckpt run` one member of N; run
// alone, a group of one whose objects are private to the process.
class Group {
 public:
  int rank() const;
  int size() const;
  bool coordinated() const;  // started by `ckpt run` / `ckpt resume`
  const std::string& id() const;

  Semaphore& semaphore(std::string_view name, std::uint32_t initial = 0);
  Barrier& barrier(std::string_view name, std::uint32_t parties = 0);  // 0: the group size
  Mutex& mutex(std::string_view name);
  // An untyped segment of `bytes` bytes: checkpointed and restored byte for
  // byte (no conversion between platforms of different endianness).
  void* segment(std::string_view name, std::size_t bytes, SegmentOptions options = {});
  // A typed segment of `count` elements of T (arithmetic, or a struct with
  // CKPT_FIELDS): its contents are converted element by element when the
  // group moves to a platform of another endianness or type widths.
  template <typename T>
  T* array(std::string_view name, std::size_t count, SegmentOptions options = {}) {
    static_assert(std::is_trivially_copyable_v<T>, "ckpt: shared arrays hold trivially copyable types");
    return static_cast<T*>(TypedSegment(name, count, sizeof(T), alignof(T),
                                        std::make_unique<detail::ElemCodecFor<T>>(), options));
  }

 private:
  friend class Session;
  friend class detail::SessionImpl;
  explicit Group(detail::GroupMember* m) : m_(m) {}
  void* TypedSegment(std::string_view name, std::size_t count, std::size_t elem_size, std::size_t align,
                     std::unique_ptr<detail::ElemCodec> codec, SegmentOptions options);
  detail::GroupMember* m_;
};

}  // namespace ckpt
