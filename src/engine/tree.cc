#include "engine/tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <thread>

#include "engine/guard.h"
#include "engine/proc.h"
#include "engine/util.h"
#include "platform/posix_util.h"

namespace ckpt::engine {

using platform::PosixError;

namespace {

Result<Member> ReadMember(pid_t pid) {
  ASSIGN_OR_RETURN(auto f, ReadStat(pid));
  if (f.size() < 50) return Corruption("short " + ProcPath(pid, "stat"));
  Member m;
  m.pid = pid;
  m.ppid = std::atoi(f[1].c_str());
  m.pgid = std::atoi(f[2].c_str());
  m.sid = std::atoi(f[3].c_str());
  m.zombie = f[0] == "Z";
  m.exit_status = std::atoi(f[49].c_str());  // field 52: exit_code, a wait status
  return m;
}

}  // namespace

Result<FrozenTree> FreezeTree(pid_t root, bool descendants) {
  FrozenTree t;
  ASSIGN_OR_RETURN(auto fp, FrozenProcess::Freeze(root));
  ASSIGN_OR_RETURN(Member rm, ReadMember(root));
  t.members.push_back(rm);
  t.frozen.push_back(std::move(fp));
  for (std::size_t i = 0; descendants && i < t.members.size(); ++i) {
    if (t.members[i].zombie) continue;
    // Member i is stopped: its list of children is final.
    for (pid_t c : ListChildren(t.members[i].pid)) {
      RETURN_IF_ERROR(CheckInterrupted());  // the members frozen so far are let go
      auto m = ReadMember(c);
      if (!m.ok()) continue;  // reaped meanwhile
      if (m->zombie) {
        t.members.push_back(*m);
        t.frozen.push_back(nullptr);
        continue;
      }
      auto f = FrozenProcess::Freeze(c);
      if (!f.ok()) {
        // It may have exited between the listing and the freeze: look again.
        auto again = ReadMember(c);
        if (!again.ok()) continue;
        if (again->zombie) {
          t.members.push_back(*again);
          t.frozen.push_back(nullptr);
          continue;
        }
        return f.status().WithContext("freezing child " + std::to_string(c) + " of " +
                                      std::to_string(t.members[i].pid));
      }
      ASSIGN_OR_RETURN(Member fm, ReadMember(c));
      t.members.push_back(fm);
      t.frozen.push_back(std::move(*f));
    }
  }
  return t;
}

namespace {

// State shared by the code that runs in the forks (a copy in each).
struct SpawnContext {
  const SpawnPlan* plan;
  int status_fd;
  int go_fd;
};

void Say(int fd, const std::string& line) {
  std::string l = line + "\n";
  ssize_t n = ::write(fd, l.data(), l.size());
  (void)n;
}

[[noreturn]] void MemberFail(const SpawnContext& c, pid_t pid, const std::string& what, int err) {
  Say(c.status_fd, "E " + std::to_string(pid) + " " + what + ": " + std::strerror(err));
  ::_exit(1);
}

// True if the process holding `pid` is on its way out: a zombie, or killed
// and still tearing down (`ckpt dump` returns right after its SIGKILL, and
// freeing a large address space takes the kernel ~0.1 s/GiB).
bool PidGoingAway(pid_t pid) {
  auto stat = ReadStat(pid);
  if (!stat.ok()) return true;  // gone meanwhile
  if (stat->empty()) return false;
  const std::string& state = (*stat)[0];
  if (state == "Z" || state == "X" || state == "x") return true;
  constexpr unsigned long kPfExiting = 0x4;
  if (stat->size() > 6 && (std::strtoul((*stat)[6].c_str(), nullptr, 10) & kPfExiting) != 0) return true;
  auto pending = StatusField(pid, "ShdPnd");  // SIGKILL queued for the whole process
  return pending.ok() && !pending->empty() &&
         ((std::strtoull(pending->c_str(), nullptr, 16) >> (SIGKILL - 1)) & 1) != 0;
}

// clone3 with set_tid = `want`; waits a while for a dying process or a
// zombie holding the PID.
long CloneWithPid(pid_t want, std::uint64_t flags) {
  std::int64_t deadline = NowNs() + 5000000000LL;
  while (true) {
    struct clone_args ca;
    std::memset(&ca, 0, sizeof ca);
    std::int32_t tid = want;
    ca.flags = flags;
    ca.exit_signal = SIGCHLD;
    ca.set_tid = reinterpret_cast<std::uint64_t>(&tid);
    ca.set_tid_size = 1;
    long r = ::syscall(SYS_clone3, &ca, sizeof ca);
    if (r >= 0 || errno != EEXIST || NowNs() >= deadline) return r;
    if (!PidGoingAway(want)) return r;  // a live process holds it
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

[[noreturn]] void MemberProc(const SpawnContext& c, std::size_t index);

// Forks member `index` (with its PID) from the calling process; in the
// fork, runs MemberProc. Returns the result of clone3 in the caller.
long ForkMember(const SpawnContext& c, std::size_t index) {
  long r = CloneWithPid(c.plan->members[index].pid, 0);
  if (r == 0) MemberProc(c, index);
  return r;
}

[[noreturn]] void MemberProc(const SpawnContext& c, std::size_t index) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  sigset_t all;
  sigfillset(&all);
  ::sigprocmask(SIG_BLOCK, &all, nullptr);
  const auto& members = c.plan->members;
  const Member& me = members[index];
  pid_t pid = me.pid;
  auto is_member = [&](std::int32_t p) {
    return std::any_of(members.begin(), members.end(), [&](const Member& m) { return m.pid == p; });
  };
  // Leaders first, so that children inherit the session and group (the
  // root too: its children may join its group).
  if (me.sid == me.pid) {
    if (::setsid() < 0) MemberFail(c, pid, "setsid", errno);
  } else if (me.pgid == me.pid) {
    if (::setpgid(0, 0) != 0) MemberFail(c, pid, "setpgid", errno);
  }
  std::vector<std::pair<pid_t, bool>> children;  // (pid, zombie)
  for (std::size_t j = index + 1; j < members.size(); ++j) {
    if (members[j].ppid != me.pid) continue;
    long r = ForkMember(c, j);
    if (r < 0 && errno == EEXIST) {
      Say(c.status_fd, "E " + std::to_string(pid) + ": PID " + std::to_string(members[j].pid) +
                           " (its child) is in use here; stop that process or restore with --pidns");
      ::_exit(1);
    }
    if (r < 0) MemberFail(c, pid, "clone3 child " + std::to_string(members[j].pid), errno);
    children.push_back({static_cast<pid_t>(r), members[j].zombie});
  }
  Say(c.status_fd, "C " + std::to_string(pid));
  char go;
  if (::read(c.go_fd, &go, 1) != 1) ::_exit(1);
  ::close(c.go_fd);
  std::string warn;
  if (index != 0 && me.pgid != me.pid && me.sid != me.pid && is_member(me.pgid) && ::getpgrp() != me.pgid) {
    if (::setpgid(0, me.pgid) != 0) {
      warn = "process " + std::to_string(pid) + " could not join process group " + std::to_string(me.pgid) +
             ": " + std::strerror(errno);
    }
  }
  if (me.zombie) {
    int st = me.exit_status;
    if (WIFSIGNALED(st)) {
      ::signal(WTERMSIG(st), SIG_DFL);
      ::sigprocmask(SIG_UNBLOCK, &all, nullptr);
      ::kill(::getpid(), WTERMSIG(st));
    }
    ::_exit(WEXITSTATUS(st));
  }
  // Zombie children: let them die, then forget the SIGCHLD they sent (the
  // image has the pending signals the process really had).
  for (const auto& [child, zombie] : children) {
    if (!zombie) continue;
    siginfo_t si;
    while (::waitid(P_PID, static_cast<id_t>(child), &si, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
    }
  }
  struct timespec zero = {0, 0};
  while (::sigtimedwait(&all, nullptr, &zero) > 0) {
  }
  if (!warn.empty()) Say(c.status_fd, "W " + std::to_string(pid) + " " + warn);
  c.plan->member_main(index);
  ::_exit(1);
}

// The PIDs, in ckpt's namespace, of the processes below `root` (inclusive),
// keyed by their PID in their own (innermost) namespace.
std::map<pid_t, pid_t> MapNamespacePids(pid_t root) {
  std::map<pid_t, pid_t> out;
  std::vector<pid_t> todo = {root};
  while (!todo.empty()) {
    pid_t p = todo.back();
    todo.pop_back();
    auto ns = StatusField(p, "NSpid");
    if (ns.ok() && !ns->empty()) {
      std::size_t sp = ns->find_last_of(" \t");
      pid_t inner = std::atoi(sp == std::string::npos ? ns->c_str() : ns->c_str() + sp + 1);
      out[inner] = p;
    }
    for (pid_t c : ListChildren(p)) todo.push_back(c);
  }
  return out;
}

}  // namespace

Status SpawnTree(const SpawnPlan& plan, int status_fd, int status_read_fd, SpawnedTree* out) {
  int go[2];
  if (::pipe2(go, O_CLOEXEC) != 0) return PosixError("pipe2", "restore go pipe", errno);
  SpawnContext c{&plan, status_fd, go[0]};
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  long r = ForkMember(c, 0);
  int err = errno;
  ::close(go[0]);
  ::close(status_fd);
  pid_t want = plan.members[0].pid;
  if (r < 0) {
    ::close(go[1]);
    if (err == EEXIST) {
      auto comm = ReadProcFile(want, "comm");
      std::string who = comm.ok() ? *comm : "?\n";
      who.pop_back();
      return Status(Code::kIoError, "PID " + std::to_string(want) + " is in use by '" + who +
                                        "'; stop that process or restore with --pidns");
    }
    if (err == EINVAL) {
      return FailedPrecondition("PID " + std::to_string(want) +
                                " cannot be created here (above pid_max?); restore with --pidns");
    }
    if (err == EPERM) return PosixError("clone3 with set_tid (needs CAP_CHECKPOINT_RESTORE)", "", err);
    return PosixError("clone3", "PID " + std::to_string(want), err);
  }
  out->pids.assign(plan.members.size(), 0);
  out->pids[0] = static_cast<pid_t>(r);
  // Wait for every member to exist.
  std::string buf;
  std::size_t created = 0;
  Status st;
  while (created < plan.members.size() && st.ok()) {
    char tmp[512];
    ssize_t n = ::read(status_read_fd, tmp, sizeof tmp);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      st = FailedPrecondition("restore: a process of the tree died while the tree was being created");
      break;
    }
    buf.append(tmp, static_cast<std::size_t>(n));
    std::size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      if (line.compare(0, 2, "C ") == 0) {
        ++created;
      } else if (line.compare(0, 2, "E ") == 0) {
        st = FailedPrecondition("restore: process " + line.substr(2));
      }
    }
  }
  if (st.ok()) {
    auto map = MapNamespacePids(out->pids[0]);
    for (std::size_t i = 0; i < plan.members.size(); ++i) {
      auto it = map.find(plan.members[i].pid);
      if (it == map.end()) {
        st = Internal("cannot find restored process " + std::to_string(plan.members[i].pid));
        break;
      }
      out->pids[i] = it->second;
    }
  }
  // Buffered lines that followed the "C"s belong to the caller: none can
  // exist yet, as no member goes on before it reads the go byte.
  if (st.ok()) {
    std::string bytes(plan.members.size(), 'g');
    if (::write(go[1], bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
      st = PosixError("write", "restore go pipe", errno);
    }
  }
  ::close(go[1]);
  return st;
}

void SpawnedTree::KillAll() {
  for (pid_t p : pids) {
    if (p > 0) ::kill(p, SIGKILL);
  }
  for (pid_t p : pids) {
    if (p <= 0) continue;
    int status;
    while (::waitpid(p, &status, __WALL) == -1 && errno == EINTR) {
    }
  }
  // Orphans came to ckpt (a child subreaper): reap them too.
  std::int64_t deadline = NowNs() + 2000000000LL;
  while (NowNs() < deadline) {
    pid_t r = ::waitpid(-1, nullptr, __WALL | WNOHANG);
    if (r < 0) break;
    if (r == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pids.clear();
}

SpawnedTree::~SpawnedTree() {
  if (!released_) KillAll();
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

}  // namespace ckpt::engine
