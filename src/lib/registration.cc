#include "lib/registration.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>

#include "lib/program_image.h"
#include "util/utf8.h"

namespace ckpt::lib {

namespace {

// Registration files to remove if the process exits through std::exit (the
// program's own call, or the library's exits 3 and 75) without running the
// sessions' destructors. Never destroyed: atexit handlers may run after
// static destructors.
struct ExitCleanup {
  std::mutex mu;
  std::set<std::string> paths;
  std::int64_t pid = 0;  // whose they are: a forked child's exit leaves them
};

ExitCleanup& Cleanup() {
  static ExitCleanup* c = new ExitCleanup;
  return *c;
}

void RemoveAtExit() {
  ExitCleanup& c = Cleanup();
  std::lock_guard<std::mutex> lk(c.mu);
  platform::Env* env = platform::Env::Default();
  if (env->ProcessId() == c.pid) {
    for (const auto& p : c.paths) env->RemoveFile(p).IgnoreError();
  }
  c.paths.clear();
}

void WatchAtExit(const std::string& path) {
  static std::once_flag once;
  std::call_once(once, [] { std::atexit(RemoveAtExit); });
  ExitCleanup& c = Cleanup();
  std::lock_guard<std::mutex> lk(c.mu);
  c.paths.insert(path);
  c.pid = platform::Env::Default()->ProcessId();
}

void UnwatchAtExit(const std::string& path) {
  ExitCleanup& c = Cleanup();
  std::lock_guard<std::mutex> lk(c.mu);
  c.paths.erase(path);
}

// The number after "key": in one of our registration files (0 if absent).
std::uint64_t JsonNumber(const std::string& j, const std::string& key) {
  auto p = j.find("\"" + key + "\":");
  if (p == std::string::npos) return 0;
  return std::strtoull(j.c_str() + p + key.size() + 3, nullptr, 10);
}

// The plain string value of "key" (no escapes expected: a platform tag).
std::string JsonString(const std::string& j, const std::string& key) {
  auto p = j.find("\"" + key + "\": \"");
  if (p == std::string::npos) return "";
  p += key.size() + 5;
  auto e = j.find('"', p);
  return e == std::string::npos ? "" : j.substr(p, e - p);
}

}  // namespace

bool SameStartTime(std::uint64_t recorded, std::uint64_t actual) {
  constexpr std::uint64_t kEmulatorSlack = 500;  // clock ticks (5 s at USER_HZ 100)
  return recorded == actual || (actual != 0 && recorded > actual && recorded - actual <= kEmulatorSlack);
}

std::string RegistrationPath(const std::string& runtime_dir, std::int64_t pid) {
  return platform::JoinPath(runtime_dir, std::to_string(pid) + ".json");
}

std::string Registration::PathFor(platform::Env* env, std::int64_t pid) {
  return RegistrationPath(env->RuntimeDir(), pid);
}

void CollectStaleRegistrations(platform::Env* env, const std::string& runtime_dir, std::int64_t except_pid) {
  env->RemoveStaleTempFiles(runtime_dir, "");
  auto list = env->ListDir(runtime_dir);
  if (!list.ok()) return;
  const std::string os = PlatformTag().substr(0, PlatformTag().find('-'));
  for (const auto& e : *list) {
    const std::string& n = e.name;
    if (e.is_dir || n.size() < 6 || n.size() > 25 || n.compare(n.size() - 5, 5, ".json") != 0) continue;
    if (n.find_first_not_of("0123456789") != n.size() - 5) continue;
    std::int64_t pid = std::strtoll(n.c_str(), nullptr, 10);
    if (pid <= 0 || pid == except_pid) continue;
    std::string path = platform::JoinPath(runtime_dir, n);
    auto data = env->ReadPrivateFile(path, Registration::kMaxFileSize);
    if (!data.ok()) continue;  // not ours to judge
    // A Windows program's PID (under Wine, sharing the directory) means
    // nothing to a Linux process, and the other way round.
    std::string platform = JsonString(*data, "platform");
    if (!platform.empty() && platform.substr(0, platform.find('-')) != os) continue;
    bool stale = !env->ProcessAlive(pid);
    if (!stale) {
      std::uint64_t t = JsonNumber(*data, "start_time");
      std::uint64_t now = t != 0 ? env->ProcessStartTime(pid) : 0;
      stale = t != 0 && now != 0 && !SameStartTime(t, now);  // the PID was reused
    }
    if (stale) env->RemoveFile(path).IgnoreError();
  }
}

Registration::Registration(platform::Env* env, std::string program, std::string dir)
    : env_(env), program_(std::move(program)), dir_(env->AbsolutePath(dir)) {
  start_time_ = env_->ProcessStartTime(env_->ProcessId());
  exe_ = env_->ExecutablePath();
}

Registration::~Registration() {
  if (!written_) return;
  UnwatchAtExit(path_);
  // Not in a forked child that ends: the registration is its parent's.
  if (!keep_ && env_->ProcessId() == pid_) env_->RemoveFile(path_).IgnoreError();
}

void Registration::KeepAfterExit() {
  keep_ = true;
  if (written_) UnwatchAtExit(path_);
}

Status Registration::Publish(const RegistrationState& s) {
  if (!checked_) {
    checked_ = true;
    std::string rt = env_->RuntimeDir();
    dir_status_ = env_->SecureRuntimeDir(rt, /*create=*/true);
    if (!dir_status_.ok()) return dir_status_;
    CollectStaleRegistrations(env_, rt, env_->ProcessId());
    pid_ = env_->ProcessId();
    path_ = RegistrationPath(rt, pid_);
  }
  RETURN_IF_ERROR(dir_status_);
  std::string j =
      "{\"pid\": " + std::to_string(env_->ProcessId()) + ", \"program\": " + JsonBytes(program_) +
      ", \"dir\": " + JsonBytes(dir_) + ", \"exe\": " + JsonBytes(exe_) + ", \"platform\": \"" +
      PlatformTag() + "\", \"start_time\": " + std::to_string(start_time_) +
      ", \"exited\": " + (s.exited ? "true" : "false") + ", \"held\": " + (s.held ? "true" : "false") +
      ", \"cwd\": " + JsonBytes(s.cwd) + ", \"generation\": " + std::to_string(s.generation) +
      ", \"failures\": " + std::to_string(s.failures) + ", \"last_image\": " + JsonBytes(s.last_image) +
      ", \"last_error\": " + JsonBytes(s.last_error) + "}\n";
  if (!written_) WatchAtExit(path_);  // before the file exists: no window without cleanup
  Status st = platform::WriteFileAtomic(env_, path_, j, /*durable=*/false);
  if (st.ok()) written_ = true;
  if (!written_) UnwatchAtExit(path_);
  return st;
}

}  // namespace ckpt::lib
