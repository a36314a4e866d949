// SessionImpl: the state and work behind ckpt::Session, internal to the
// library. session.cc: start, triggers and the public methods;
// session_resume.cc: reading an image back; session_write.cc: checkpoints,
// holds and the safepoint's slow path.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "ckpt/ckpt.hpp"
#include "group/member.h"
#include "image/reader.h"
#include "image/writer.h"
#include "lib/hold.h"
#include "lib/options.h"
#include "lib/program_image.h"
#include "lib/registration.h"
#include "lib/resume_image.h"
#include "lib/section_io.h"
#include "lib/testing.h"
#include "platform/env.h"
#include "state/compat.h"
#include "util/text.h"

namespace ckpt {
namespace detail {

// Bits of Session::pending_ (the safepoint's fast path tests them all at once).
inline constexpr int kBitCheckpoint = 1;
inline constexpr int kBitExit = 2;
inline constexpr int kBitResumed = 4;
inline constexpr int kBitCount = 8;
inline constexpr int kBitGroup = 16;  // the group coordinator asked for a checkpoint
inline constexpr int kBitOutside =
    platform::kRequestFromOutside;  // with kBitCheckpoint: `ckpt checkpoint` asked
static_assert(kBitOutside == 32, "the trigger's bit must not collide with the session's");
inline constexpr int kBitFirst = 64;                     // no safepoint yet: the first one ends registration
inline constexpr int kBitHold = platform::kRequestHold;  // with kBitCheckpoint: hold after the checkpoint
inline constexpr int kBitRelease = platform::kRequestRelease;          // a held program continues
inline constexpr int kBitReleaseExit = platform::kRequestReleaseExit;  // a held program exits (75)
static_assert(kBitHold == 128 && kBitRelease == 256 && kBitReleaseExit == 512,
              "the hold bits must not collide with the session's");

// Why the last call of this thread on a session it does not own was refused
// (Session::last_error() in that thread). Per thread, so that the refusal
// never writes the owner's state.
struct ForeignError {
  std::uint64_t session = 0;  // SessionImpl::serial_
  std::string message;
};
extern thread_local ForeignError t_foreign_error;
extern std::atomic<std::uint64_t> g_session_serial;

#if CKPT_SAFEPOINT_TRAMPOLINE
void ProbeExtendedState();  // safepoint_trampoline.cc
#endif

struct VarEntry {
  std::string name;
  std::unique_ptr<VarBase> var;
  TypeDesc desc;
};

class SessionImpl {
 public:
  SessionImpl(Session* owner, std::atomic<int>* pending) : owner_(owner), pending_(pending) {}

  Session* owner_;
  std::atomic<int>* pending_;
  const std::uint64_t serial_ = ++g_session_serial;
  const std::thread::id owner_thread_ = std::this_thread::get_id();
  std::atomic<bool> warned_foreign_{false};
  platform::Env* env_ = lib::SessionEnv();
  Options opt_;
  std::string program_path_;
  std::vector<std::string> program_args_;
  image::CodecId codec_ = image::CodecId::kNone;

  std::vector<VarEntry> vars_;
  std::set<std::string> var_names_;
  const char* registration_closed_by_ = nullptr;  // "the first safepoint", ...

  // Resume state.
  bool resumed_ = false;
  std::string resume_path_;
  std::unique_ptr<lib::ResumeImage> resume_;  // until the program's variables are loaded
  std::set<std::string> claimed_;
  double resume_seconds_ = 0;  // time spent reading the image
  std::uint64_t resume_bytes_ = 0;

  // Progress.
  lib::Progress progress_;
  std::vector<std::string> stage_stack_;
  std::set<std::string> stages_done_;
  std::uint64_t safepoints_ = 0;
  std::uint64_t written_ = 0;
  bool swept_ = false;  // stale temporary files removed from opt_.dir
  std::uint64_t failures_ = 0;
  std::string last_image_;
  std::string last_error_;
  std::exception_ptr parked_exception_;  // thrown in a safepoint's slow path

  // Triggers.
  bool trigger_installed_ = false;
  std::unique_ptr<lib::Registration> registration_;
  std::thread timer_;
  std::mutex timer_mu_;
  std::condition_variable timer_cv_;
  bool timer_stop_ = false;

  // Migration (lib/hold.h): a hold in progress, and the target side's handoff.
  bool held_ = false;
  double hold_timeout_ = lib::kDefaultHoldTimeout;
  lib::Handoff handoff_;

  // Dependent process group (group/member.h): made at start under `ckpt
  // run`, or on first use of Session::group() otherwise.
  std::unique_ptr<GroupMember> group_;
  std::unique_ptr<Group> group_api_;

  // Registration ends at the first safepoint or checkpoint: a resumed run
  // restores every variable before it, so one registered later could never
  // be restored from the image that follows.
  void CloseRegistration(const char* by) {
    if (registration_closed_by_ == nullptr) registration_closed_by_ = by;
  }

  // The owner's last_error_, or this thread's refusal when it does not own the session.
  const std::string& LastError() const {
    if (t_foreign_error.session == serial_ && std::this_thread::get_id() != owner_thread_)
      return t_foreign_error.message;
    return last_error_;
  }
  void SetLastError(std::string m) {
    if (std::this_thread::get_id() == owner_thread_) {
      last_error_ = std::move(m);
    } else {
      t_foreign_error = {serial_, std::move(m)};
    }
  }

  // True (and the refusal recorded and reported once) if the calling thread
  // does not own the session: only the owner may take checkpoints, as only it
  // knows when the registered state is consistent. Nothing of the session is
  // touched from the foreign thread; a pending request stays pending.
  bool RefuseForeignThread(const char* call) {
    if (std::this_thread::get_id() == owner_thread_) [[likely]]
      return false;
    std::string m = std::string(call) +
                    " called from a thread that does not own the session (only the thread that created "
                    "it may take checkpoints): checkpoint refused";
    if (!warned_foreign_.exchange(true)) Say("error: " + m);
    SetLastError(std::move(m));
    return true;
  }

  void Say(const std::string& m) const {
    if (!opt_.quiet) (void)std::fprintf(stderr, "ckpt: %s\n", m.c_str());
  }

  [[noreturn]] void Fatal(const std::string& m) {
    if (opt_.throw_on_error) throw Error(m);
    (void)std::fflush(stdout);
    (void)std::fprintf(stderr, "ckpt: error: %s\n", m.c_str());
    std::exit(kExitResumeFailed);
  }

  void Start(int argc, char** argv);

  void StartTimer();

  void Stop();

  // --- resume ---------------------------------------------------------------
  void OpenResume();

  // " (it holds images of other programs: 'a', 'b'; ...)", or "" when it holds none.
  std::string OtherPrograms(const std::string& dir);

  Status TryOpen(const std::string& path);

  // `check_name`: the image must be this program's (META program.name equal
  // to the session's name); a group member's image is matched by its coordinator.
  // `streamed_limit` > 0: the image is still arriving (lib::ResumeImage).
  Status TryOpenSource(std::unique_ptr<image::RandomAccessSource> src, bool check_name = false,
                       std::uint64_t streamed_limit = 0);

  void LoadVar(VarEntry& e);

  void FinishResume();

  // --- checkpoint --------------------------------------------------------------
  Status Publish(bool exited);

  // Writes the image under no name (or a random temporary one) and links it
  // as NAME.SEQ.ckpt only if no other writer (a second run of the program,
  // the same image resumed twice) has taken SEQ meanwhile; then it tries the
  // next number. Nothing is ever replaced.
  Status WriteImage(std::string* out_path);

  // A hold's image goes into a migration's connection when its ticket asks
  // for that (lib/hold.h; *out_path then stays empty), else into a file.
  Status WriteHeldImage(std::string* out_path);

  Status WriteImage(image::Sink* sink, std::uint64_t seq);

  void MakeGroup();

  // A group of one removes its objects when the process stops after a checkpoint.
  void ReleaseSoloGroup();

  // `asked_outside`: a `ckpt checkpoint` request is among those served, so
  // after a checkpoint-and-exit the registration stays for it to read.
  Event DoCheckpoint(bool exit_after, bool asked_outside = false, bool hold = false);

  // Inside the safepoint after a checkpoint-and-hold: waits for the decision
  // (lib/hold.h), touching nothing of the program's state.
  void Hold();

  // The target side of a migration, once, at the first safepoint (after the
  // resume is complete) or the first checkpoint: runs on only after 'g'.
  void MaybeHandoff();

  Event Slow();
};

}  // namespace detail
}  // namespace ckpt
