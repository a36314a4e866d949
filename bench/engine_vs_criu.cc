// ckpt against upstream CRIU in the same run: the same workload is dumped and
// restored by `ckpt dump/restore` and by `criu dump/restore`, alternating
// which goes first, and the medians are printed beside a raw write of the
// same bytes measured in the same run. Both tools are timed as commands
// (fork + exec included), images in the page cache (ckpt --no-sync; CRIU
// does not fsync). It never fetches or builds CRIU: give the binary's path;
// without one (or when it cannot run) it says so and exits 0.
//   engine_vs_criu --criu PATH [--ckpt PATH] [--workload heap|sysv-pair|event-loop|redis]
//                  [--mib N] [--reps R] [--dir DIR] [--also-in-place] [--leave-running]
// --also-in-place adds ckpt with each process writing its own pages
// (CKPT_ENGINE_DUMP_COPY=in-place)
// as a fourth contender.
// Workloads: `heap`, one process with N MiB of populated, incompressible
// private memory (default 1024); `sysv-pair`, two processes sharing an
// N MiB System V segment (default 256) and a semaphore, run inside a fresh
// IPC namespace for CRIU (unshare --ipc), which dumps System V objects only
// with a whole IPC namespace, and in the host's for ckpt; `event-loop`, an
// idle server-like process (N MiB, default 64): an epoll loop over an
// eventfd, a periodic timerfd and a Unix socket pair, woken every 100 ms;
// `redis`, redis-server holding N MiB of values (default 1024), no client
// connected (its listening socket, epoll, threads).
// --leave-running: dumps that leave the process running (no restore); the
// figure is the time the process was frozen, as each tool reports it (ckpt
// --json frozen_ms; CRIU's stats-dump frozen_time), and the image size.
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.h"
#include "raw_write.h"

namespace {

using ckpt::bench::Fill;
using ckpt::bench::Median;
using ckpt::bench::Now;

// Detaches the workload from the benchmark: own session, stdio on /dev/null
// (CRIU refuses inherited terminals without --shell-job).
void Detach() {
  setsid();
  int nul = open("/dev/null", O_RDWR);
  for (int fd = 0; fd < 3; ++fd) dup2(nul, fd);
  if (nul > 2) close(nul);
}

[[noreturn]] void HeapTarget(std::size_t bytes, int ready_fd) {
  Detach();
  auto* p = static_cast<unsigned char*>(
      mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  Fill(p, bytes, 0x9e3779b97f4a7c15ull);
  if (write(ready_fd, "r", 1) != 1) _exit(1);
  close(ready_fd);
  for (;;) pause();
}

// An idle event loop, as a server waiting for clients: epoll over an
// eventfd, a timerfd ticking every 100 ms and a socket pair; each tick is
// passed on through the eventfd and the pair.
[[noreturn]] void EventLoopTarget(std::size_t bytes, int ready_fd) {
  Detach();
  auto* p = static_cast<unsigned char*>(
      mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  Fill(p, bytes, 0x51ed270b27e4e4b5ull);
  int ep = epoll_create1(EPOLL_CLOEXEC), ev = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC), sv[2];
  if (ep < 0 || ev < 0 || tfd < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) _exit(1);
  struct itimerspec its = {{0, 100000000}, {0, 100000000}};
  timerfd_settime(tfd, 0, &its, nullptr);
  for (int fd : {ev, tfd, sv[1]}) {
    struct epoll_event e = {};
    e.events = EPOLLIN;
    e.data.fd = fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
  }
  if (write(ready_fd, "r", 1) != 1) _exit(1);
  close(ready_fd);
  for (;;) {
    struct epoll_event got[4];
    int n = epoll_wait(ep, got, 4, -1);
    for (int i = 0; i < n; ++i) {
      std::uint64_t v;
      char b[64];
      if (got[i].data.fd == tfd && read(tfd, &v, 8) == 8) {
        v = 1;
        (void)!write(ev, &v, 8);
        (void)!write(sv[0], "t", 1);
      } else if (got[i].data.fd == ev) {
        (void)!read(ev, &v, 8);
      } else if (got[i].data.fd == sv[1]) {
        (void)!read(sv[1], b, sizeof b);
      }
    }
  }
}

// Sends SET key:i (64 KiB of incompressible bytes) until `bytes` are
// stored, 64 commands in flight; true once every reply was +OK.
bool LoadRedis(int port, std::size_t bytes) {
  int s = -1;
  for (int i = 0; i < 500 && s < 0; ++i) {
    s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      close(s);
      s = -1;
      usleep(20000);
    }
  }
  if (s < 0) return false;
  constexpr std::size_t kValue = 64 << 10;
  std::vector<unsigned char> v(kValue);
  std::size_t keys = bytes / kValue, sent = 0, acked = 0;
  char in[4096];
  while (acked < keys) {
    while (sent < keys && sent - acked < 64) {
      Fill(v.data(), kValue, 0x7f4a7c15ull + sent);
      std::string key = "key:" + std::to_string(sent);
      std::string cmd = "*3\r\n$3\r\nSET\r\n$" + std::to_string(key.size()) + "\r\n" + key + "\r\n$" +
                        std::to_string(kValue) + "\r\n";
      cmd.append(reinterpret_cast<const char*>(v.data()), kValue);
      cmd += "\r\n";
      for (std::size_t off = 0; off < cmd.size();) {
        ssize_t w = write(s, cmd.data() + off, cmd.size() - off);
        if (w <= 0) return false;
        off += static_cast<std::size_t>(w);
      }
      ++sent;
    }
    ssize_t n = read(s, in, sizeof in);
    if (n <= 0) return false;
    for (ssize_t i = 0; i < n; ++i) {
      if (in[i] == '-') return false;  // an error reply
      if (in[i] == '\n') ++acked;
    }
  }
  close(s);
  return true;
}

// redis-server (Debian's, unmodified) holding N MiB of incompressible
// values: the process dumped is redis-server itself; a loader (reparented
// to the benchmark) fills it over its protocol, then says ready.
[[noreturn]] void RedisTarget(std::size_t bytes, int ready_fd) {
  Detach();
  int port = 20000 + getpid() % 30000;
  pid_t mid = fork();
  if (mid == 0) {
    if (fork() != 0) _exit(0);
    bool ok = LoadRedis(port, bytes);
    if (!ok || write(ready_fd, "r", 1) != 1) _exit(1);
    _exit(0);
  }
  while (waitpid(mid, nullptr, 0) == -1 && errno == EINTR) {
  }
  close(ready_fd);  // the loader holds it: redis must not (a pipe to outside)
  std::string p = std::to_string(port);
  execlp("redis-server", "redis-server", "--port", p.c_str(), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--protected-mode", "no", static_cast<char*>(nullptr));
  _exit(127);
}

// CRIU's stats-dump image: the frozen time (µs) of its dump_stats_entry
// (two magics, a u32 size, then protobuf: field 1 the dump entry, in it
// field 2 frozen_time), or -1.
double CriuFrozenMs(const std::string& img) {
  int fd = open((img + "/stats-dump").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  unsigned char b[512];
  ssize_t n = read(fd, b, sizeof b);
  close(fd);
  if (n < 14) return -1;
  auto varint = [&](std::size_t* at, std::size_t end) {
    std::uint64_t v = 0;
    for (int shift = 0; *at < end && shift < 64; shift += 7) {
      unsigned char c = b[(*at)++];
      v |= static_cast<std::uint64_t>(c & 0x7f) << shift;
      if ((c & 0x80) == 0) break;
    }
    return v;
  };
  std::size_t at = 12, end = static_cast<std::size_t>(n);
  if (b[at++] != 0x0a) return -1;  // field 1, length-delimited: the dump entry
  std::size_t inner_end = at + varint(&at, end);
  while (at < inner_end && at < end) {
    std::uint64_t key = varint(&at, end);
    if ((key & 7) != 0) return -1;
    std::uint64_t v = varint(&at, end);
    if ((key >> 3) == 2) return static_cast<double>(v) / 1000.0;
  }
  return -1;
}

// Two processes: the parent creates a segment and a semaphore, fills the
// segment, forks a child that attaches it too; both then sleep.
[[noreturn]] void SysvPairTarget(std::size_t bytes, int ready_fd) {
  Detach();
  int shm = shmget(IPC_PRIVATE, bytes, IPC_CREAT | 0600);
  int sem = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
  if (shm < 0 || sem < 0) _exit(1);
  auto* p = static_cast<unsigned char*>(shmat(shm, nullptr, 0));
  if (p == reinterpret_cast<unsigned char*>(-1)) _exit(1);
  Fill(p, bytes, 0x2545f4914f6cdd1dull);
  struct sembuf up = {0, 1, SEM_UNDO};
  semop(sem, &up, 1);
  pid_t c = fork();
  if (c == 0) {
    close(ready_fd);
    for (;;) pause();
  }
  // The ids, for the benchmark to remove the objects after the round.
  char msg[64];
  int n = std::snprintf(msg, sizeof msg, "r %d %d", shm, sem);
  if (write(ready_fd, msg, static_cast<std::size_t>(n)) != n) _exit(1);
  close(ready_fd);
  for (;;) pause();
}

struct Options {
  std::string criu, ckpt, workload = "heap", dir = "/var/tmp/ckpt-vs-criu";
  std::size_t mib = 0;
  int reps = 5;
  bool also_in_place = false;  // also time the in-place page copy (CKPT_ENGINE_DUMP_COPY=in-place)
  bool leave_running = false;  // dumps that leave the process running: frozen times, no restore
};

enum class Tool { kCkpt, kCkptInPlace, kCriu };

// The System V segment and semaphore set of the current sysv-pair workload
// (-1: none), removed after each round: restored objects outlive the tree.
int g_ipc_ids[2] = {-1, -1};

void RemoveIpc() {
  if (g_ipc_ids[0] >= 0) shmctl(g_ipc_ids[0], IPC_RMID, nullptr);
  if (g_ipc_ids[1] >= 0) semctl(g_ipc_ids[1], 0, IPC_RMID);
  g_ipc_ids[0] = g_ipc_ids[1] = -1;
}

// Starts the workload (this program re-executed) and returns its PID once it
// is ready. For CRIU the sysv-pair workload runs in a new IPC namespace (it
// dumps System V objects only that way); for ckpt in the host's.
pid_t StartTarget(const Options& o, bool criu) {
  int ready[2];
  if (pipe(ready) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    // Only the ready pipe: descriptors inherited from whoever started the
    // benchmark would tie the target to processes outside the dump.
    if (dup2(ready[1], 3) != 3) _exit(126);
    syscall(SYS_close_range, 4u, ~0u, 0u);
    ready[1] = 3;
    if (criu && o.workload == "sysv-pair" && unshare(CLONE_NEWIPC) != 0) _exit(126);
    std::string mib = std::to_string(o.mib), fd = std::to_string(ready[1]);
    execl("/proc/self/exe", "engine_vs_criu", "--target", o.workload.c_str(), mib.c_str(), fd.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(ready[1]);
  char msg[64] = {};
  bool ok = read(ready[0], msg, sizeof msg - 1) >= 1 && msg[0] == 'r';
  close(ready[0]);
  if (!ok) return -1;
  g_ipc_ids[0] = g_ipc_ids[1] = -1;
  std::sscanf(msg, "r %d %d", &g_ipc_ids[0], &g_ipc_ids[1]);
  return pid;
}

// Runs a command, its output to `log`; returns its exit status (or -1).
int Run(const std::vector<std::string>& argv, const std::string& log, const char* env_set = nullptr) {
  pid_t c = fork();
  if (c == 0) {
    if (env_set != nullptr) putenv(const_cast<char*>(env_set));
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execv(a[0], a.data());
    _exit(127);
  }
  int st = 0;
  while (waitpid(c, &st, 0) == -1 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// Kills the restored tree rooted at `pid` (a child of ours through the
// subreaper bit) and reaps everything that is ours.
void KillTree(pid_t pid) {
  kill(-pid, SIGKILL);  // the workload leads its own process group
  kill(pid, SIGKILL);
  while (true) {
    pid_t r = waitpid(-1, nullptr, 0);
    if (r == -1 && errno == EINTR) continue;
    if (r == -1) break;
  }
}

struct Times {
  std::vector<double> dump, restore, frozen_ms, image_mib;
  int failures = 0;
};

// The size of the files in `dir`, MiB.
double DirMiB(const std::string& dir) {
  double total = 0;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      struct stat st;
      if (stat((dir + "/" + e->d_name).c_str(), &st) == 0 && S_ISREG(st.st_mode)) total += st.st_size;
    }
    closedir(d);
  }
  return total / (1 << 20);
}

// The ckpt --json output's frozen_ms, or -1.
double CkptFrozenMs(const std::string& json) {
  int fd = open(json.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char b[8192] = {};
  ssize_t n = read(fd, b, sizeof b - 1);
  close(fd);
  const char* at = n > 0 ? std::strstr(b, "\"frozen_ms\":") : nullptr;
  return at == nullptr ? -1 : std::atof(at + 12);
}

// One --leave-running dump: its time, frozen time and image size.
bool LeaveRunningRound(const Options& o, Tool tool, Times* t, const std::string& log) {
  bool criu = tool == Tool::kCriu;
  pid_t pid = StartTarget(o, criu);
  if (pid < 0) return false;
  std::string img = o.dir + (criu ? "/criu" : "/ckpt"), json = o.dir + "/dump.json";
  Run({"/bin/rm", "-rf", img, json}, "/dev/null");
  mkdir(img.c_str(), 0755);
  std::string p = std::to_string(pid);
  std::vector<std::string> dump =
      criu
          ? std::vector<std::string>{o.criu, "dump", "-t", p,          "-D",
                                     img,    "-v1",  "-o", "dump.log", "--leave-running"}
          : std::vector<std::string>{
                "/bin/sh", "-c", "exec \"$0\" dump \"$1\" -D \"$2\" --no-sync --leave-running --json >\"$3\"",
                o.ckpt,    p,    img,
                json};
  double t0 = Now();
  int rc = Run(dump, log);
  double t1 = Now();
  bool alive = kill(pid, 0) == 0;
  KillTree(pid);
  RemoveIpc();
  double frozen = criu ? CriuFrozenMs(img) : CkptFrozenMs(json);
  if (rc != 0 || !alive || frozen < 0) {
    std::fprintf(stderr, "%s --leave-running dump failed (status %d, %s, frozen %.1f), see %s\n",
                 criu ? "criu" : "ckpt", rc, alive ? "running" : "gone", frozen, log.c_str());
    ++t->failures;
    return true;
  }
  t->dump.push_back(t1 - t0);
  t->frozen_ms.push_back(frozen);
  t->image_mib.push_back(DirMiB(img));
  return true;
}

bool OneRound(const Options& o, Tool tool, Times* t, const std::string& log) {
  if (o.leave_running) return LeaveRunningRound(o, tool, t, log);
  bool criu = tool == Tool::kCriu;
  const char* env_set = tool == Tool::kCkptInPlace ? "CKPT_ENGINE_DUMP_COPY=in-place" : nullptr;
  pid_t pid = StartTarget(o, criu);
  if (pid < 0) return false;
  std::string img = o.dir + (criu ? "/criu" : "/ckpt");
  Run({"/bin/rm", "-rf", img}, "/dev/null");
  mkdir(img.c_str(), 0755);
  std::string p = std::to_string(pid);
  std::vector<std::string> dump, restore;
  if (criu) {
    dump = {o.criu, "dump", "-t", p, "-D", img, "-v1", "-o", "dump.log"};
    restore = {o.criu, "restore", "-D", img, "-d", "-v1", "-o", "restore.log"};
  } else {
    dump = {o.ckpt, "dump", p, "-D", img, "--no-sync"};
    if (o.workload == "sysv-pair") dump.push_back("--tree");
    restore = {o.ckpt, "restore", "-D", img, "--detach"};
  }
  ::sync();
  double t0 = Now();
  int rc = Run(dump, log, env_set);
  double t1 = Now();
  KillTree(pid);  // the dump killed it; reap it (and its child) so the PIDs are free
  if (criu) g_ipc_ids[0] = g_ipc_ids[1] = -1;  // in the workload's own IPC namespace, gone with it
  if (rc != 0) {
    RemoveIpc();
    std::fprintf(stderr, "%s dump failed (status %d), see %s\n", criu ? "criu" : "ckpt", rc, log.c_str());
    ++t->failures;
    return true;
  }
  double t2 = Now();
  rc = Run(restore, log);
  double t3 = Now();
  KillTree(pid);
  RemoveIpc();
  if (rc != 0) {
    std::fprintf(stderr, "%s restore failed (status %d), see %s\n", criu ? "criu" : "ckpt", rc, log.c_str());
    ++t->failures;
    return true;
  }
  t->dump.push_back(t1 - t0);
  t->restore.push_back(t3 - t2);
  return true;
}

// The raw write of the same bytes, to `dir`/raw.bin (raw_write.h).
double RawWrite(const std::string& dir, const unsigned char* buf, std::size_t bytes, bool gaps = false) {
  return ckpt::bench::RawWrite(dir + "/raw.bin", buf, bytes, gaps, false);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--target") {
    std::size_t bytes = std::strtoull(argv[3], nullptr, 10) << 20;
    int fd = std::atoi(argv[4]);
    if (std::string(argv[2]) == "sysv-pair") SysvPairTarget(bytes, fd);
    if (std::string(argv[2]) == "event-loop") EventLoopTarget(bytes, fd);
    if (std::string(argv[2]) == "redis") RedisTarget(bytes, fd);
    HeapTarget(bytes, fd);
  }
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--criu")
      o.criu = next();
    else if (a == "--ckpt")
      o.ckpt = next();
    else if (a == "--workload")
      o.workload = next();
    else if (a == "--mib")
      o.mib = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--reps")
      o.reps = std::atoi(next().c_str());
    else if (a == "--dir")
      o.dir = next();
    else if (a == "--also-in-place")
      o.also_in_place = true;
    else if (a == "--leave-running")
      o.leave_running = true;
    else {
      std::fprintf(
          stderr,
          "usage: engine_vs_criu --criu PATH [--ckpt PATH] [--workload heap|sysv-pair|event-loop|redis] "
          "[--mib N] [--reps R] [--dir DIR] [--also-in-place] [--leave-running]\n");
      return 2;
    }
  }
  if (o.workload != "heap" && o.workload != "sysv-pair" && o.workload != "event-loop" &&
      o.workload != "redis") {
    std::fprintf(stderr, "unknown workload %s\n", o.workload.c_str());
    return 2;
  }
  if (o.mib == 0)
    o.mib = o.workload == "heap" || o.workload == "redis" ? 1024 : o.workload == "event-loop" ? 64 : 256;
  if (o.ckpt.empty()) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
      self[n] = 0;
      o.ckpt = std::string(self).substr(0, std::string(self).rfind('/')) + "/ckpt";
    }
  }
  if (o.criu.empty() || access(o.criu.c_str(), X_OK) != 0) {
    std::printf(
        "engine_vs_criu: skipped: no CRIU binary at '%s' (give --criu PATH; this benchmark never "
        "builds CRIU)\n",
        o.criu.c_str());
    return 0;
  }
  if (access(o.ckpt.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "engine_vs_criu: no ckpt binary at %s\n", o.ckpt.c_str());
    return 1;
  }
  std::string log = o.dir + "/commands.log";
  Run({"/bin/mkdir", "-p", o.dir}, "/dev/null");
  if (Run({o.criu, "--version"}, log) != 0) {
    std::printf("engine_vs_criu: skipped: %s does not run here (see %s)\n", o.criu.c_str(), log.c_str());
    return 0;
  }
  // Restored processes outlive the restoring command: they become ours to reap.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  Times ck, cr, cki;
  std::vector<double> raw;
  const std::size_t raw_bytes = o.mib << 20;
  auto* raw_buf = static_cast<unsigned char*>(
      mmap(nullptr, raw_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0));
  Fill(raw_buf, raw_bytes, 7);
  // Written once untimed: on a VM with shadow page tables the kernel's first
  // access to each page of a buffer costs a hypervisor fault, which is not
  // the write's cost (ckpt reads the process's pages without it).
  RawWrite(o.dir, raw_buf, raw_bytes);
  std::vector<double> raw_gaps;
  for (int rep = 0; rep < o.reps; ++rep) {
    // The raw write, ckpt and CRIU take turns going first.
    const int n = o.also_in_place ? 4 : 3;
    for (int k = 0; k < n; ++k) {
      int who = (k + rep) % n;
      if (who == 0) {
        raw.push_back(RawWrite(o.dir, raw_buf, raw_bytes));
        raw_gaps.push_back(RawWrite(o.dir, raw_buf, raw_bytes, true));
        continue;
      }
      Tool tool = who == 1 ? Tool::kCkpt : who == 2 ? Tool::kCriu : Tool::kCkptInPlace;
      Times* times = tool == Tool::kCkpt ? &ck : tool == Tool::kCriu ? &cr : &cki;
      if (!OneRound(o, tool, times, log)) {
        std::fprintf(stderr, "cannot start the workload\n");
        return 1;
      }
    }
    if (std::getenv("ENGINE_BENCH_VERBOSE") != nullptr && o.leave_running && !ck.frozen_ms.empty() &&
        !cr.frozen_ms.empty()) {
      std::printf("  rep %d: ckpt frozen %.1f ms  criu frozen %.1f ms\n", rep, ck.frozen_ms.back(),
                  cr.frozen_ms.back());
    } else if (std::getenv("ENGINE_BENCH_VERBOSE") != nullptr && ck.dump.size() == cr.dump.size() &&
               !ck.dump.empty() && ck.restore.size() == ck.dump.size() &&
               cr.restore.size() == cr.dump.size()) {
      std::printf(
          "  rep %d: raw write %.3f (image layout %.3f)  ckpt dump %.3f restore %.3f  criu dump %.3f "
          "restore %.3f",
          rep, raw.back(), raw_gaps.back(), ck.dump.back(), ck.restore.back(), cr.dump.back(),
          cr.restore.back());
      if (!cki.dump.empty()) std::printf("  ckpt-in-place dump %.3f", cki.dump.back());
      std::printf("\n");
    }
  }
  std::printf("engine_vs_criu: workload %s, %zu MiB, %d reps (median), images in %s, page cache (no fsync)\n",
              o.workload.c_str(), o.mib, o.reps, o.dir.c_str());
  // The dump against the faster way of writing the same bytes.
  double raw_best = std::min(Median(raw), Median(raw_gaps));
  std::printf(
      "  raw write of %zu MiB  %.3f s, in the image's layout %.3f s   (ckpt dump speed vs raw write: %.2fx,"
      " CRIU's: %.2fx)\n",
      o.mib, Median(raw), Median(raw_gaps), ck.dump.empty() ? 0.0 : raw_best / Median(ck.dump),
      cr.dump.empty() ? 0.0 : raw_best / Median(cr.dump));
  const char* fmt = o.leave_running ? "  %s   dump %.3f s (left running)   (%d failed)\n"
                                    : "  %s   dump %.3f s   restore %.3f s   (%d failed)\n";
  if (o.leave_running) {
    std::printf(fmt, "ckpt", Median(ck.dump), ck.failures);
    std::printf(fmt, "criu", Median(cr.dump), cr.failures);
  } else {
    std::printf(fmt, "ckpt", Median(ck.dump), Median(ck.restore), ck.failures);
    std::printf(fmt, "criu", Median(cr.dump), Median(cr.restore), cr.failures);
  }
  if (o.also_in_place) {
    std::printf("  ckpt with CKPT_ENGINE_DUMP_COPY=in-place: dump %.3f s   restore %.3f s   (%d failed)\n",
                Median(cki.dump), Median(cki.restore), cki.failures);
  }
  if (o.leave_running) {
    std::printf(
        "  --leave-running: ckpt frozen %.1f ms, image %.1f MiB   criu frozen %.1f ms, image %.1f MiB\n",
        Median(ck.frozen_ms), Median(ck.image_mib), Median(cr.frozen_ms), Median(cr.image_mib));
    if (!ck.frozen_ms.empty() && !cr.frozen_ms.empty())
      std::printf("  criu / ckpt: frozen %.2fx   (above 1: ckpt's process is stopped for less)\n",
                  Median(cr.frozen_ms) / Median(ck.frozen_ms));
  } else if (!ck.dump.empty() && !cr.dump.empty()) {
    std::printf("  criu / ckpt: dump %.2fx   restore %.2fx   (above 1: ckpt faster)\n",
                Median(cr.dump) / Median(ck.dump), Median(cr.restore) / Median(ck.restore));
  }
  Run({"/bin/rm", "-rf", o.dir + "/ckpt", o.dir + "/criu", o.dir + "/raw.bin"}, "/dev/null");
  munmap(raw_buf, raw_bytes);
  return ck.failures + cr.failures + cki.failures == 0 ? 0 : 1;
}
