// ckpt::Session: the variable registry, image writing and
// resuming, stages, triggers (signal/event, timer, safepoint counts) and the
// registration file that `ckpt checkpoint PID` talks to.
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

namespace lib {
namespace {
platform::Env* g_test_env = nullptr;
}
void SetEnvForTesting(platform::Env* env) {
  g_test_env = env;
}
platform::Env* SessionEnv() {
  return g_test_env != nullptr ? g_test_env : platform::Env::Default();
}
}  // namespace lib

namespace {

constexpr int kBitCheckpoint = 1;
constexpr int kBitExit = 2;
constexpr int kBitResumed = 4;
constexpr int kBitCount = 8;
constexpr int kBitGroup = 16;                               // the group coordinator asked for a checkpoint
constexpr int kBitOutside = platform::kRequestFromOutside;  // with kBitCheckpoint: `ckpt checkpoint` asked
static_assert(kBitOutside == 32, "the trigger's bit must not collide with the session's");
constexpr int kBitFirst = 64;                           // no safepoint yet: the first one ends registration
constexpr int kBitHold = platform::kRequestHold;        // with kBitCheckpoint: hold after the checkpoint
constexpr int kBitRelease = platform::kRequestRelease;  // a held program continues
constexpr int kBitReleaseExit = platform::kRequestReleaseExit;  // a held program exits (75)
static_assert(kBitHold == 128 && kBitRelease == 256 && kBitReleaseExit == 512,
              "the hold bits must not collide with the session's");
constexpr int kCommitAttempts = 8;  // sequence numbers tried when other writers take them

// Why the last call of this thread on a session it does not own was refused
// (Session::last_error() in that thread). Per thread, so that the refusal
// never writes the owner's state.
struct ForeignError {
  std::uint64_t session = 0;  // SessionImpl::serial_
  std::string message;
};
thread_local ForeignError t_foreign_error;
std::atomic<std::uint64_t> g_session_serial{0};

std::string ProgramName(const std::string& argv0) {
  std::string n = platform::BaseName(argv0);
  if (n.size() > 4) {
    std::string ext = n.substr(n.size() - 4);
    for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (ext == ".exe") n.resize(n.size() - 4);
  }
  return n.empty() ? "program" : n;
}

}  // namespace

namespace detail {

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
    if (!opt_.quiet) std::fprintf(stderr, "ckpt: %s\n", m.c_str());
  }

  [[noreturn]] void Fatal(const std::string& m) {
    if (opt_.throw_on_error) throw Error(m);
    std::fflush(stdout);
    std::fprintf(stderr, "ckpt: error: %s\n", m.c_str());
    std::exit(kExitResumeFailed);
  }

  void Start(int argc, char** argv) {
#if CKPT_SAFEPOINT_TRAMPOLINE
    ProbeExtendedState();
#endif
    if (argc > 0 && argv != nullptr && argv[0] != nullptr) {
      program_path_ = argv[0];
      for (int i = 1; i < argc; ++i) program_args_.emplace_back(argv[i]);
    }
    if (opt_.name.empty()) opt_.name = ProgramName(program_path_.empty() ? "program" : program_path_);
    auto c = image::ParseCodec(opt_.codec);
    if (!c)
      lib::OptionUsageError(
          opt_, "unknown codec '" + opt_.codec + "' (this build has " + image::AvailableCodecs() + ")");
    if (!image::CodecAvailable(*c)) {
      lib::OptionUsageError(opt_, "codec " + opt_.codec + " is not available in this build (it has " +
                                      image::AvailableCodecs() + ")");
    }
    codec_ = *c;
    if (Status st = platform::CheckImageMode(opt_.image_mode); !st.ok())
      lib::OptionUsageError(opt_, st.message());
    if (opt_.keep < 1) opt_.keep = 1;
    auto ht = lib::HoldTimeoutFromEnvironment(env_);
    if (!ht.ok()) lib::OptionUsageError(opt_, ht.status().message());
    hold_timeout_ = *ht;
    handoff_ = lib::TakeHandoff(env_);
    if (GroupMember::InGroupEnvironment(env_)) {
      MakeGroup();
      opt_.listen = false;  // requests go to the coordinator (`ckpt checkpoint GROUP`)
      if (group_->resuming()) {
        auto src = group_->TakeMemberImage();
        Status st = src.ok() ? TryOpenSource(std::move(src).value()) : src.status();
        if (!st.ok()) Fatal("cannot resume: " + st.message());
      }
    } else if (!opt_.resume.empty()) {
      OpenResume();
      // A group of one saved its objects in its image: they are restored
      // when the program declares them, and must be declared again.
      if (resume_) {
        auto solo = resume_->HasSoloGroup();
        if (!solo.ok()) Fatal("cannot resume from " + resume_path_ + ": " + solo.status().message());
        if (*solo) MakeGroup();
      }
    }
    pending_->fetch_or(kBitFirst, std::memory_order_relaxed);
    if (opt_.at != 0 || opt_.stop_at != 0) pending_->fetch_or(kBitCount, std::memory_order_relaxed);
    if (opt_.listen) {
      Status st = env_->InstallCheckpointTrigger(pending_);
      if (st.ok()) {
        trigger_installed_ = true;
        registration_ = std::make_unique<lib::Registration>(env_, opt_.name, opt_.dir);
        Status rs = Publish(false);
        if (!rs.ok()) {
          // Not behind --ckpt-quiet: a refused runtime directory may be an attack.
          std::fprintf(stderr, "ckpt: warning: `ckpt checkpoint %lld` will not find this process: %s\n",
                       static_cast<long long>(env_->ProcessId()), rs.message().c_str());
          registration_.reset();
        }
      } else {
        Say("warning: cannot listen for checkpoint requests: " + st.message());
      }
    }
    if (opt_.every_seconds > 0) StartTimer();
  }

  void StartTimer() {
    auto period = std::chrono::duration<double>(opt_.every_seconds);
    timer_ = std::thread([this, period] {
      std::unique_lock<std::mutex> lk(timer_mu_);
      while (!timer_cv_.wait_for(lk, period, [this] { return timer_stop_; })) {
        pending_->fetch_or(kBitCheckpoint, std::memory_order_relaxed);
      }
    });
  }

  void Stop() {
    if (timer_.joinable()) {
      {
        std::lock_guard<std::mutex> lk(timer_mu_);
        timer_stop_ = true;
      }
      timer_cv_.notify_all();
      timer_.join();
    }
    if (trigger_installed_) {
      env_->RemoveCheckpointTrigger();
      trigger_installed_ = false;
    }
    registration_.reset();
  }

  // --- resume ---------------------------------------------------------------
  void OpenResume() {
    if (std::string f = env_->GetEnv(lib::kResumeFollowEnv); !f.empty()) {
      env_->UnsetEnv(lib::kResumeFollowEnv);  // not for the program's children
      auto follow = lib::ParseResumeFollow(f);
      if (!follow) Fatal(std::string(lib::kResumeFollowEnv) + " is malformed: '" + f + "'");
      platform::FollowSpec spec;
      spec.complete_marker = lib::CompleteMarker(follow->path);
      spec.writer_pid = follow->writer;
      auto src = platform::OpenFollowedFile(follow->path, spec);
      Status st =
          src.ok() ? TryOpenSource(std::move(src).value(), /*check_name=*/true, follow->limit) : src.status();
      if (!st.ok()) Fatal("cannot resume from " + follow->path + ": " + st.message());
      return;
    }
    const std::string& path = opt_.resume;
    const bool is_auto = path == "auto";
    std::vector<std::string> candidates;
    if (is_auto || env_->IsDirectory(path)) {
      // Only this program's images (NAME.SEQ.ckpt with NAME exactly its name).
      const std::string& dir = is_auto ? opt_.dir : path;
      if (is_auto && !env_->IsDirectory(dir)) {
        Say("--ckpt-resume auto: no directory " + dir + ", starting fresh");
        return;
      }
      auto list = lib::ListImages(env_, dir, opt_.name);
      if (!list.ok()) Fatal(list.status().message());
      if (list->empty()) {
        std::string what = "no checkpoint images of program '" + opt_.name + "' (" + opt_.name +
                           ".NNNNNN.ckpt) in directory " + dir + OtherPrograms(dir);
        if (!is_auto) Fatal(what);
        Say("--ckpt-resume auto: " + what + ", starting fresh");
        return;
      }
      candidates = *list;
    } else {
      candidates.push_back(path);
    }
    std::vector<std::string> errors;
    for (const std::string& c : candidates) {
      Status st = TryOpen(c);
      if (st.ok()) {
        if (!errors.empty()) Say("warning: skipped unusable newer image(s):" + CapLines(errors));
        return;
      }
      if (candidates.size() == 1) Fatal("cannot resume from " + c + ": " + st.message());
      errors.push_back(st.message());
    }
    Fatal("no usable image among " + std::to_string(candidates.size()) + " candidates:" + CapLines(errors));
  }

  // " (it holds images of other programs: 'a', 'b'; ...)", or "" when it holds none.
  std::string OtherPrograms(const std::string& dir) {
    auto all = lib::ListImages(env_, dir, "");
    if (!all.ok()) return "";
    std::set<std::string> names;
    for (const std::string& p : *all) {
      std::string n;
      std::uint64_t seq;
      if (lib::ParseImageFileName(platform::BaseName(p), &n, &seq)) names.insert("'" + n + "'");
    }
    if (names.empty()) return "";
    return " (it holds images of other programs: " +
           CapList(std::vector<std::string>(names.begin(), names.end())) +
           "; --ckpt-name NAME takes those of NAME)";
  }

  Status TryOpen(const std::string& path) {
    ASSIGN_OR_RETURN(auto src, env_->NewRandomAccessFile(path));
    return TryOpenSource(std::move(src), /*check_name=*/true);
  }

  // `check_name`: the image must be this program's (META program.name equal
  // to the session's name); a group member's image is matched by its coordinator.
  // `streamed_limit` > 0: the image is still arriving (lib::ResumeImage).
  Status TryOpenSource(std::unique_ptr<image::RandomAccessSource> src, bool check_name = false,
                       std::uint64_t streamed_limit = 0) {
    auto t0 = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(resume_, lib::ResumeImage::Open(std::move(src), streamed_limit, opt_.name, check_name));
    progress_ = resume_->progress();
    stages_done_ = std::set<std::string>(progress_.stages_done.begin(), progress_.stages_done.end());
    resumed_ = true;
    resume_path_ = resume_->path();
    pending_->fetch_or(kBitResumed, std::memory_order_relaxed);
    resume_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return Status::Ok();
  }

  void LoadVar(VarEntry& e) {
    auto t0 = std::chrono::steady_clock::now();
    auto found = resume_->Var(e.name);
    if (!found.ok()) Fatal("cannot resume from " + resume_path_ + ": " + found.status().message());
    if (*found == nullptr) {
      Fatal("cannot resume from " + resume_path_ + ": the program declares '" + e.name + "' (" +
            e.desc.ToString() + "), which the image does not contain");
    }
    const image::SectionInfo& s = **found;
    TypeDesc img;
    if (!ParseTypeDesc(s.attrs, &img)) {
      Fatal("cannot resume from " + resume_path_ + ": variable '" + e.name +
            "' has a malformed type descriptor '" + s.attrs + "'");
    }
    if (!state::Compatible(img, e.desc)) {
      Fatal("cannot resume from " + resume_path_ + ": '" + e.name + "' is " + img.ToString() +
            " in the image, the program declares " + e.desc.ToString());
    }
    auto stream = resume_->OpenSection(s);
    if (!stream.ok()) Fatal("cannot resume: " + stream.status().message());
    lib::SectionReader r(stream->get());
    e.var->Load(r, img);
    // The section's end marker too, as `ckpt verify` checks it: a damaged
    // image is refused even where the damage is outside the value's bytes.
    r.FinishSection();
    if (!r.ok()) {
      Fatal("cannot resume from " + resume_path_ + ": variable '" + e.name + "' (" + img.ToString() +
            "): " + r.error());
    }
    claimed_.insert(e.name);
    resume_bytes_ += (*stream)->decoded();
    resume_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  void FinishResume() {
    auto t0 = std::chrono::steady_clock::now();
    auto rest = resume_->Finish(claimed_);
    if (!rest.ok()) Fatal("cannot resume from " + resume_path_ + ": " + rest.status().message());
    resume_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const std::vector<std::string>& unclaimed = *rest;
    if (!unclaimed.empty()) {
      Fatal("cannot resume from " + resume_path_ + ": the image holds " + CapList(unclaimed) +
            " but the program " + (unclaimed.size() == 1 ? "never declared it" : "declared none of them") +
            " before its first safepoint");
    }
    const bool streamed = resume_->streamed();
    resume_.reset();
    char buf[192];
    std::snprintf(buf, sizeof buf, " (checkpoint %llu): %zu variables, %.1f MiB, read in %.3f s%s",
                  static_cast<unsigned long long>(progress_.seq), claimed_.size(),
                  static_cast<double>(resume_bytes_) / (1 << 20), resume_seconds_,
                  streamed ? " as it arrived" : "");
    Say("resumed from " + resume_path_ + buf);
  }

  // --- checkpoint --------------------------------------------------------------
  Status Publish(bool exited) {
    lib::RegistrationState r;
    r.generation = written_;
    r.failures = failures_;
    r.last_image = last_image_.empty() ? "" : env_->AbsolutePath(last_image_);
    r.last_error = last_error_;
    r.exited = exited;
    r.held = held_;
    r.cwd = env_->AbsolutePath(".");
    return registration_->Publish(r);
  }

  // Writes the image under no name (or a random temporary one) and links it
  // as NAME.SEQ.ckpt only if no other writer (a second run of the program,
  // the same image resumed twice) has taken SEQ meanwhile; then it tries the
  // next number. Nothing is ever replaced.
  Status WriteImage(std::string* out_path) {
    RETURN_IF_ERROR(env_->CreateDirs(opt_.dir));
    if (!swept_) {  // temporary files left by killed writers: once per run
      env_->RemoveStaleTempFiles(opt_.dir, opt_.name + ".");
      swept_ = true;
    }
    std::uint64_t taken = progress_.seq;
    for (int attempt = 0; attempt < kCommitAttempts; ++attempt) {
      std::uint64_t seq = std::max(taken, lib::LatestImageSeq(env_, opt_.dir, opt_.name)) + 1;
      std::string file = lib::ImageFileName(opt_.name, seq);
      std::string final_path = platform::JoinPath(opt_.dir, file);
      ASSIGN_OR_RETURN(auto tmp, env_->NewTempFile(opt_.dir, file, opt_.image_mode));
      RETURN_IF_ERROR(WriteImage(tmp.get(), seq));
      RETURN_IF_ERROR(tmp->Sync());
      ASSIGN_OR_RETURN(bool committed, tmp->Commit(final_path, /*replace=*/false));
      if (!committed) {
        Say("another process wrote " + final_path +
            " at the same time; this checkpoint takes the next number");
        taken = seq;
        continue;
      }
      RETURN_IF_ERROR(env_->SyncDir(opt_.dir));
      progress_.seq = seq;
      *out_path = final_path;
      lib::PruneImages(env_, opt_.dir, opt_.name, opt_.keep);
      return Status::Ok();
    }
    return IoError("other processes wrote images of " + opt_.name + " in " + opt_.dir +
                   " under every number tried (up to " + std::to_string(taken) +
                   ") at the same time; this checkpoint was not written");
  }

  // A hold's image goes into a migration's connection when its ticket asks
  // for that (lib/hold.h; *out_path then stays empty), else into a file.
  Status WriteHeldImage(std::string* out_path) {
    std::unique_ptr<lib::StreamSink> stream;
    if (registration_) {
      ASSIGN_OR_RETURN(stream, lib::TakeStreamTicket(env_, registration_->path(), env_->ProcessId()));
    }
    if (!stream) return WriteImage(out_path);
    std::uint64_t seq = std::max(progress_.seq, lib::LatestImageSeq(env_, opt_.dir, opt_.name)) + 1;
    RETURN_IF_ERROR(WriteImage(stream.get(), seq));
    return stream->Finish();
  }

  Status WriteImage(image::Sink* sink, std::uint64_t seq) {
    image::WriterOptions wo;
    wo.codec = codec_;
    wo.level = opt_.level;
    image::ImageWriter w(sink, image::ImageKind::kProgram, wo);
    RETURN_IF_ERROR(w.Begin());
    lib::Meta meta = lib::ProducerMeta(env_);
    meta.Set("ckpt.version", kVersion);
    meta.Set("program.name", opt_.name);
    meta.Set("program.path", program_path_);
    std::string args;
    for (std::size_t i = 0; i < program_args_.size(); ++i) {
      if (i) args.push_back('\0');
      args += program_args_[i];
    }
    meta.Set("program.args", args);
    meta.Set("program.argc", std::to_string(program_args_.size()));
    meta.Set("image.seq", std::to_string(seq));
    meta.Set("image.codec", std::string(image::CodecName(codec_)));
    meta.Set("image.solo_group", group_ && !group_->coordinated() ? "1" : "0");
    if (resumed_ || progress_.resumes > 0) meta.Set("resumed.from", resume_path_);
    RETURN_IF_ERROR(
        w.BeginSection(lib::kSectionMeta, "meta", "", image::kSectionRequired, image::CodecId::kNone));
    RETURN_IF_ERROR(w.Write(lib::EncodeMeta(meta)));
    RETURN_IF_ERROR(w.EndSection());
    lib::Progress p = progress_;
    p.seq = seq;
    p.stages_done.assign(stages_done_.begin(), stages_done_.end());
    RETURN_IF_ERROR(w.BeginSection(lib::kSectionProgress, "progress", "", image::kSectionRequired,
                                   image::CodecId::kNone));
    RETURN_IF_ERROR(w.Write(lib::EncodeProgress(p)));
    RETURN_IF_ERROR(w.EndSection());
    for (const VarEntry& e : vars_) {
      RETURN_IF_ERROR(w.BeginSection(lib::kSectionVar, e.name, e.desc.ToString()));
      lib::SectionWriter sw(&w);
      e.var->Save(sw);
      RETURN_IF_ERROR(sw.Finish().WithContext("variable '" + e.name + "'"));
      RETURN_IF_ERROR(w.EndSection());
    }
    if (group_ && !group_->coordinated()) RETURN_IF_ERROR(group_->WriteSoloSections(&w));
    return w.Finish();
  }

  void MakeGroup() {
    GroupHooks h;
    h.pending = pending_;
    h.bit = kBitGroup;
    h.write_image = [this](image::Sink* sink, std::uint64_t seq) {
      CloseRegistration("the first checkpoint");
      if (resume_) FinishResume();
      progress_.seq = seq;
      return WriteImage(sink, seq);
    };
    h.exit_checkpointed = [this] {
      Say("stopping after the group checkpoint, as asked (exit status " + std::to_string(kExitCheckpointed) +
          ")");
      std::fflush(stdout);
      std::fflush(stderr);
      Stop();
      std::exit(kExitCheckpointed);
    };
    h.say = [this](const std::string& m) { Say(m); };
    h.fatal = [this](const std::string& m) { Fatal(m); };
    h.coordinator_gone = [](const std::string& m) {
      std::fflush(stdout);
      std::fprintf(stderr, "ckpt: error: %s; this member stops (exit status %d)\n", m.c_str(),
                   detail::kExitCoordinatorGone);
      std::fflush(stderr);
      std::_Exit(detail::kExitCoordinatorGone);
    };
    if (resume_ && !GroupMember::InGroupEnvironment(env_)) h.solo_resume = resume_path_;
    group_ = std::make_unique<GroupMember>(env_, std::move(h), program_path_, program_args_);
    group_api_.reset(new Group(group_.get()));
  }

  // A group of one removes its objects when the process stops after a checkpoint.
  void ReleaseSoloGroup() {
    if (group_ && !group_->coordinated()) {
      group_api_.reset();
      group_.reset();
    }
  }

  // `asked_outside`: a `ckpt checkpoint` request is among those served, so
  // after a checkpoint-and-exit the registration stays for it to read.
  Event DoCheckpoint(bool exit_after, bool asked_outside = false, bool hold = false) {
    auto t0 = std::chrono::steady_clock::now();
    std::string path;
    Status st = group_ && group_->locks_held() != 0
                    ? FailedPrecondition(
                          "the program holds a group mutex; it can be checkpointed only "
                          "outside its critical sections")
                    : (hold ? WriteHeldImage(&path) : WriteImage(&path));
    if (!st.ok()) {
      ++failures_;
      last_error_ = st.message();
      Say("checkpoint failed (the previous image is untouched): " + st.message());
      if (registration_) Publish(false).IgnoreError();
      return Event::kFailed;
    }
    ++written_;
    if (!path.empty()) last_image_ = path;
    last_error_.clear();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    char buf[64];
    std::snprintf(buf, sizeof buf, " in %.3f s", secs);
    Say(path.empty() ? std::string("checkpoint streamed into the migration's connection") + buf
                     : "checkpoint " + std::to_string(progress_.seq) + " written to " + path + buf);
    if (exit_after) {
      if (registration_ && asked_outside && Publish(true).ok()) registration_->KeepAfterExit();
      Say("stopping after the checkpoint, as asked (exit status " + std::to_string(kExitCheckpointed) + ")");
      std::fflush(stdout);
      std::fflush(stderr);
      Stop();  // removes the registration unless kept above
      ReleaseSoloGroup();
      std::exit(kExitCheckpointed);
    }
    held_ = hold;  // published with the image, in one step
    if (registration_) Publish(false).IgnoreError();
    if (hold) Hold();
    return Event::kCheckpointed;
  }

  // Inside the safepoint after a checkpoint-and-hold: waits for the decision
  // (lib/hold.h), touching nothing of the program's state.
  void Hold() {
    std::string note;
    lib::HoldDecision d = lib::WaitForHoldDecision(env_, pending_, hold_timeout_, &note);
    held_ = false;
    if (d == lib::HoldDecision::kExit) {
      if (registration_ && Publish(true).ok()) registration_->KeepAfterExit();
      Say("stopping after the held checkpoint, as decided (exit status " + std::to_string(kExitCheckpointed) +
          ")");
      std::fflush(stdout);
      std::fflush(stderr);
      Stop();
      ReleaseSoloGroup();
      std::exit(kExitCheckpointed);
    }
    // Not behind --ckpt-quiet: the migration failed somewhere.
    if (!note.empty()) std::fprintf(stderr, "ckpt: %s\n", note.c_str());
    if (registration_) Publish(false).IgnoreError();
  }

  // The target side of a migration, once, at the first safepoint (after the
  // resume is complete) or the first checkpoint: runs on only after 'g'.
  void MaybeHandoff() {
    if (!handoff_.requested) return;
    handoff_.requested = false;
    Status st = lib::RunHandoff(handoff_, env_->ProcessId(), hold_timeout_);
    if (st.ok()) return;
    std::fflush(stdout);
    std::fprintf(
        stderr,
        "ckpt: error: migration handoff aborted: %s; this copy stops without running (exit status %d)\n",
        st.message().c_str(), kExitHandoffAborted);
    std::fflush(stderr);
    Stop();  // removes the registration
    ReleaseSoloGroup();
    std::exit(kExitHandoffAborted);
  }

  Event Slow() {
    if (RefuseForeignThread("safepoint()")) return Event::kFailed;
    Event result = Event::kNone;
    int p = pending_->load(std::memory_order_relaxed);
    if (p & kBitFirst) {
      pending_->fetch_and(~kBitFirst, std::memory_order_relaxed);
      CloseRegistration("the first safepoint");
    }
    if (p & kBitResumed) {
      pending_->fetch_and(~kBitResumed, std::memory_order_relaxed);
      if (resume_) FinishResume();
      progress_.resumes += 1;
      result = Event::kResumed;
    }
    MaybeHandoff();
    if (p & kBitCount) {
      ++safepoints_;
      if (opt_.at != 0 && safepoints_ == opt_.at)
        pending_->fetch_or(kBitCheckpoint, std::memory_order_relaxed);
      if (opt_.stop_at != 0 && safepoints_ == opt_.stop_at)
        pending_->fetch_or(kBitCheckpoint | kBitExit, std::memory_order_relaxed);
      if (safepoints_ >= opt_.at && safepoints_ >= opt_.stop_at)
        pending_->fetch_and(~kBitCount, std::memory_order_relaxed);
    }
    if ((p & kBitGroup) && group_) {
      Event e = group_->AtSafepoint();
      if (e != Event::kNone && (e == Event::kFailed || result == Event::kNone)) result = e;
    }
    int req =
        pending_->fetch_and(~(kBitCheckpoint | kBitExit | kBitOutside | kBitHold), std::memory_order_relaxed);
    // A decision means something only to a hold (a release sent after the
    // hold request, before this safepoint, cancels it: Hold() sees it at once).
    if ((req & (kBitRelease | kBitReleaseExit)) && !(req & kBitHold))
      pending_->fetch_and(~(kBitRelease | kBitReleaseExit), std::memory_order_relaxed);
    if ((req & kBitHold) && group_ && group_->coordinated()) {
      ++failures_;
      last_error_ =
          "checkpoint-and-hold refused: this program is a member of a group that a coordinator runs; "
          "a group moves as a whole (ckpt checkpoint GROUP)";
      Say("error: " + last_error_);
      if (registration_) Publish(false).IgnoreError();
      if (result == Event::kNone) result = Event::kFailed;
    } else if ((req & (kBitCheckpoint | kBitExit)) && group_ && group_->coordinated()) {
      // A member's own trigger: the whole group checkpoints, this member included.
      Event e = group_->AskCheckpoint((req & kBitExit) != 0);
      if (e != Event::kNone && (e == Event::kFailed || result == Event::kNone)) result = e;
    } else if ((req & (kBitCheckpoint | kBitExit)) && group_ && group_->locks_held() != 0) {
      // A group of one inside a critical section: served at the next safepoint outside it.
      pending_->fetch_or(req & (kBitCheckpoint | kBitExit | kBitOutside | kBitHold),
                         std::memory_order_relaxed);
    } else if (req & (kBitCheckpoint | kBitExit)) {
      if (resume_) FinishResume();
      // With an exit request among those served, the exit wins over a hold.
      bool exit = (req & kBitExit) != 0;
      Event e = DoCheckpoint(exit, (req & kBitOutside) != 0, (req & kBitHold) != 0 && !exit);
      if (e == Event::kFailed || result == Event::kNone) result = e;
    }
    return result;
  }
};

}  // namespace detail

Session::Session(int& argc, char** argv) : impl_(std::make_unique<detail::SessionImpl>(this, &pending_)) {
  lib::ApplyEnvOptions(impl_->env_, &impl_->opt_);
  lib::ParseOptionArgs(argc, argv, &impl_->opt_);
  impl_->Start(argc, argv);
}

Session::Session(Options options, int argc, char** argv)
    : impl_(std::make_unique<detail::SessionImpl>(this, &pending_)) {
  impl_->opt_ = std::move(options);
  impl_->Start(argc, argv);
}

Session::~Session() {
  impl_->Stop();
}

void Session::Register(std::string_view name, std::unique_ptr<detail::VarBase> var) {
  if (TryRegister(name, std::move(var)) != detail::Refusal::kNone) impl_->Fatal(impl_->LastError());
}

detail::Refusal Session::TryRegister(std::string_view name, std::unique_ptr<detail::VarBase> var) {
  using detail::Refusal;
  std::string n(name);
  auto refuse = [&](Refusal r, std::string why) {
    impl_->SetLastError(std::move(why));
    return r;
  };
  if (n.empty()) return refuse(Refusal::kInvalid, "a variable needs a name");
  if (impl_->registration_closed_by_ != nullptr) {
    return refuse(Refusal::kLate, "variable '" + n + "' is registered after " +
                                      impl_->registration_closed_by_ +
                                      ": register every variable before the first safepoint() or "
                                      "checkpoint() (a resumed run could never restore it)");
  }
  if (!impl_->var_names_.insert(n).second)
    return refuse(Refusal::kDuplicate, "variable '" + n + "' is registered twice");
  detail::VarEntry e{n, std::move(var), {}};
  e.desc = e.var->Describe();
  impl_->vars_.push_back(std::move(e));
  if (impl_->resume_) impl_->LoadVar(impl_->vars_.back());
  return Refusal::kNone;
}

void Session::SetLastError(std::string why) {
  impl_->SetLastError(std::move(why));
}

bool Session::StageEnter(std::string_view name) {
  auto& st = impl_->stage_stack_;
  std::string path = st.empty() ? std::string(name) : st.back() + "/" + std::string(name);
  if (impl_->stages_done_.count(path)) return false;
  st.push_back(std::move(path));
  return true;
}

bool Session::StageLeave(bool completed) {
  auto& st = impl_->stage_stack_;
  if (st.empty()) return false;
  if (completed) impl_->stages_done_.insert(st.back());
  st.pop_back();
  return true;
}

Event Session::SafepointSlow() {
  return impl_->Slow();
}

void Session::RethrowPending() {
  std::exception_ptr e = impl_->parked_exception_;
  impl_->parked_exception_ = nullptr;
  if (e) std::rethrow_exception(e);
  throw Error("ckpt: internal error: safepoint reported an exception but none was parked");
}

namespace detail {
// Called by the safepoint trampoline: exceptions must not unwind through it.
long SafepointEntry(Session* s) noexcept {
  try {
    return static_cast<long>(s->SafepointSlow());
  } catch (...) {
    s->impl_->parked_exception_ = std::current_exception();
    return -1;
  }
}
}  // namespace detail

Group& Session::group() {
  if (!impl_->group_) impl_->MakeGroup();
  return *impl_->group_api_;
}

Event Session::checkpoint() {
  if (impl_->RefuseForeignThread("checkpoint()")) return Event::kFailed;
  impl_->CloseRegistration("the first checkpoint");
  if (impl_->resume_) impl_->FinishResume();
  impl_->MaybeHandoff();
  return impl_->DoCheckpoint(false);
}

void Session::request_checkpoint(bool exit_after) {
  pending_.fetch_or(kBitCheckpoint | (exit_after ? kBitExit : 0), std::memory_order_relaxed);
}

bool Session::resumed() const {
  return impl_->resumed_;
}
std::uint64_t Session::checkpoints_written() const {
  return impl_->written_;
}
const std::string& Session::last_image() const {
  return impl_->last_image_;
}
const std::string& Session::last_error() const {
  return impl_->LastError();
}
const Options& Session::options() const {
  return impl_->opt_;
}

}  // namespace ckpt
