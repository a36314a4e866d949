// CKPT: application-assisted, portable checkpointing. A program registers its
// state by name, marks safe points, and ckpt turns that state into a
// platform-neutral image that resumes the same program built for another OS
// or CPU. A Session is owned and used by one thread; request_checkpoint() and
// external triggers (signals, Windows events, the timer) are thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "ckpt/group.hpp"
#include "ckpt/serialize.hpp"
#include "ckpt/var.hpp"

// On x86-64 Linux with GCC or Clang, safepoint()'s slow path is entered
// through a trampoline that preserves every register (src/lib/safepoint_x86_64.S),
// so that a safepoint inside a hot loop costs the loop nothing but one load.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(_WIN32) && !defined(CKPT_NO_SAFEPOINT_TRAMPOLINE)
#define CKPT_SAFEPOINT_TRAMPOLINE 1
#else
#define CKPT_SAFEPOINT_TRAMPOLINE 0
#endif

namespace ckpt {

inline constexpr const char* kVersion = "0.2.0";
// Exit status of a program that wrote a checkpoint and stopped as asked
// (`ckpt checkpoint PID --exit`, --ckpt-stop-at). 75 is EX_TEMPFAIL: "try again".
inline constexpr int kExitCheckpointed = 75;
// Exit status when a resume fails (bad image, type mismatch).
inline constexpr int kExitResumeFailed = 3;
// Exit status of a migrated copy whose handoff was aborted (started with
// CKPT_HOLD_PORT/CKPT_HOLD_TOKEN, it did not get the go-ahead at its first
// safepoint): it ran none of its own work and wrote no image.
inline constexpr int kExitHandoffAborted = 76;

// What a safepoint or checkpoint call reports.
enum class Event {
  kNone,          // nothing happened
  kCheckpointed,  // an image was written; the program continues
  kResumed,       // first safepoint after this run resumed from an image
  kFailed,        // a checkpoint was attempted and failed (see last_error())
};

struct Options {
  std::string dir = ".";        // where images go (--ckpt-dir)
  std::string resume;           // image file or directory to resume from; "auto" (--ckpt-resume)
  double every_seconds = 0;     // periodic checkpoints (--ckpt-every)
  int keep = 2;                 // images kept in dir (--ckpt-keep)
  std::string codec = "none";   // none, zstd, zlib (--ckpt-codec)
  int level = 0;                // compression level, 0 = codec default (--ckpt-level)
  std::uint64_t stop_at = 0;    // checkpoint and exit at this run's N-th safepoint (--ckpt-stop-at)
  std::uint64_t at = 0;         // checkpoint (and continue) at this run's N-th safepoint (--ckpt-at)
  std::string name;             // image name prefix; default: program name (--ckpt-name)
  bool quiet = false;           // no progress lines on stderr (--ckpt-quiet)
  bool listen = true;           // accept requests from `ckpt checkpoint PID`
  bool throw_on_error = false;  // throw ckpt::Error instead of printing and exiting
  unsigned image_mode = 0600;   // permission bits of new images (--ckpt-image-mode); 0600..0777
  bool page_cache = false;      // write images through the page cache (--ckpt-page-cache); else
                                // whole blocks go straight to the disk where it can (Linux O_DIRECT)
};

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

class SessionImpl;
struct CApi;

// A registered variable, type-erased.
class VarBase {
 public:
  virtual ~VarBase() = default;
  virtual TypeDesc Describe() const = 0;
  virtual void Save(Writer& w) const = 0;
  virtual void Load(Reader& r, const TypeDesc& img) = 0;
};

template <typename T>
class OwnedVar final : public VarBase {
 public:
  explicit OwnedVar(T v) : var(std::in_place, std::move(v)) {}
  TypeDesc Describe() const override { return Traits<T>::Describe(); }
  void Save(Writer& w) const override { Traits<T>::Save(w, static_cast<const T&>(var)); }
  void Load(Reader& r, const TypeDesc& img) override { Traits<T>::Load(r, static_cast<T&>(var), img); }
  Var<T> var;
};

template <typename T>
class BoundVar final : public VarBase {
 public:
  explicit BoundVar(T* p) : ptr(p) {}
  TypeDesc Describe() const override { return Traits<T>::Describe(); }
  void Save(Writer& w) const override { Traits<T>::Save(w, *ptr); }
  void Load(Reader& r, const TypeDesc& img) override { Traits<T>::Load(r, *ptr, img); }
  T* ptr;
};

}  // namespace detail

class Session;
namespace detail {
long SafepointEntry(Session* s) noexcept;
// Why a registration was refused (the C API turns it into an error code).
enum class Refusal { kNone, kInvalid, kDuplicate, kLate };
}  // namespace detail

class Session {
 public:
  // Reads --ckpt-* options (and CKPT_* environment variables) and removes the
  // options from argv. With none given, the program runs as without ckpt.
  Session(int& argc, char** argv);
  // The same, starting from `defaults` (which the arguments and variables
  // override): with defaults.throw_on_error, bad options and a failed
  // resume are thrown as ckpt::Error instead of ending the program.
  Session(int& argc, char** argv, Options defaults);
  Session(Options options, int argc = 0, char** argv = nullptr);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Registers a variable owned by the session and returns it: hold it as
  // `auto& x = s.var(...)` (a Var<T> cannot be copied, so `auto x` does not
  // compile). When resuming, the value comes from the image.
  template <typename T>
  Var<T>& var(std::string_view name, T initial = T{}) {
    auto holder = std::make_unique<detail::OwnedVar<T>>(std::move(initial));
    Var<T>& ref = holder->var;
    Register(name, std::move(holder));
    return ref;
  }
  // Another variable's value as the initial value.
  template <typename T>
  Var<T>& var(std::string_view name, const Var<T>& initial) {
    return var<T>(name, static_cast<const T&>(initial));
  }
  // Registers a variable the program owns; it must outlive the session's use.
  template <typename T>
  T& bind(std::string_view name, T& existing) {
    Register(name, std::make_unique<detail::BoundVar<T>>(&existing));
    return existing;
  }

  // Runs `body` once across restarts: a stage that completed before the
  // checkpoint is skipped after a resume. Stages nest.
  template <typename F>
  void stage(std::string_view name, F&& body) {
    if (!StageEnter(name)) return;
    struct Leave {
      Session* s;
      bool done = false;
      ~Leave() { s->StageLeave(done); }
    } leave{this};
    body();
    leave.done = true;
  }

  // A safe point: one relaxed atomic load when nothing is pending.
  Event safepoint() {
    if (pending_.load(std::memory_order_relaxed) == 0) [[likely]]
      return Event::kNone;
#if CKPT_SAFEPOINT_TRAMPOLINE
    long result;
    // Step over the red zone, call the register-preserving trampoline.
    asm volatile(
        "lea -128(%%rsp), %%rsp\n\t"
        "call ckpt_safepoint_trampoline\n\t"
        "lea 128(%%rsp), %%rsp"
        : "=a"(result)
        : "D"(this)
        : "memory", "cc");
    if (result < 0) [[unlikely]]
      RethrowPending();
    return static_cast<Event>(result);
#else
    return SafepointSlow();
#endif
  }
  // Writes a checkpoint now.
  Event checkpoint();
  // The dependent process group this program belongs to (include/ckpt/group.hpp):
  // its rank and size, and the shared segments, semaphores, barriers and
  // mutexes that a group checkpoint captures.
  Group& group();
  // Asks for a checkpoint at the next safepoint (thread-safe).
  void request_checkpoint(bool exit_after = false);

  bool resumed() const;
  std::uint64_t checkpoints_written() const;
  const std::string& last_image() const;
  const std::string& last_error() const;
  const Options& options() const;

 private:
  void Register(std::string_view name, std::unique_ptr<detail::VarBase> var);
  // Register() without ending the program on a refused registration: returns
  // why and sets last_error(). (A resume error still takes the Fatal path.)
  detail::Refusal TryRegister(std::string_view name, std::unique_ptr<detail::VarBase> var);
  void SetLastError(std::string why);  // a refusal found by the C API
  bool StageEnter(std::string_view name);
  bool StageLeave(bool completed);  // false if no stage was open
  [[gnu::cold, gnu::noinline]] Event SafepointSlow();
  [[noreturn, gnu::cold, gnu::noinline]] void RethrowPending();
  friend struct detail::CApi;
  friend long detail::SafepointEntry(Session* s) noexcept;

  std::atomic<int> pending_{0};
  std::unique_ptr<detail::SessionImpl> impl_;
};

}  // namespace ckpt
