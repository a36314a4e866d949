// ckpt check: probes, once, each kernel feature the engine uses.
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "engine/engine.h"
#include "engine/eventfds.h"
#include "engine/incremental.h"
#include "engine/lazy.h"
#include "engine/net_lock.h"
#include "engine/proc.h"
#include "engine/ptrace.h"
#include "engine/sock_options.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace ckpt::engine {

namespace {

// Runs `fn` in a forked child; its exit code 0 means success, else an errno.
int InChild(int (*fn)()) {
  pid_t c = ::fork();
  if (c == 0) ::_exit(fn());
  if (c < 0) return errno;
  int st = 0;
  ::waitpid(c, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

int ProbeMmMap() {
  auto f = ReadStat(::getpid());
  if (!f.ok() || f->size() < 49) return EIO;
  auto v = [&](int n) { return std::strtoull((*f)[n - 3].c_str(), nullptr, 10); };
  std::uint64_t map[13] = {
      v(26), v(27), v(45), v(46), v(47), static_cast<std::uint64_t>(::syscall(SYS_brk, 0)), v(28), v(48),
      v(49), v(50), v(51), 0,     0};
  std::uint32_t tail[2] = {0, static_cast<std::uint32_t>(-1)};
  std::memcpy(&map[12], tail, 8);
  return ::prctl(PR_SET_MM, PR_SET_MM_MAP, map, sizeof map, 0) == 0 ? 0 : errno;
}

std::string ErrText(int e) {
  return e == 0 ? "works" : std::strerror(e);
}

}  // namespace

std::vector<CheckItem> Check() {
  std::vector<CheckItem> out;
  auto add = [&](std::string name, bool ok, bool required, std::string detail) {
    out.push_back({std::move(name), ok, required, std::move(detail)});
  };

  // ptrace: seize, interrupt, registers, xsave, rseq.
  long word = 42;
  pid_t c = ::fork();
  if (c == 0) {
    for (;;) ::pause();
  }
  bool seized = Seize(c, PTRACE_O_EXITKILL).ok() && Interrupt(c).ok() && WaitStop(c).ok();
  add("ptrace-seize", seized, true,
      seized ? "PTRACE_SEIZE/INTERRUPT stop a process" : "cannot trace a child");
  if (seized) {
    auto xs = GetXstate(c);
    add("xsave-regset", xs.ok(), true,
        xs.ok() ? "NT_X86_XSTATE is " + std::to_string(xs->size()) + " bytes" : xs.status().message());
    auto rs = GetRseq(c);
    add("rseq-config", rs.ok(), false,
        rs.ok() ? (rs->ptr != 0 ? "PTRACE_GET_RSEQ_CONFIGURATION works, rseq registered by libc"
                                : "PTRACE_GET_RSEQ_CONFIGURATION works, no rseq in use")
                : rs.status().message());
    long back = 0;
    struct iovec l = {&back, sizeof back}, r = {&word, sizeof word};
    bool vm = ::process_vm_readv(c, &l, 1, &r, 1, 0) == sizeof back && back == 42;
    add("process-vm-readv", vm, true, vm ? "process_vm_readv/writev work" : std::strerror(errno));
  }
  ::kill(c, SIGKILL);
  ::waitpid(c, nullptr, __WALL);

  // pagemap with page frame numbers (zero-page detection).
  {
    void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    static_cast<volatile char*>(p)[0] = 1;
    std::uint64_t e = 0;
    int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    bool ok = fd >= 0 &&
              ::pread(fd, &e, 8, static_cast<off_t>(reinterpret_cast<std::uint64_t>(p) / 4096 * 8)) == 8 &&
              (e >> 63) != 0;
    if (fd >= 0) ::close(fd);
    ::munmap(p, 4096);
    bool pfn = (e & ((1ull << 55) - 1)) != 0;
    add("pagemap", ok, true,
        ok ? (pfn ? "present bits and frame numbers readable"
                  : "present bits only (zero pages are still skipped by content)")
           : "cannot read /proc/self/pagemap");
  }
  {
    void* p = ::mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int e = ::madvise(p, 1 << 20, MADV_POPULATE_WRITE) == 0 ? 0 : errno;
    ::munmap(p, 1 << 20);
    add("madv-populate-write", e == 0, false,
        e == 0 ? "bulk page population at restore" : ErrText(e) + " (restore will be slower)");
  }
  {
    int e = InChild(+[]() -> int {
      struct clone_args ca;
      std::memset(&ca, 0, sizeof ca);
      std::int32_t want = 0;
      for (std::int32_t p = 30000; p > 300; --p) {
        if (::kill(p, 0) != 0 && errno == ESRCH) {
          want = p;
          break;
        }
      }
      ca.exit_signal = SIGCHLD;
      ca.set_tid = reinterpret_cast<std::uint64_t>(&want);
      ca.set_tid_size = 1;
      long r = ::syscall(SYS_clone3, &ca, sizeof ca);
      if (r == 0) ::_exit(0);
      if (r < 0) return errno;
      ::waitpid(static_cast<pid_t>(r), nullptr, 0);
      return r == want ? 0 : EINVAL;
    });
    add("clone3-set-tid", e == 0, true, e == 0 ? "a process can be given its old PID" : ErrText(e));
  }
  {
    int e = InChild(&ProbeMmMap);
    add("prctl-set-mm-map", e == 0, true, e == 0 ? "PR_SET_MM_MAP sets brk, arg/env, auxv, exe" : ErrText(e));
  }
  {
    int e = InChild(+[]() -> int {
      struct clone_args ca;
      std::memset(&ca, 0, sizeof ca);
      ca.flags = CLONE_NEWPID;
      ca.exit_signal = SIGCHLD;
      long r = ::syscall(SYS_clone3, &ca, sizeof ca);
      if (r == 0) ::_exit(0);
      if (r < 0) return errno;
      ::waitpid(static_cast<pid_t>(r), nullptr, 0);
      return 0;
    });
    add("pid-namespace", e == 0, false, e == 0 ? "restore --pidns works" : ErrText(e) + " (no --pidns)");
  }
  {
    int e = ::syscall(SYS_kcmp, ::getpid(), ::getpid(), 0 /* KCMP_FILE */, 0, 0) >= 0 ? 0 : errno;
    add("kcmp", e == 0, false, e == 0 ? "shared open file descriptions are recognised" : ErrText(e));
  }
  {
    auto maps = ReadMaps(::getpid(), false);
    std::string layout;
    if (maps.ok()) {
      for (const auto& m : *maps) {
        if (m.path == "[vdso]" || m.path.compare(0, 5, "[vvar") == 0) {
          layout +=
              (layout.empty() ? "" : ", ") + m.path + " " + std::to_string((m.end - m.start) / 1024) + "K";
        }
      }
    }
    add("vdso", !layout.empty(), false, layout.empty() ? "no vDSO" : layout + " (moved together at restore)");
  }
  {
    // Engine v2: System V objects with exact ids, queues read in place, in a
    // throw-away IPC namespace so nothing of the host's is touched.
    int e = InChild(+[]() -> int {
      if (::unshare(CLONE_NEWIPC) != 0) return errno;
      int fd = ::open("/proc/sys/kernel/msg_next_id", O_WRONLY);
      if (fd < 0) return errno;
      bool w = ::write(fd, "4242", 4) == 4;
      ::close(fd);
      if (!w) return EIO;
      int q = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
      if (q != 4242) return ENOTSUP;
      struct {
        long type;
        char text[8];
      } m = {7, "ckpt"};
      if (::msgsnd(q, &m, 5, 0) != 0) return errno;
      std::memset(&m, 0, sizeof m);
      if (::msgrcv(q, &m, sizeof m.text, 0, IPC_NOWAIT | 040000 /* MSG_COPY */) != 5 || m.type != 7)
        return errno;
      return 0;
    });
    add("sysv-ipc", e == 0, false,
        e == 0 ? "System V ids restored exactly (*_next_id), queues read with MSG_COPY, IPC namespaces"
               : ErrText(e) + " (trees using System V IPC cannot be dumped or restored)");
  }
  {
    std::string failed = ProbeEventFiles();
    add("event-files", failed.empty(), false,
        failed.empty()
            ? "eventfd, signalfd, timerfd (expirations kept) and epoll (watches proved by kcmp) are saved"
            : failed + " (processes with event files cannot be dumped or restored)");
  }
  {
    // Locks are read from fdinfo "lock:" lines and taken again with
    // fcntl/flock; OFD locks need F_OFD_SETLK.
    int e = 0;
    int fd = ::open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    struct flock fl = {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fd < 0 || ::fcntl(fd, F_OFD_SETLK, &fl) != 0) e = errno;
    if (fd >= 0) ::close(fd);
    add("file-locks", e == 0, false,
        e == 0 ? "POSIX, OFD and flock locks are saved and taken again before a restored process runs"
               : ErrText(e) + " (OFD locks cannot be taken again)");
  }
  {
    // Established connections: TCP_REPAIR (CAP_NET_ADMIN) and an nftables
    // table for the network lock, made and removed again.
    int e = 0;
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    if (s < 0 || ::setsockopt(s, IPPROTO_TCP, TCP_REPAIR, &on, sizeof on) != 0) e = errno;
    if (s >= 0) ::close(s);
    std::string lock = NewNetLockName();
    Status st = e != 0 ? Status::Ok() : NetLock(lock, {});
    if (st.ok() && e == 0) st = NetUnlock(lock);
    add("tcp-connections", e == 0 && st.ok(), false,
        e != 0     ? "TCP_REPAIR: " + ErrText(e) + " (established TCP connections cannot be saved)"
        : !st.ok() ? st.message() + " (established TCP connections cannot be saved)"
                   : "established TCP connections move with TCP_REPAIR under an nftables network lock");
  }
  {
    Status st = ProbeDirtyTracking();
    add("dirty-tracking", st.ok(), false,
        st.ok() ? "userfaultfd async write-protect and PAGEMAP_SCAN: incremental dumps (--pre, --parent)"
                : st.message() + " (incremental dumps store every page)");
  }
  {
    std::string why = LazyUnavailable();
    add("lazy-restore", why.empty(), false,
        why.empty() ? "userfaultfd with fork/mremap/remove/unmap events: restore --lazy, live migration's "
                      "target runs before its memory is in"
                    : why + " (restore --lazy and a live migration's target fill every page first)");
  }
  {
    // A dump refuses POSIX timers it cannot save, which only this file shows.
    bool ok = ::access("/proc/self/timers", R_OK) == 0;
    add("proc-timers", ok, true,
        ok ? "/proc/PID/timers shows POSIX timers (a dump refuses them)"
           : "no /proc/PID/timers (CONFIG_CHECKPOINT_RESTORE): dumps cannot tell whether POSIX timers are "
             "used");
  }
  {
    // The dump's own reader of socket state, on a socket of ckpt's with one
    // option set and a classic filter.
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), one = 1;
    sock_filter accept = {0x06, 0, 0, 0xffffffff};  // ret #-1
    sock_fprog prog = {1, &accept};
    SockExtras x;
    Status st = s < 0 ? Internal("no UDP socket") : Status::Ok();
    if (st.ok() && (::setsockopt(s, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) != 0 ||
                    ::setsockopt(s, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0))
      st = Internal(std::string("setsockopt: ") + std::strerror(errno));
    if (st.ok()) st = ReadSockExtras(s, ::getpid(), AF_INET, SOCK_DGRAM, IPPROTO_UDP, &x);
    if (s >= 0) ::close(s);
    bool ok = st.ok() && x.options.size() == 1 && x.filter.size() == sizeof accept;
    add("socket-options", ok, false,
        ok ? "options, multicast groups and classic filters of sockets are read back (SO_GET_FILTER)"
           : (st.ok() ? std::string("a socket's options or filter read back wrong") : st.message()) +
                 " (dumps of processes with such sockets may fail)");
  }
  {
    std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
    std::string s;
    std::getline(f, s);
    add("transparent-hugepages", true, false, s.empty() ? "unknown" : s);
  }
  return out;
}

}  // namespace ckpt::engine
