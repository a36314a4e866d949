// ckpt::Session: the variable registry, image writing and
// resuming, stages, triggers (signal/event, timer, safepoint counts) and the
// registration file that `ckpt checkpoint PID` talks to. The work is in
// SessionImpl (session_impl.h); this file starts and stops it.
#include "lib/session_impl.h"

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

thread_local ForeignError t_foreign_error;
std::atomic<std::uint64_t> g_session_serial{0};

void SessionImpl::Start(int argc, char** argv) {
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
        (void)std::fprintf(stderr, "ckpt: warning: `ckpt checkpoint %lld` will not find this process: %s\n",
                           static_cast<long long>(env_->ProcessId()), rs.message().c_str());
        registration_.reset();
      }
    } else {
      Say("warning: cannot listen for checkpoint requests: " + st.message());
    }
  }
  if (opt_.every_seconds > 0) StartTimer();
}

void SessionImpl::StartTimer() {
  auto period = std::chrono::duration<double>(opt_.every_seconds);
  timer_ = std::thread([this, period] {
    std::unique_lock<std::mutex> lk(timer_mu_);
    while (!timer_cv_.wait_for(lk, period, [this] { return timer_stop_; })) {
      pending_->fetch_or(kBitCheckpoint, std::memory_order_relaxed);
    }
  });
}

void SessionImpl::Stop() {
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

}  // namespace detail

using detail::kBitCheckpoint;
using detail::kBitExit;

Session::Session(int& argc, char** argv) : Session(argc, argv, Options{}) {}

Session::Session(int& argc, char** argv, Options defaults)
    : impl_(std::make_unique<detail::SessionImpl>(this, &pending_)) {
  impl_->opt_ = std::move(defaults);
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
