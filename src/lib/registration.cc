#include "lib/registration.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <type_traits>

#include "lib/program_image.h"
#include "util/json_bytes.h"
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
  std::call_once(once, [] { (void)std::atexit(RemoveAtExit); });
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

// Reads the known keys of a registration object, each only if present; the
// first of the wrong type makes the whole record malformed.
class KeyReader {
 public:
  explicit KeyReader(const nlohmann::json& j) : j_(j) {}
  template <class T>
  void Number(const char* key, T* out) {
    const nlohmann::json* v = Find(key);
    if (v == nullptr) return;
    if constexpr (std::is_floating_point_v<T>) {
      if (!v->is_number()) return Bad(key);
    } else if constexpr (std::is_signed_v<T>) {
      if (!v->is_number_integer()) return Bad(key);
    } else {
      if (!v->is_number_unsigned()) return Bad(key);
    }
    *out = v->get<T>();
  }
  void Bool(const char* key, bool* out) {
    const nlohmann::json* v = Find(key);
    if (v == nullptr) return;
    if (!v->is_boolean()) return Bad(key);
    *out = v->get<bool>();
  }
  void Bytes(const char* key, std::string* out) {
    const nlohmann::json* v = Find(key);
    if (v != nullptr && !JsonToBytes(*v, out)) Bad(key);
  }
  void Words(const char* key, std::vector<std::string>* out) {
    const nlohmann::json* v = Find(key);
    if (v == nullptr) return;
    if (!v->is_array()) return Bad(key);
    for (const auto& w : *v) {
      std::string s;
      if (!JsonToBytes(w, &s)) return Bad(key);
      out->push_back(std::move(s));
    }
  }
  bool has(const char* key) const { return j_.contains(key); }
  const nlohmann::json* Find(const char* key) {
    auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  void Bad(const char* key) {
    if (bad_.empty()) bad_ = key;
  }
  const std::string& bad() const { return bad_; }

 private:
  const nlohmann::json& j_;
  std::string bad_;
};

nlohmann::ordered_json Bytes(std::string_view s) {
  return BytesToJson<nlohmann::ordered_json>(s);
}

nlohmann::ordered_json WordsJson(const std::vector<std::string>& v) {
  nlohmann::ordered_json a = nlohmann::ordered_json::array();
  for (const auto& w : v) a.push_back(Bytes(w));
  return a;
}

}  // namespace

std::string EncodeRegistration(const RegistrationRecord& r) {
  nlohmann::ordered_json j;
  j["pid"] = r.pid;
  j["kind"] = r.kind;
  if (r.is_group()) {
    j["group"] = Bytes(r.group);
    j["id"] = r.id;
    j["port"] = r.port;
    j["secret"] = r.secret_hex;
  } else {
    j["program"] = Bytes(r.program);
    j["exe"] = Bytes(r.exe);
  }
  j["platform"] = r.platform;
  j["start_time"] = r.start_time;
  j["dir"] = Bytes(r.dir);
  j["cwd"] = Bytes(r.cwd);
  j["generation"] = r.generation;
  j["last_image"] = Bytes(r.last_image);
  if (r.is_group()) {
    j["members"] = r.members;
    nlohmann::ordered_json cmds = nlohmann::ordered_json::array();
    for (const auto& m : r.commands)
      cmds.push_back(
          {{"program", Bytes(m.program)}, {"launch", WordsJson(m.launch)}, {"args", WordsJson(m.args)}});
    j["commands"] = std::move(cmds);
    j["every"] = r.every;
    j["timeout"] = r.timeout;
    j["keep"] = r.keep;
    j["codec"] = Bytes(r.codec);
  } else {
    j["exited"] = r.exited;
    j["held"] = r.held;
    j["failures"] = r.failures;
    j["last_error"] = Bytes(r.last_error);
  }
  return j.dump() + "\n";
}

Result<RegistrationRecord> DecodeRegistration(const std::string& path, std::string_view data) {
  auto j = nlohmann::json::parse(data.begin(), data.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Corruption("registration " + path + " is malformed");
  RegistrationRecord r;
  KeyReader k(j);
  k.Number("pid", &r.pid);
  k.Bytes("kind", &r.kind);
  k.Bytes("dir", &r.dir);
  k.Bytes("cwd", &r.cwd);
  k.Number("generation", &r.generation);
  k.Bytes("last_image", &r.last_image);
  k.Bytes("program", &r.program);
  k.Bytes("exe", &r.exe);
  k.Bytes("platform", &r.platform);
  k.Number("start_time", &r.start_time);
  k.Bool("exited", &r.exited);
  k.Bool("held", &r.held);
  r.has_failures = k.has("failures");
  k.Number("failures", &r.failures);
  k.Bytes("last_error", &r.last_error);
  k.Bytes("group", &r.group);
  k.Bytes("id", &r.id);
  k.Number("port", &r.port);
  k.Bytes("secret", &r.secret_hex);
  k.Number("members", &r.members);
  k.Number("every", &r.every);
  k.Number("timeout", &r.timeout);
  k.Number("keep", &r.keep);
  k.Bytes("codec", &r.codec);
  if (const nlohmann::json* c = k.Find("commands")) {
    if (!c->is_array()) k.Bad("commands");
    for (const auto& m : c->is_array() ? *c : nlohmann::json::array()) {
      if (!m.is_object()) {
        k.Bad("commands");
        break;
      }
      KeyReader mk(m);
      MemberCommand mc;
      mk.Bytes("program", &mc.program);
      mk.Words("launch", &mc.launch);
      mk.Words("args", &mc.args);
      if (!mk.bad().empty()) k.Bad("commands");
      r.commands.push_back(std::move(mc));
    }
  }
  if (!k.bad().empty())
    return Corruption("registration " + path + " is malformed (\"" + k.bad() + "\" has the wrong type)");
  if (r.kind != "program" && r.kind != "group")
    return Corruption("registration " + path + " is of unknown kind '" + r.kind + "'");
  return r;
}

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

bool ParseRegistrationName(const std::string& name, std::int64_t* pid) {
  if (name.size() < 6 || name.size() > 24 || name.compare(name.size() - 5, 5, ".json") != 0) return false;
  if (name.find_first_not_of("0123456789") != name.size() - 5) return false;
  *pid = std::strtoll(name.c_str(), nullptr, 10);
  return *pid > 0;
}

Result<RegistrationRecord> ReadRegistrationFile(platform::Env* env, const std::string& path) {
  ASSIGN_OR_RETURN(std::string data, env->ReadPrivateFile(path, Registration::kMaxFileSize));
  return DecodeRegistration(path, data);
}

bool WrittenOnThisOs(const RegistrationRecord& r) {
  auto os = [](const std::string& tag) { return tag.substr(0, tag.find('-')); };
  return r.platform.empty() || os(r.platform) == os(PlatformTag());
}

void CollectStaleRegistrations(platform::Env* env, const std::string& runtime_dir, std::int64_t except_pid) {
  env->RemoveStaleTempFiles(runtime_dir, "");
  auto list = env->ListDir(runtime_dir);
  if (!list.ok()) return;
  for (const auto& e : *list) {
    std::int64_t pid = 0;
    if (e.is_dir || !ParseRegistrationName(e.name, &pid) || pid == except_pid) continue;
    std::string path = platform::JoinPath(runtime_dir, e.name);
    auto reg = ReadRegistrationFile(env, path);
    if (!reg.ok() || !WrittenOnThisOs(*reg)) continue;  // not ours to judge
    bool stale = !env->ProcessAlive(pid);
    if (!stale) {
      std::uint64_t t = reg->start_time;
      std::uint64_t now = t != 0 ? env->ProcessStartTime(pid) : 0;
      stale = t != 0 && now != 0 && !SameStartTime(t, now);  // the PID was reused
    }
    if (stale) env->RemoveFile(path).IgnoreError();
  }
}

Registration::Registration(platform::Env* env, std::string program, const std::string& dir)
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
  RegistrationRecord r;
  r.pid = env_->ProcessId();
  r.program = program_;
  r.dir = dir_;
  r.exe = exe_;
  r.platform = PlatformTag();
  r.start_time = start_time_;
  r.exited = s.exited;
  r.held = s.held;
  r.cwd = s.cwd;
  r.generation = s.generation;
  r.failures = s.failures;
  r.last_image = s.last_image;
  r.last_error = s.last_error;
  const std::string j = EncodeRegistration(r);
  if (!written_) WatchAtExit(path_);  // before the file exists: no window without cleanup
  Status st = platform::WriteFileAtomic(env_, path_, j, /*durable=*/false);
  if (st.ok()) written_ = true;
  if (!written_) UnwatchAtExit(path_);
  return st;
}

}  // namespace ckpt::lib
