#include "engine/task.h"

#include <errno.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "engine/proc.h"
#include "platform/posix_util.h"

namespace ckpt::engine {

namespace {

// The resource limits from /proc/PID/limits ("%-25s %-20s %-20s %-10s" per
// line, in RLIMIT_* order): for a process of another user, whose limits
// prlimit() reads only with CAP_SYS_RESOURCE.
Status LimitsFromProc(pid_t pid, Core* core) {
  ASSIGN_OR_RETURN(std::string s, ReadProcFile(pid, "limits"));
  std::vector<std::string> lines;
  for (std::size_t p = 0, e; p < s.size(); p = e + 1) {
    e = s.find('\n', p);
    if (e == std::string::npos) e = s.size();
    lines.push_back(s.substr(p, e - p));
  }
  auto value = [](const std::string& line, std::size_t at) {
    std::size_t b = line.find_first_not_of(' ', at);
    std::size_t e = line.find(' ', b);
    std::string v = b == std::string::npos ? "" : line.substr(b, e == std::string::npos ? e : e - b);
    return v == "unlimited" ? static_cast<std::uint64_t>(RLIM_INFINITY)
                            : std::strtoull(v.c_str(), nullptr, 10);
  };
  core->rlimits.clear();
  for (int res = 0; res < RLIM_NLIMITS; ++res) {
    if (static_cast<std::size_t>(res) + 1 >= lines.size() || lines[res + 1].size() < 48) {
      return Corruption("unexpected layout of " + ProcPath(pid, "limits"));
    }
    core->rlimits.push_back({value(lines[res + 1], 26), value(lines[res + 1], 47)});
  }
  return Status::Ok();
}

}  // namespace

Status DumpTask(pid_t pid, FileTable* files, Core* core) {
  core->pid = pid;
  ASSIGN_OR_RETURN(std::string comm, ReadProcFile(pid, "comm"));
  if (!comm.empty() && comm.back() == '\n') comm.pop_back();
  core->comm = comm;
  ASSIGN_OR_RETURN(core->cwd, ReadLink(ProcPath(pid, "cwd")));
  bool cwd_deleted = false;
  StripDeleted(core->cwd, &cwd_deleted);
  if (cwd_deleted)
    return NotSupported("the working directory of process " + std::to_string(pid) + " was deleted");
  ASSIGN_OR_RETURN(std::string um, StatusField(pid, "Umask"));
  core->umask = static_cast<std::uint32_t>(std::strtoul(um.c_str(), nullptr, 8));
  ASSIGN_OR_RETURN(std::string pers, ReadProcFile(pid, "personality"));
  core->personality = static_cast<std::uint32_t>(std::strtoul(pers.c_str(), nullptr, 16));
  for (int res = 0; res < RLIM_NLIMITS; ++res) {
    struct rlimit rl;
    if (::prlimit(pid, static_cast<__rlimit_resource>(res), nullptr, &rl) != 0) {
      if (errno == EPERM) {
        RETURN_IF_ERROR(LimitsFromProc(pid, core));
        break;
      }
      return platform::PosixError("prlimit", "process " + std::to_string(pid), errno);
    }
    core->rlimits.push_back({rl.rlim_cur, rl.rlim_max});
  }
  ASSIGN_OR_RETURN(auto stat, ReadStat(pid));
  if (stat.size() > 3) {
    long pgrp = std::strtol(stat[2].c_str(), nullptr, 10), sid = std::strtol(stat[3].c_str(), nullptr, 10);
    core->leader = (sid == pid ? 1u : 0u) | (pgrp == pid ? 2u : 0u);
  }
  std::string exe_link = ProcPath(pid, "exe");
  auto exe = ReadLink(exe_link);
  struct stat st;
  if (exe.ok() && ::stat(exe_link.c_str(), &st) == 0) core->exe_file = files->Add(*exe, st, true);
  struct utsname u;
  if (::uname(&u) == 0) {
    core->kernel_release = u.release;
    core->host = u.nodename;
  }
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  core->dumped_at_ns = static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  return Status::Ok();
}

int ChildSetupTask(const Core& core, std::string* what, std::string* warnings) {
  if (::chdir(core.cwd.c_str()) != 0) return *what = "chdir " + core.cwd, errno;
  ::umask(static_cast<mode_t>(core.umask));
  if (::personality(core.personality) == -1) return *what = "personality", errno;
  for (std::size_t res = 0; res < core.rlimits.size() && res < RLIM_NLIMITS; ++res) {
    struct rlimit want = {core.rlimits[res].cur, core.rlimits[res].max};
    auto r = static_cast<__rlimit_resource>(res);
    if (::setrlimit(r, &want) == 0) continue;
    struct rlimit now;
    ::getrlimit(r, &now);
    struct rlimit clamped = {std::min(want.rlim_cur, now.rlim_max), now.rlim_max};
    if (::setrlimit(r, &clamped) != 0) return *what = "setrlimit " + std::to_string(res), errno;
    *warnings += "resource limit " + std::to_string(res) + " hard " + std::to_string(want.rlim_max) +
                 " could not be raised (no CAP_SYS_RESOURCE); kept " + std::to_string(now.rlim_max) + "\n";
  }
  ::prctl(PR_SET_NAME, core.comm.c_str(), 0, 0, 0);
  // Leaders lead again; other processes join ckpt's group (their old
  // session and group belong to processes that are not restored).
  if ((core.leader & 1) != 0) {
    if (::getsid(0) != ::getpid() && ::setsid() < 0) return *what = "setsid", errno;
  } else if ((core.leader & 2) != 0 && ::getpgrp() != ::getpid()) {
    if (::setpgid(0, 0) != 0) return *what = "setpgid", errno;
  }
  return 0;
}

}  // namespace ckpt::engine
