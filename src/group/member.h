// GroupMember: one process's side of a dependent process group. It owns the
// group's control block mapping and this member's objects (segments,
// semaphores, barriers, mutexes), talks to the coordinator (a listener thread
// turns a checkpoint request into the session's pending bit and wakes a
// blocked wait), parks at quiescent points and streams its parts of the group
// image. Used by the session's thread; Interrupt() is called by the listener.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ckpt/ckpt.hpp"
#include "group/control.h"
#include "group/group_image.h"
#include "group/protocol.h"
#include "group/sync.h"
#include "image/reader.h"
#include "image/writer.h"
#include "platform/env.h"
#include "platform/shm.h"

namespace ckpt::detail {

// A member whose coordinator has gone away ends with this status: it could
// never be part of a group checkpoint again (docs/groups.md).
inline constexpr int kExitCoordinatorGone = 1;

// What the member needs from its session.
struct GroupHooks {
  std::atomic<int>* pending = nullptr;  // the session's pending word
  int bit = 0;                          // the bit that means "group checkpoint requested"
  std::function<Status(image::Sink*, std::uint64_t seq)> write_image;
  std::function<void()> exit_checkpointed;  // stop the session and exit(75)
  std::function<void(const std::string&)> say;
  std::function<void(const std::string&)> fatal;  // does not return
  // The coordinator is gone or refused this member: says why and ends the
  // process (status kExitCoordinatorGone) from the listener thread; does not return.
  std::function<void(const std::string&)> coordinator_gone;
  // A group of one resuming: the program image (kind 1) whose OBJECTS and
  // SEGMENT sections hold this process's objects ("" when not resuming).
  std::string solo_resume;
};

struct SyncHandle {
  GroupMember* member = nullptr;
  group::Slot* slot = nullptr;
  group::ObjKind kind = group::ObjKind::kSemaphore;
  std::string name;
  std::unique_ptr<platform::WaitQueue> queue;
  std::unique_ptr<Semaphore> sem;
  std::unique_ptr<Barrier> barrier;
  std::unique_ptr<Mutex> mutex;
};

struct SegmentHandle {
  std::string name;
  std::unique_ptr<platform::SharedSegment> seg;
  std::unique_ptr<ElemCodec> codec;  // null: bytes
  std::size_t count = 0;
};

class GroupMember final : public group::WaitContext {
 public:
  // Joins the group named by CKPT_GROUP_* in the environment, or makes a
  // group of one when they are absent. Errors are fatal (hooks.fatal).
  GroupMember(platform::Env* env, GroupHooks hooks, std::string program, std::vector<std::string> args);
  ~GroupMember() override;
  GroupMember(const GroupMember&) = delete;
  GroupMember& operator=(const GroupMember&) = delete;

  static bool InGroupEnvironment(platform::Env* env);

  int rank() const { return static_cast<int>(rank_); }
  int size() const { return static_cast<int>(size_); }
  bool coordinated() const { return channel_ != nullptr; }
  const std::string& id() const { return gid_; }

  // Resuming: this member's program image, taken from the group image.
  bool resuming() const { return reader_ != nullptr; }
  Result<std::unique_ptr<image::RandomAccessSource>> TakeMemberImage();

  // At a safepoint with the group bit set: parks if a checkpoint is due.
  Event AtSafepoint();
  // A local trigger (--ckpt-every, a signal) asks the coordinator for a group checkpoint.
  // Waits here (up to 30 s) for the coordinator's request and serves it, so
  // that the asking member is part of the checkpoint it asked for (it might
  // otherwise run to its end before the request arrives).
  Event AskCheckpoint(bool exit_after);

  SyncHandle* OpenSync(std::string_view name, group::ObjKind kind, std::uint32_t arg);
  void* OpenSegment(std::string_view name, std::size_t count, std::size_t elem_size, std::size_t align,
                    std::unique_ptr<ElemCodec> codec, std::uintptr_t base);

  // Parks at a quiescent point until the coordinator commits or abandons the
  // checkpoint; `pending_wait` names the wait the caller was blocked in.
  Event Quiesce(const std::string& pending_wait);
  void LockTaken() { ++locks_held_; }
  void LockReleased() { --locks_held_; }
  // The group mutexes this member holds (it is not quiescent while it holds one).
  int locks_held() const { return locks_held_; }
  // A group of one writes its objects into its own program image: OBJECTS
  // and one SEGMENT section per segment (docs/image-format.md). Fails,
  // naming it, if an object of the image it resumed from was not declared
  // again.
  Status WriteSoloSections(image::ImageWriter* w);

  // group::WaitContext
  bool Interrupted() override;
  void SetBlocked(group::Slot* slot, platform::WaitQueue* q) override;

 private:
  void Join();
  void OpenControl();
  void OpenResumeImage(const std::string& path, image::ImageKind kind);
  void Listen();
  [[noreturn]] void CoordinatorGone(const std::string& why);
  void Interrupt();
  group::Message NextMessage();
  Status ServePart(const group::Request& req);
  Status StreamSegment(const SegmentHandle& h, image::Sink* sink);
  Status RestoreSegment(SegmentHandle& h, const group::ObjectRecord& rec);
  const group::ObjectRecord* ImageObject(std::string_view name) const;
  void MaybeCloseResumeImage();
  std::string ObjectName(std::string_view name) const { return "ckpt." + gid_ + "." + std::string(name); }
  [[noreturn]] void Fatal(const std::string& m);

  platform::Env* env_;
  GroupHooks hooks_;
  std::string program_;
  std::vector<std::string> args_;
  std::uint32_t rank_ = 0;
  std::uint32_t size_ = 1;
  std::string gid_;
  int port_ = 0;

  std::unique_ptr<platform::SharedSegment> control_seg_;
  group::ControlBlock* cb_ = nullptr;
  std::map<std::string, std::unique_ptr<SyncHandle>, std::less<>> syncs_;
  std::map<std::string, std::unique_ptr<SegmentHandle>, std::less<>> segments_;
  int locks_held_ = 0;

  // Resume.
  std::unique_ptr<image::ImageReader> reader_;
  std::vector<group::ObjectRecord> image_objects_;
  std::string resume_path_;
  bool member_taken_ = false;  // this member's own state is out of the image

  // Coordinator link.
  std::unique_ptr<group::Channel> channel_;
  std::thread listener_;
  std::atomic<std::uint64_t> requested_epoch_{0};
  std::atomic<bool> lost_{false};
  std::atomic<bool> closing_{false};
  bool lost_reported_ = false;
  std::mutex inbox_mu_;
  std::condition_variable inbox_cv_;
  std::deque<group::Message> inbox_;
  std::atomic<group::Slot*> blocked_slot_{nullptr};
  std::atomic<platform::WaitQueue*> blocked_queue_{nullptr};
};

}  // namespace ckpt::detail
