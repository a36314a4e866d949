// ckpt restore: a fresh process (a fork of ckpt, with the image's PID) sets
// up its descriptors, cwd, limits and handlers itself, then stops; ckpt
// replaces its address space by injected system calls, fills memory,
// recreates threads, loads registers and lets it run. Any failure kills it.
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <thread>

#include "engine/engine.h"
#include "engine/files.h"
#include "engine/mm.h"
#include "engine/pagemap.h"
#include "engine/proc.h"
#include "engine/ptrace.h"
#include "engine/signals.h"
#include "engine/task.h"
#include "engine/threads.h"
#include "engine/timers.h"
#include "engine/vdso.h"
#include "platform/env.h"
#include "platform/posix_util.h"

namespace ckpt::engine {

using platform::PosixError;

namespace {

std::int64_t NowNs() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Reports a failure of the restore child through the status pipe and exits.
[[noreturn]] void ChildFail(int pipe_fd, const std::string& what, int err) {
  std::string m = what + ": " + std::strerror(err);
  ssize_t n = ::write(pipe_fd, m.data(), m.size());
  (void)n;
  ::_exit(1);
}

[[noreturn]] void ChildMain(const ProcessModel& m, const FdPlan& plan, int status_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  sigset_t all;
  sigfillset(&all);
  ::sigprocmask(SIG_BLOCK, &all, nullptr);
  const char* what = nullptr;
  int keep = status_fd;
  if (int e = ChildApplyFds(plan.moves, &keep, &what); e != 0) ChildFail(keep, what, e);
  std::string step, warnings;
  if (int e = ChildSetupTask(m.core, &step, &warnings); e != 0) ChildFail(keep, step, e);
  int bad_sig = 0;
  if (int e = ChildInstallSigactions(m.signals, &bad_sig); e != 0) {
    ChildFail(keep, "rt_sigaction(" + std::to_string(bad_sig) + ")", e);
  }
  std::string ok = "OK\n" + warnings;
  ssize_t n = ::write(keep, ok.data(), ok.size());
  (void)n;
  ::close(keep);
  for (;;) ::pause();
}

// The half-built process: killed unless the restore completes.
class ChildGuard {
 public:
  explicit ChildGuard(pid_t pid) : pid_(pid) {}
  ~ChildGuard() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status;
    while (::waitpid(pid_, &status, __WALL) == -1 && errno == EINTR) {
    }
  }
  void Release() { pid_ = -1; }

 private:
  pid_t pid_;
};

Result<std::string> DescribePidUser(pid_t pid) {
  auto stat = ReadStat(pid);
  auto comm = ReadProcFile(pid, "comm");
  std::string c = comm.ok() ? *comm : "?";
  if (!c.empty() && c.back() == '\n') c.pop_back();
  std::string state = stat.ok() && !stat->empty() ? (*stat)[0] : "?";
  return "'" + c + "' (state " + state + ")";
}

// clone3 with the image's PID; waits a while for a zombie holding it to be reaped.
Result<pid_t> CloneWithPid(pid_t want, int extra_flags, int status_fd, const ProcessModel& m,
                           const FdPlan& plan) {
  std::int64_t deadline = NowNs() + 5000000000LL;
  while (true) {
    struct clone_args ca;
    std::memset(&ca, 0, sizeof ca);
    std::int32_t tid = want;
    ca.flags = static_cast<std::uint64_t>(extra_flags);
    ca.exit_signal = SIGCHLD;
    ca.set_tid = reinterpret_cast<std::uint64_t>(&tid);
    ca.set_tid_size = 1;
    long r = ::syscall(SYS_clone3, &ca, sizeof ca);
    if (r == 0) ChildMain(m, plan, status_fd);
    if (r > 0) return static_cast<pid_t>(r);
    int e = errno;
    if (e == EEXIST) {
      auto stat = ReadStat(want);
      bool zombie = stat.ok() && !stat->empty() && (*stat)[0] == "Z";
      if ((zombie || !stat.ok()) && NowNs() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      ASSIGN_OR_RETURN(std::string who, DescribePidUser(want));
      return Status(Code::kIoError, "PID " + std::to_string(want) + " is in use by " + who +
                                        "; stop that process or restore with --pidns");
    }
    if (e == EINVAL) {
      return FailedPrecondition("PID " + std::to_string(want) +
                                " cannot be created here (above pid_max?); restore "
                                "with --pidns");
    }
    if (e == EPERM) return PosixError("clone3 with set_tid (needs CAP_CHECKPOINT_RESTORE)", "", e);
    return PosixError("clone3", "PID " + std::to_string(want), e);
  }
}

// Picks an address for the gadget area: free in the image and in the child.
std::uint64_t PickGadgetArea(const ProcessModel& m, const std::vector<MapsEntry>& child) {
  for (std::uint64_t cand = 0x100000000ull; cand < 0x7f0000000000ull; cand += 0x10000000ull) {
    std::uint64_t end = cand + kGadgetAreaSize;
    bool clash = false;
    for (const auto& v : m.vmas) clash = clash || (cand < v.end + 0x100000 && v.start < end + 0x100000);
    for (const auto& e : child) clash = clash || (cand < e.end && e.start < end);
    if (!clash) return cand;
  }
  return 0;
}

Status ReadChildStatus(int fd, std::string* warnings) {
  std::string msg;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    msg.append(buf, static_cast<std::size_t>(n));
  }
  if (msg.compare(0, 3, "OK\n") != 0) {
    return FailedPrecondition("restore process set-up failed: " + (msg.empty() ? "it died" : msg));
  }
  *warnings = msg.substr(3);
  return Status::Ok();
}

}  // namespace

Result<RestoreStats> Restore(const RestoreOptions& o) {
  RestoreStats stats;
  std::int64_t t0 = NowNs();
  platform::Env* env = platform::Env::Default();
  std::string path = platform::JoinPath(o.dir, kImageFileName);
  if (!env->FileExists(path)) return NotFound("no process image " + path);
  ASSIGN_OR_RETURN(auto src, env->NewRandomAccessFile(path));
  ASSIGN_OR_RETURN(auto reader, image::ImageReader::Open(std::move(src)));
  ASSIGN_OR_RETURN(ProcessModel m, ReadModel(*reader));
  stats.threads = static_cast<int>(m.threads.size());
  stats.pages = PagemapPages(m.pagemap);

  // Everything the child needs is opened here, where errors are easy to report.
  FdPlan plan;
  RETURN_IF_ERROR(PrepareFds(m, *reader, &plan));
  int base = 0;
  for (const auto& f : m.fds) base = std::max(base, f.fd + 1);
  std::vector<int> file_fds;
  int exe_fd = -1;
  RETURN_IF_ERROR(PrepareMapFiles(m, base + 16, &plan, &file_fds, &exe_fd));
  int sp[2];
  if (::pipe2(sp, O_CLOEXEC) != 0) return PosixError("pipe2", "", errno);

  int ns_flags = 0;
  pid_t init_pid = -1;
  if (o.new_pidns) {
    if (m.core.pid == 1) return NotSupported("the dumped process was PID 1 of its namespace");
    ns_flags = 0;  // handled below by entering the namespace of a fresh init
    ASSIGN_OR_RETURN(init_pid, [&]() -> Result<pid_t> {
      struct clone_args ca;
      std::memset(&ca, 0, sizeof ca);
      ca.flags = CLONE_NEWPID;
      ca.exit_signal = 0;
      long r = ::syscall(SYS_clone3, &ca, sizeof ca);
      if (r < 0) return PosixError("clone3(CLONE_NEWPID)", "", errno);
      if (r == 0) {
        // PID 1 of the new namespace: reap, and leave once alone.
        ::syscall(SYS_close_range, 0u, ~0u, 0u);
        ::signal(SIGCHLD, SIG_DFL);
        for (int idle = 0;;) {
          while (::waitpid(-1, nullptr, WNOHANG) > 0) {
          }
          ::sleep(1);
          if (::kill(-1, 0) != 0 && errno == ESRCH) {
            if (++idle > 2) ::_exit(0);
          } else {
            idle = 0;
          }
        }
      }
      return static_cast<pid_t>(r);
    }());
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, init_pid, 0));
    if (pidfd < 0 || ::setns(pidfd, CLONE_NEWPID) != 0) {
      int e = errno;
      ::kill(init_pid, SIGKILL);
      return PosixError("enter the new PID namespace", "", e);
    }
    ::close(pidfd);
  }
  int own_ns = o.new_pidns ? ::open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC) : -1;
  auto cloned = CloneWithPid(m.core.pid, ns_flags, sp[1], m, plan);
  if (own_ns >= 0) {
    // Back to creating children (and threads: clone refuses CLONE_THREAD
    // across namespaces) in ckpt's own PID namespace.
    if (::setns(own_ns, CLONE_NEWPID) != 0) std::perror("ckpt: setns back to own PID namespace");
    ::close(own_ns);
  }
  ::close(sp[1]);
  if (!cloned.ok()) {
    ::close(sp[0]);
    if (init_pid > 0) ::kill(init_pid, SIGKILL);
    return cloned.status();
  }
  pid_t pid = *cloned;
  stats.pid = pid;
  ChildGuard guard(pid);
  std::string warnings;
  Status cs = ReadChildStatus(sp[0], &warnings);
  ::close(sp[0]);
  plan.CloseAll();
  RETURN_IF_ERROR(cs);
  if (!warnings.empty()) std::fprintf(stderr, "ckpt: warning: %s", warnings.c_str());

  Status st = [&]() -> Status {
    RETURN_IF_ERROR(Seize(pid, PTRACE_O_EXITKILL | PTRACE_O_TRACECLONE));
    RETURN_IF_ERROR(Interrupt(pid));
    while (true) {
      ASSIGN_OR_RETURN(StopInfo s, WaitStop(pid));
      if (s.event == PTRACE_EVENT_STOP) break;
      RETURN_IF_ERROR(Cont(pid, 0));
    }
    ASSIGN_OR_RETURN(std::string xs, GetXstate(pid));
    if (m.core.xsave_size != 0 && xs.size() != m.core.xsave_size) {
      return NotSupported("the image's FPU state is " + std::to_string(m.core.xsave_size) +
                          " bytes of xsave, this CPU uses " + std::to_string(xs.size()));
    }
    Injector inj(pid, arch::BuiltinGadget());
    RETURN_IF_ERROR(inj.Save());
    ASSIGN_OR_RETURN(auto child_maps, ReadMaps(pid, false));
    std::uint64_t area = PickGadgetArea(m, child_maps);
    if (area == 0) return Internal("no free address for the gadget area");
    RETURN_IF_ERROR(
        inj.Call("mmap gadget area", SYS_mmap,
                 {area, kGadgetAreaSize, PROT_READ | PROT_WRITE | PROT_EXEC,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, static_cast<std::uint64_t>(-1), 0})
            .status());
    RETURN_IF_ERROR(WriteMemory(pid, area, arch::kGadget, arch::kGadgetSize));
    inj.set_gadget(area);
    // The set-up guard: the restored process must outlive ckpt.
    RETURN_IF_ERROR(inj.Call("prctl(PR_SET_PDEATHSIG)", SYS_prctl, {PR_SET_PDEATHSIG, 0}).status());
    // ckpt's libc registered rseq for this thread; its area is about to go.
    auto rseq = GetRseq(pid);
    if (rseq.ok() && rseq->ptr != 0) {
      RETURN_IF_ERROR(inj.Call("rseq unregister", SYS_rseq, {rseq->ptr, rseq->len, 1, rseq->sig}).status());
    }
    RETURN_IF_ERROR(ClearAddressSpace(&inj, child_maps, area, area + kGadgetAreaSize));
    ASSIGN_OR_RETURN(auto left, ReadMaps(pid, false));
    const char* force = std::getenv("CKPT_ENGINE_FORCE_VDSO_PROXY");
    ASSIGN_OR_RETURN(VdsoPlan vp, RestoreVdso(m, &inj, pid, left, force != nullptr && *force == '1'));
    stats.vdso_proxy = vp.proxy;
    RETURN_IF_ERROR(CreateVmas(m, &inj, file_fds));
    RETURN_IF_ERROR(RestorePages(m, *reader, pid, &inj, o.progress));
    RETURN_IF_ERROR(FinishVmas(m, &inj));
    // The kernel refuses to replace the exe link while the old executable is
    // mapped; when the restore child already runs the image's executable
    // (the dumped program was ckpt itself, or a fork of the restoring
    // program) there is nothing to replace.
    int set_exe = exe_fd;
    struct stat cur;
    if (m.core.exe_file >= 0 && ::stat(ProcPath(pid, "exe").c_str(), &cur) == 0 &&
        cur.st_ino == m.files[m.core.exe_file].ino && cur.st_dev == m.files[m.core.exe_file].dev) {
      set_exe = -1;
    }
    RETURN_IF_ERROR(RestoreMmLayout(m, &inj, set_exe));
    for (int fd : file_fds) {
      if (fd >= 0) RETURN_IF_ERROR(inj.Call("close", SYS_close, {static_cast<std::uint64_t>(fd)}).status());
    }
    std::vector<pid_t> created;
    RETURN_IF_ERROR(RestoreThreads(m, &inj, &created));
    RETURN_IF_ERROR(RestorePendingSignals(m, &inj, m.core.pid));
    RETURN_IF_ERROR(RestoreTimers(m.core, &inj));
    for (std::size_t i = 1; i < m.threads.size(); ++i) {
      RETURN_IF_ERROR(LoadThreadState(created[i - 1], m.threads[i], m.core.xsave_size));
    }
    RETURN_IF_ERROR(inj.UnmapGadgetArea());
    RETURN_IF_ERROR(LoadThreadState(pid, m.threads[0], m.core.xsave_size));
    for (pid_t t : created) RETURN_IF_ERROR(Detach(t, 0));
    return Detach(pid, 0);
  }();
  if (!st.ok()) {
    if (init_pid > 0) ::kill(init_pid, SIGKILL);
    return st.WithContext("restore of process " + std::to_string(m.core.pid) + " from " + path);
  }
  guard.Release();
  stats.total_ns = NowNs() - t0;
  if (o.on_running) o.on_running(stats);
  if (!o.detach) {
    int status = 0;
    while (::waitpid(pid, &status, 0) == -1 && errno == EINTR) {
    }
    stats.exit_status = status;
  }
  return stats;
}

}  // namespace ckpt::engine
