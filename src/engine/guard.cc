// The dump's worker and the ckpt process that started it (guard.h): the
// worker does the dump and tells what it changes; its parent passes signals
// on and repairs what it can if the worker dies without an answer.
#include "engine/guard.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/sem.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <vector>

#include "engine/inject.h"
#include "engine/net_lock.h"
#include "engine/proc.h"
#include "engine/ptrace.h"
#include "engine/sysv.h"
#include "engine/tcp_repair.h"
#include "engine/util.h"
#include "platform/posix_util.h"
#include "util/bytes.h"

namespace ckpt::engine {

namespace {

// The signals a user sends to stop a command.
constexpr int kStopSignals[] = {SIGINT, SIGTERM, SIGHUP};
// Sent to the worker when the ckpt process that started it dies.
constexpr int kFrontDied = SIGUSR2;

std::atomic<int> g_interrupt{0};
volatile sig_atomic_t g_worker = 0;
pid_t g_front = 0;
int g_out = -1;  // in the worker: its end of the pipe to the ckpt process that started it
// In the worker: a pipe that becomes readable at the first interruption
// (DumpInterruptFd, for a handoff that blocks).
int g_intr_read = -1, g_intr_write = -1;

void WorkerHandler(int sig) {
  int none = 0;
  if (g_interrupt.compare_exchange_strong(none, sig) && g_intr_write >= 0) {
    char c = 1;
    ssize_t n = ::write(g_intr_write, &c, 1);  // non-blocking, async-signal-safe
    (void)n;
  }
}

// In the ckpt process the user started: the worker decides what to do.
void FrontHandler(int sig) {
  pid_t w = g_worker;
  if (w > 0) ::kill(w, sig);
}

// Frames from the worker: a type byte, a u32 length, the payload.
constexpr char kProgress = 'P';
constexpr char kResult = 'R';
constexpr char kThread = 'T';     // u32 pid, u32 tid, u64 signal mask, the registers (arch::Regs)
constexpr char kGadget = 'G';     // u32 pid, u64 address (0: gone)
constexpr char kImageIn = 'I';    // the image is in place
constexpr char kKilling = 'K';    // the dumped processes are being killed
constexpr char kImageFd = 'D';    // u32 pid, u32 descriptor of the image in it (~0: closed)
constexpr char kSemValues = 'V';  // u32 semid, then u16 values (none: back as they were)
constexpr char kSemUndo = 'U';    // u32 pid, u32 semid, then i16 adjustments (none: all of pid given back)
constexpr char kSemLast = 'O';    // u32 semid, then u32 last operators (none: they are again)
constexpr char kTcpRepair = 'C';  // u32 pid (-1: all out, 0: and unlocked), u32 fd, the lock's name

// What the worker said it changed: for the repair if it dies.
struct ThreadNote {
  pid_t tid;
  std::uint64_t mask;
  arch::Regs regs;
};

struct Changes {
  std::map<pid_t, std::vector<ThreadNote>> threads;  // pid -> its threads as they were
  std::map<pid_t, std::uint64_t> gadgets;
  std::map<pid_t, int> image_fds;              // the process holds the image open (in-place page copy)
  std::map<int, std::vector<int>> sem_values;  // sets whose values ckpt moved
  std::vector<SemUndo> undo;                   // adjustments taken and not given back
  std::map<int, std::vector<std::int32_t>> last_operators;  // sets ckpt became the last operator of
  std::vector<std::pair<pid_t, int>> repaired;              // TCP sockets in repair mode
  std::string net_lock;                                     // and the table that holds their connections
  bool image_in_place = false;
  bool killing = false;
};

// A note to the front. A small one is dropped if the pipe is full (the
// front is stopped, Ctrl-Z, and could repair nothing anyway); a large one
// is written whole.
void Note(char type, const std::string& payload) {
  if (g_out < 0) return;
  std::string f = Frame(type, payload);
  if (f.size() <= PIPE_BUF) {
    ssize_t n = ::write(g_out, f.data(), f.size());  // all or nothing
    (void)n;
    return;
  }
  ::fcntl(g_out, F_SETFL, 0);
  (void)WriteAll(g_out, f);
  ::fcntl(g_out, F_SETFL, O_NONBLOCK);
}

[[noreturn]] void WorkerMain(int out, const std::function<Result<std::string>(const Progress&)>& work) {
  // Signals to ckpt's process group (Ctrl-C, `timeout -s KILL`, `kill --
  // -PGID`) reach the ckpt process the user started, not this one.
  ::setpgid(0, 0);
  int ip[2];
  if (::pipe2(ip, O_CLOEXEC | O_NONBLOCK) == 0) {
    g_intr_read = ip[0];
    g_intr_write = ip[1];
  }
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = WorkerHandler;
  sa.sa_flags = SA_RESTART;
  sigset_t set;
  sigemptyset(&set);
  for (int s : kStopSignals) {
    ::sigaction(s, &sa, nullptr);
    sigaddset(&set, s);
  }
  ::sigaction(kFrontDied, &sa, nullptr);
  sigaddset(&set, kFrontDied);
  // Writes to a reader that died fail with EPIPE; a write to the terminal
  // from this background group must not stop it (TOSTOP).
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGTTOU, SIG_IGN);
  ::prctl(PR_SET_PDEATHSIG, kFrontDied);
  if (::getppid() != g_front) WorkerHandler(kFrontDied);
  ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
  // Progress is dropped while the pipe is full: never wait for the reader.
  ::fcntl(out, F_SETFL, O_NONBLOCK);
  g_out = out;
  Progress progress = [out](std::uint64_t done, std::uint64_t total) {
    std::string p;
    PutU64(&p, done);
    PutU64(&p, total);
    std::string f = Frame(kProgress, p);
    ssize_t n = ::write(out, f.data(), f.size());  // all or nothing: less than PIPE_BUF
    (void)n;
  };
  Result<std::string> r = work(progress);
  std::string payload(1, r.ok() ? 1 : 0);
  if (r.ok()) {
    payload += *r;
  } else {
    PutU32(&payload, static_cast<std::uint32_t>(r.status().code()));
    payload += r.status().message();
  }
  g_out = -1;
  ::fcntl(out, F_SETFL, 0);
  bool told = WriteAll(out, Frame(kResult, payload));
  if (!told || Interruption() == kFrontDied) {
    // Nobody reads the answer any more: say it here.
    if (r.ok()) {
      std::fprintf(stderr, "ckpt: %s after the image was complete; the dump was finished\n",
                   InterruptionText().c_str());
    } else {
      std::fprintf(stderr, "ckpt: error: %s\n", r.status().message().c_str());
    }
  }
  std::fflush(stdout);
  std::fflush(stderr);
  ::_exit(0);
}

// Reads the worker's frames until it closes its end.
Result<std::string> ReadAnswer(int in, const Progress& progress, bool* answered, Changes* changes) {
  std::string buf;
  char tmp[4096];
  Result<std::string> result = Internal("no answer");
  while (true) {
    ssize_t n = ::read(in, tmp, sizeof tmp);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buf.append(tmp, static_cast<std::size_t>(n));
    while (buf.size() >= 5) {
      std::uint32_t len = DecodeU32(reinterpret_cast<const unsigned char*>(buf.data() + 1));
      if (buf.size() < 5 + static_cast<std::size_t>(len)) break;
      std::string payload = buf.substr(5, len);
      char type = buf[0];
      buf.erase(0, 5 + static_cast<std::size_t>(len));
      const auto* u = reinterpret_cast<const unsigned char*>(payload.data());
      if (type == kProgress && payload.size() == 16 && progress) {
        progress(DecodeU64(u), DecodeU64(u + 8));
      } else if (type == kThread && payload.size() == 16 + sizeof(arch::Regs)) {
        ThreadNote t{static_cast<pid_t>(DecodeU32(u + 4)), DecodeU64(u + 8), {}};
        std::memcpy(&t.regs, u + 16, sizeof t.regs);  // same process image: same layout
        changes->threads[static_cast<pid_t>(DecodeU32(u))].push_back(t);
      } else if (type == kGadget && payload.size() == 12) {
        changes->gadgets[static_cast<pid_t>(DecodeU32(u))] = DecodeU64(u + 4);
      } else if (type == kImageIn) {
        changes->image_in_place = true;
      } else if (type == kKilling) {
        changes->killing = true;
      } else if (type == kImageFd && payload.size() == 8) {
        changes->image_fds[static_cast<pid_t>(DecodeU32(u))] = static_cast<int>(DecodeU32(u + 4));
      } else if (type == kSemValues && payload.size() >= 4) {
        int id = static_cast<int>(DecodeU32(u));
        std::vector<int> v;
        for (std::size_t i = 4; i + 2 <= payload.size(); i += 2) v.push_back(DecodeU16(u + i));
        if (v.empty()) changes->sem_values.erase(id);
        if (!v.empty()) changes->sem_values[id] = v;
      } else if (type == kSemLast && payload.size() >= 4) {
        int id = static_cast<int>(DecodeU32(u));
        std::vector<std::int32_t> v;
        for (std::size_t i = 4; i + 4 <= payload.size(); i += 4)
          v.push_back(static_cast<std::int32_t>(DecodeU32(u + i)));
        if (v.empty()) changes->last_operators.erase(id);
        if (!v.empty()) changes->last_operators[id] = v;
      } else if (type == kTcpRepair && payload.size() >= 8) {
        auto pid = static_cast<pid_t>(DecodeU32(u));
        if (pid <= 0) changes->repaired.clear();  // (-1: out of repair mode, the lock kept)
        if (pid > 0) changes->repaired.emplace_back(pid, static_cast<int>(DecodeU32(u + 4)));
        changes->net_lock = pid == 0 ? "" : payload.substr(8);
      } else if (type == kSemUndo && payload.size() >= 8) {
        SemUndo su;
        su.pid = static_cast<std::int32_t>(DecodeU32(u));
        su.semid = static_cast<std::int32_t>(DecodeU32(u + 4));
        for (std::size_t i = 8; i + 2 <= payload.size(); i += 2)
          su.adj.push_back(static_cast<std::int16_t>(DecodeU16(u + i)));
        auto& l = changes->undo;
        if (su.adj.empty()) {
          l.erase(std::remove_if(l.begin(), l.end(),
                                 [&](const SemUndo& x) { return x.pid == su.pid && x.semid == su.semid; }),
                  l.end());
        } else {
          l.push_back(su);
        }
      } else if (type == kResult && !payload.empty()) {
        *answered = true;
        if (payload[0] == 1) {
          result = payload.substr(1);
        } else if (payload.size() >= 5) {
          auto code =
              static_cast<Code>(DecodeU32(reinterpret_cast<const unsigned char*>(payload.data() + 1)));
          result = Status(code == Code::kOk ? Code::kInternal : code, payload.substr(5));
        }
      }
    }
  }
  return result;
}

// Attaches to `tid` (which the dead worker no longer traces) and waits until
// it is stopped; *sig gets a signal it was about to take (given back when
// it is let go).
Status Reattach(pid_t tid, int* sig) {
  Status st;
  for (int i = 0; i < 100; ++i) {  // the kernel may still be detaching it from the worker
    st = Seize(tid, 0);
    if (st.ok() || st.code() == Code::kNotFound) break;
    struct timespec ts = {0, 1000000};
    ::nanosleep(&ts, nullptr);
  }
  RETURN_IF_ERROR(st);
  RETURN_IF_ERROR(Interrupt(tid));
  while (true) {
    ASSIGN_OR_RETURN(StopInfo s, WaitStop(tid));
    if (s.event == PTRACE_EVENT_STOP) break;
    if (s.event == 0 && *sig == 0) *sig = s.signal;
    RETURN_IF_ERROR(Cont(tid, 0));
  }
  // As when the dump stopped it: a semop our interrupt ended runs again.
  arch::Regs r{};
  RETURN_IF_ERROR(GetRegs(tid, &r));
  if (*sig == 0 && arch::RestartInterruptedSemop(&r)) RETURN_IF_ERROR(SetRegs(tid, r));
  return Status::Ok();
}

// Moves every semaphore of `semid` back to `want` (semops without SEM_UNDO:
// SETALL would clear every process's adjustments).
Status SemValuesBack(int semid, const std::vector<int>& want) {
  std::vector<unsigned short> now(want.size());
  if (::semctl(semid, 0, GETALL, now.data()) != 0)
    return platform::PosixError("semctl(GETALL)", "semaphore set " + std::to_string(semid), errno);
  std::vector<int> d(want.size());
  for (std::size_t i = 0; i < want.size(); ++i) d[i] = want[i] - now[i];
  return SemAdd(semid, d);
}

// The worker died before it answered: put back what it said it changed,
// with every thread it had stopped stopped again. Returns what was done,
// for the message.
std::string Repair(const Changes& c) {
  int fixed = 0, gadgets = 0;
  std::string trouble;
  auto problem = [&](const std::string& what, const Status& st) {
    if (!st.ok()) trouble += "; " + what + ": " + st.message();
  };
  struct Held {
    pid_t tid;
    int sig;
    std::uint64_t mask;
  };
  std::map<pid_t, std::vector<Held>> held;
  std::map<pid_t, bool> inside;  // a thread is in the gadget area and stays there
  for (const auto& [pid, threads] : c.threads) {
    std::uint64_t gadget = c.gadgets.count(pid) != 0 ? c.gadgets.at(pid) : 0;
    for (const auto& t : threads) {
      int sig = 0;
      Status st = Reattach(t.tid, &sig);
      if (!st.ok()) {
        if (st.code() != Code::kNotFound) problem("thread " + std::to_string(t.tid), st);
        continue;
      }
      held[pid].push_back({t.tid, sig, t.mask});
      // Let go after a call ckpt ran in it, it spins in the gadget area
      // (`jmp .` after the int3): its own registers back.
      arch::Regs r{};
      if (gadget != 0 && GetRegs(t.tid, &r).ok() && arch::Ip(r) >= gadget &&
          arch::Ip(r) < gadget + kGadgetAreaSize) {
        Status back = SetRegs(t.tid, t.regs);
        problem("thread " + std::to_string(t.tid), back);
        if (!back.ok()) inside[pid] = true;
      }
    }
  }
  // TCP connections out of repair mode, then their packets let through.
  for (const auto& [pid, fd] : c.repaired) {
    auto s = CopyFdOf(pid, fd);
    Status st = s.ok() ? LeaveRepair(*s) : s.status();
    if (s.ok()) ::close(*s);
    problem("TCP connection fd " + std::to_string(fd) + " of process " + std::to_string(pid), st);
  }
  if (!c.net_lock.empty()) problem("network lock", NetUnlock(c.net_lock));
  // Semaphore values ckpt had moved, and SEM_UNDO adjustments it had taken
  // (given back from inside their process, through its gadget area).
  if (!c.sem_values.empty() || !c.undo.empty() || !c.last_operators.empty()) {
    IpcNamespace ns;
    std::vector<pid_t> pids;
    for (const auto& [pid, h] : held) pids.push_back(pid);
    Status in = ns.EnterOf(pids);
    problem("System V", in);
    for (const auto& [id, v] : c.sem_values) {
      if (in.ok()) problem("semaphore set " + std::to_string(id), SemValuesBack(id, v));
    }
    std::vector<SysvMember> members;
    for (const auto& [pid, g] : c.gadgets) {
      if (g != 0 && held.count(pid) != 0 && held[pid][0].tid == pid && !inside[pid])
        members.push_back({pid, nullptr, g});
    }
    for (const auto& u : c.undo) {
      bool can = in.ok() && std::any_of(members.begin(), members.end(),
                                        [&](const SysvMember& m) { return m.pid == u.pid; });
      if (!can) trouble += "; the SEM_UNDO adjustments of process " + std::to_string(u.pid) + " are lost";
      if (can) problem("SEM_UNDO of process " + std::to_string(u.pid), PutBackUndo(members, {u}));
    }
    // Each member is the last operator of the semaphores it operated last.
    std::vector<SemSet> sets;
    for (const auto& [id, sempid] : c.last_operators) {
      SemSet s;
      s.id = id;
      s.sempid = sempid;
      sets.push_back(s);
    }
    for (const auto& m : members) {
      if (sets.empty() || !in.ok()) break;
      Injector inj(m.pid, m.gadget);
      Status st = inj.Save();
      if (st.ok()) st = RestoreLastOperator(sets, m.pid, &inj);
      Status rs = inj.Restore();
      problem("last operators of process " + std::to_string(m.pid), st.ok() ? rs : st);
    }
  }
  for (const auto& [pid, threads] : held) {
    std::uint64_t gadget = c.gadgets.count(pid) != 0 ? c.gadgets.at(pid) : 0;
    if (gadget != 0 && !inside[pid] && threads[0].tid == pid) {
      Injector inj(pid, gadget);
      Status st = inj.Save();
      auto fd = c.image_fds.find(pid);
      if (st.ok() && fd != c.image_fds.end() && fd->second >= 0)
        st = inj.Call("close the image", SYS_close, {static_cast<std::uint64_t>(fd->second)}).status();
      if (st.ok()) st = inj.UnmapGadgetArea();
      Status rs = inj.Restore();
      if (st.ok()) st = rs;
      gadgets += st.ok() ? 1 : 0;
      problem("process " + std::to_string(pid), st);
    } else if (gadget != 0) {
      trouble += "; process " + std::to_string(pid) +
                 " was inside a call ckpt ran in it: its gadget area at 0x" + HexAddr(gadget) +
                 " stays mapped";
    }
    for (const auto& h : threads) {
      Status m = SetSigmask(h.tid, h.mask);
      fixed += m.ok() ? 1 : 0;
      problem("thread " + std::to_string(h.tid), m);
      (void)Detach(h.tid, h.sig);
    }
  }
  return "ckpt gave " + std::to_string(fixed) + " threads their signal masks back, unmapped " +
         std::to_string(gadgets) + " gadget areas, put back " + std::to_string(c.sem_values.size()) +
         " semaphore sets and " + std::to_string(c.undo.size()) + " SEM_UNDO adjustments" + trouble;
}

}  // namespace

void NoteFrozenThread(pid_t pid, pid_t tid, std::uint64_t sigmask, const void* regs) {
  std::string p;
  PutU32(&p, static_cast<std::uint32_t>(pid));
  PutU32(&p, static_cast<std::uint32_t>(tid));
  PutU64(&p, sigmask);
  p.append(static_cast<const char*>(regs), sizeof(arch::Regs));
  Note(kThread, p);
}

void NoteGadget(pid_t pid, std::uint64_t gadget) {
  std::string p;
  PutU32(&p, static_cast<std::uint32_t>(pid));
  PutU64(&p, gadget);
  Note(kGadget, p);
}

void NoteImageInPlace() {
  Note(kImageIn, "");
}

void NoteKilling() {
  Note(kKilling, "");
}

void NoteImageFd(pid_t pid, int fd) {
  std::string p;
  PutU32(&p, static_cast<std::uint32_t>(pid));
  PutU32(&p, static_cast<std::uint32_t>(fd));
  Note(kImageFd, p);
}

void NoteSemValues(int semid, const std::vector<int>& values) {
  std::string p;
  PutU32(&p, static_cast<std::uint32_t>(semid));
  for (int v : values) PutU16(&p, static_cast<std::uint16_t>(v));
  Note(kSemValues, p);
}

void NoteSemLastOperators(int semid, const std::vector<std::int32_t>& sempid) {
  std::string p;
  PutU32(&p, static_cast<std::uint32_t>(semid));
  for (std::int32_t v : sempid) PutU32(&p, static_cast<std::uint32_t>(v));
  Note(kSemLast, p);
}

void NoteTcpRepair(pid_t pid, int fd, const std::string& lock) {
  std::string p;
  PutU32(&p, static_cast<std::uint32_t>(pid));
  PutU32(&p, static_cast<std::uint32_t>(fd));
  Note(kTcpRepair, p + lock);
}

void NoteSemUndo(pid_t pid, int semid, const std::vector<std::int16_t>& adj) {
  std::string p;
  PutU32(&p, static_cast<std::uint32_t>(pid));
  PutU32(&p, static_cast<std::uint32_t>(semid));
  for (std::int16_t a : adj) PutU16(&p, static_cast<std::uint16_t>(a));
  Note(kSemUndo, p);
}

int Interruption() {
  return g_interrupt.load();
}

int DumpInterruptFd() {
  return g_intr_read;
}

std::string SignalText(int sig) {
  if (sig == 0) return "";
  if (sig == kFrontDied) return "ckpt (PID " + std::to_string(g_front) + ") was killed";
  const char* n = sigabbrev_np(sig);
  return std::string("interrupted by SIG") + (n != nullptr ? n : std::to_string(sig).c_str());
}

std::string InterruptionText() {
  return SignalText(Interruption());
}

Status CheckInterrupted() {
  if (Interruption() == 0) return Status::Ok();
  return FailedPrecondition(InterruptionText());
}

Result<std::string> RunInWorker(const std::function<Result<std::string>(const Progress&)>& work,
                                const Progress& progress, int* late_signal) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return platform::PosixError("pipe2", "worker pipe", errno);
  sigset_t stop, old;
  sigemptyset(&stop);
  for (int s : kStopSignals) sigaddset(&stop, s);
  ::sigprocmask(SIG_BLOCK, &stop, &old);
  g_front = ::getpid();
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t w = ::fork();
  if (w == 0) {
    ::close(p[0]);
    WorkerMain(p[1], work);
  }
  int fork_errno = errno;
  ::close(p[1]);
  struct sigaction sa, saved[3];
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = FrontHandler;
  sa.sa_flags = SA_RESTART;
  if (w > 0) {
    g_worker = w;
    for (int i = 0; i < 3; ++i) ::sigaction(kStopSignals[i], &sa, &saved[i]);
  }
  ::sigprocmask(SIG_SETMASK, &old, nullptr);
  if (w < 0) {
    ::close(p[0]);
    return platform::PosixError("fork", "the dump worker", fork_errno);
  }
  bool answered = false;
  Changes changes;
  Result<std::string> r = ReadAnswer(p[0], progress, &answered, &changes);
  ::close(p[0]);
  // The worker has closed its end: it is done. No signal is passed on from
  // here (its PID may be reused once it is reaped).
  ::sigprocmask(SIG_BLOCK, &stop, nullptr);
  g_worker = 0;
  int status = 0;
  while (::waitpid(w, &status, 0) == -1 && errno == EINTR) {
  }
  // A signal that came after the worker's answer is taken here rather than
  // ending this process: it says the work was finished anyway.
  struct timespec zero = {0, 0};
  for (int s; (s = ::sigtimedwait(&stop, nullptr, &zero)) > 0;) {
    if (late_signal != nullptr && *late_signal == 0) *late_signal = s;
  }
  for (int i = 0; i < 3; ++i) ::sigaction(kStopSignals[i], &saved[i], nullptr);
  ::sigprocmask(SIG_SETMASK, &old, nullptr);
  if (!answered) {
    // Killed itself (by its PID: signals to ckpt's group do not reach it).
    // The kernel let the processes go as they were; put back what it can,
    // or, if it was killing them after a complete image, finish that.
    if (changes.killing) {
      for (const auto& [pid, threads] : changes.threads) ::kill(pid, SIGKILL);
      return IoError("the worker process " + std::to_string(w) + " of this dump " +
                     DescribeWaitStatus(status) +
                     " while it was killing the dumped processes after the image was complete: ckpt killed "
                     "them (the System V objects they used stay on this host)");
    }
    std::string done = Repair(changes);
    return IoError("the worker process " + std::to_string(w) + " of this dump " + DescribeWaitStatus(status) +
                   " before it finished: " + done + "; " +
                   (changes.image_in_place ? "the image was complete (the processes were not killed)"
                                           : "no image was written (a previous one is unchanged)"));
  }
  return r;
}

}  // namespace ckpt::engine
