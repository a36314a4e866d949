// Receiving a dependent process group: the whole group resumes here from the
// received group image under its own coordinator — `ckpt resume IMAGE`, run
// as a child of this process with its output in files — held until the
// source commits. The coordinator holds it: every member starts with the
// hold epoch's checkpoint request pending (CKPT_GROUP_HOLD), so each parks
// at its first quiescent point (a safepoint, or a blocked ckpt wait, which
// it withdraws: members that need each other cannot deadlock there); when
// all are parked the coordinator reports on the handoff port and waits for
// 'g'. Anything else ends the coordinator, its members and their shared
// objects (docs/migration.md, "Groups").
#include <cctype>
#include <cstdio>
#include <filesystem>

#include "net/receive_internal.h"
#include "platform/env.h"

namespace ckpt::net::internal {

namespace {

namespace fs = std::filesystem;

// The ckpt that coordinates the group: this binary when it is ckpt (`ckpt
// receive`), else the ckpt beside it (the daemon).
Result<std::vector<std::string>> CoordinatorCommand() {
  platform::Env* env = platform::Env::Default();
  std::string exe = env->ExecutablePath();
  std::string base = platform::BaseName(exe);
  for (auto& c : base) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (base == "ckpt" || base == "ckpt.exe") return std::vector<std::string>{exe};
#ifdef _WIN32
  std::string sibling = platform::JoinPath(platform::DirName(exe), "ckpt.exe");
#else
  std::string sibling = platform::JoinPath(platform::DirName(exe), "ckpt");
#endif
  if (!exe.empty() && Runnable(sibling)) return std::vector<std::string>{sibling};
  return NotSupported("a group needs the ckpt command to coordinate it, and there is none beside " +
                      (exe.empty() ? std::string("this program") : exe));
}

Result<std::vector<std::string>> StringList(const nlohmann::json& m, const char* key) {
  std::vector<std::string> out;
  auto it = m.find(key);
  if (it == m.end()) return out;
  if (!it->is_array()) return Corruption(std::string("the source's member '") + key + "' is not a list");
  for (const auto& w : *it) {
    if (!w.is_string())
      return Corruption(std::string("the source's member '") + key + "' holds a non-string");
    out.push_back(w.get<std::string>());
  }
  return out;
}

// `cmd` relative to the group's working directory, as the coordinator will see it.
bool RunnableIn(const std::string& cmd, const std::string& cwd) {
  if (cmd.find('/') != std::string::npos && !fs::path(cmd).is_absolute())
    return Runnable((fs::path(cwd) / cmd).string());
  return Runnable(cmd);
}

// One member's command here: `--program NAME=COMMAND` (or the daemon's map)
// with the recorded arguments, else the command the source's coordinator ran.
Result<std::vector<std::string>> MemberCommand(Session& s, const nlohmann::json& m, std::size_t rank) {
  std::string name = m.value("name", std::string());
  std::string program = m.value("program", std::string());
  ASSIGN_OR_RETURN(auto launch, StringList(m, "launch"));
  ASSIGN_OR_RETURN(auto args, StringList(m, "args"));
  const std::string who =
      "program '" + name + "' (member " + std::to_string(rank) + " of group " + s.name + ")";
  std::vector<std::string> cmd;
  if (auto it = s.cfg.programs.find(name); it != s.cfg.programs.end()) {
    cmd = it->second;
    cmd.insert(cmd.end(), args.begin(), args.end());
  } else if (!s.cfg.run_recorded_programs) {
    return NotFound(who + " is not available on " + s.host +
                    " (the daemon's program map has no entry for it)");
  } else {
    bool posix_path = !program.empty() && program[0] == '/';
    if (launch.empty() || (posix_path && !fs::exists(program))) {
      return NotFound(who + " is not available on " + s.host + " (" +
                      (program.empty() ? std::string("no path recorded") : program + " does not exist") +
                      " here; name it with --program " + name + "=PATH)");
    }
    cmd = launch;
  }
  if (!RunnableIn(cmd[0], s.cwd))
    return NotFound(who + " is not available on " + s.host + ": " + cmd[0] +
                    " is not an executable file here");
  bool repeat_like = cmd[0].size() >= 2 && cmd[0].back() == 'x' &&
                     cmd[0].find_first_not_of("0123456789") == cmd[0].size() - 1;
  if (repeat_like) return InvalidArgument(who + ": a command named '" + cmd[0] + "' cannot be passed on");
  for (const auto& w : cmd) {
    // The spec file that carries the commands to `ckpt resume` quotes each word.
    if (w.find_first_of("\"\n\r") != std::string::npos)
      return InvalidArgument(who + ": the argument '" + w + "' holds a quote or a line break");
  }
  return cmd;
}

std::string SpecText(const std::vector<std::vector<std::string>>& members) {
  std::string o = "# members of a group received for a migration (ckpt receive)\n";
  for (const auto& cmd : members) {
    for (std::size_t i = 0; i < cmd.size(); ++i) o += (i ? " \"" : "\"") + cmd[i] + "\"";
    o += "\n";
  }
  return o;
}

std::string Number(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

}  // namespace

Status PreflightGroup(Session* ss) {
  Session& s = *ss;
  auto members = s.hello.find("members");
  if (members == s.hello.end() || !members->is_array() || members->empty() || members->size() > 1024)
    return Corruption("the source sent no member list for group " + s.name);
  if (s.name.empty() || s.name.find_first_of("/\\\n") != std::string::npos)
    return InvalidArgument("the source named its group '" + s.name + "'");
  RETURN_IF_ERROR(PreflightPlace(&s));
  ASSIGN_OR_RETURN(s.command, CoordinatorCommand());
  s.members.clear();
  for (std::size_t r = 0; r < members->size(); ++r) {
    if (!(*members)[r].is_object())
      return Corruption("the source's member " + std::to_string(r) + " is malformed");
    ASSIGN_OR_RETURN(auto cmd, MemberCommand(s, (*members)[r], r));
    s.members.push_back(std::move(cmd));
  }
  return Status::Ok();
}

Status RunGroup(Session* ss) {
  Session& s = *ss;
  s.step = "resume";
  platform::Env* env = platform::Env::Default();
  // The coordinator reads it at its start; the spool entry goes after the handoff.
  std::string spec = platform::JoinPath(s.dir, "members.spec");
  RETURN_IF_ERROR(platform::WriteFileAtomic(env, spec, SpecText(s.members)));
  std::vector<std::string> argv = s.command;
  argv.insert(argv.end(), {"resume", s.image, "--spec", spec, "--dir", s.ckpt_dir, "--name", s.name});
  argv.insert(argv.end(), {"--timeout", Number(s.hello.value("timeout", 30.0))});
  argv.insert(argv.end(), {"--keep", std::to_string(s.hello.value("keep", 2))});
  argv.insert(argv.end(), {"--codec", s.hello.value("codec", std::string("none"))});
  if (double every = s.hello.value("every", 0.0); every > 0)
    argv.insert(argv.end(), {"--every", Number(every)});
  s.Log("resuming group " + s.name + " (" + std::to_string(s.members.size()) + " members)");
  // The coordinator holds the members (and waits for the go-ahead) as long as this side waits for COMMIT.
  return RunHeld(&s, argv, {"CKPT_HOLD_TIMEOUT=" + std::to_string(s.cfg.commit_timeout_s)});
}

}  // namespace ckpt::net::internal
