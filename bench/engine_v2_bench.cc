// Engine v2 benchmark: the cost of preserving communication state.
//  1. Overhead: a 2-process tree with N MiB of private memory per process,
//     dumped bare ("private") and with communication state added ("comm": a
//     System V segment, semaphore set with a SEM_UNDO adjustment and message
//     queue, a POSIX shm object, a shared anonymous mapping and a pipe with
//     bytes in it), alternating, in the same run. Time overhead = median dump
//     time with comm state / without - 1; space overhead = image bytes that
//     describe the comm state (beyond its payload: shared pages, pipe bytes,
//     message texts) / whole image.
//  2. A 2-process tree sharing one 256 MiB System V segment: dump and restore
//     times (CRIU measured here: dump 0.032 s, restore 0.048 s, inside an IPC
//     namespace).
// Linux x86-64, root.   engine_v2_bench [--mib N] [--reps R] [--dir DIR] [--no-pair]
// (--no-pair: the overhead measurement alone)
#include <fcntl.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.h"
#include "engine/engine.h"

namespace {

using ckpt::bench::Fill;
using ckpt::bench::Median;
using ckpt::bench::Now;

constexpr std::size_t kSmallShared = 64 * 1024;  // each small shared object
constexpr int kMessages = 64, kMsgText = 100;
constexpr std::size_t kPipeBytes = 4096;

unsigned char* Private(std::size_t bytes, std::uint64_t seed) {
  auto* p = static_cast<unsigned char*>(
      mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (p == MAP_FAILED) _exit(3);
  Fill(p, bytes, seed);
  return p;
}

std::string ShmName(int key) {
  return "/ckpt-v2-bench-" + std::to_string(key);
}

// The tree to dump: this program re-executed with `--target MODE MIB KEY
// FD`. The root leads a process group (so the whole tree can be killed),
// forks one child, and reports on FD once both are set up.
[[noreturn]] void TargetMain(const std::string& mode, std::size_t mib, int key, int ready_fd) {
  // stdio on /dev/null: a pipe to whoever reads the benchmark's output
  // (`| tee`) would tie the target to a process outside the dump, which
  // refuses such pipes.
  int nul = open("/dev/null", O_RDWR);
  for (int fd = 0; fd < 3; ++fd) dup2(nul, fd);
  if (nul > 2) close(nul);
  setpgid(0, 0);
  int both[2];
  if (pipe(both) != 0) _exit(3);
  int shmid = -1, semid = -1, qid = -1, comm_pipe[2] = {-1, -1};
  unsigned char *sysv = nullptr, *anon = nullptr, *posix = nullptr;
  if (mode == "comm") {
    shmid = shmget(key, kSmallShared, IPC_CREAT | 0600);
    semid = semget(key, 4, IPC_CREAT | 0600);
    qid = msgget(key, IPC_CREAT | 0600);
    if (shmid < 0 || semid < 0 || qid < 0 || pipe(comm_pipe) != 0) _exit(4);
    sysv = static_cast<unsigned char*>(shmat(shmid, nullptr, 0));
    anon = static_cast<unsigned char*>(
        mmap(nullptr, kSmallShared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    int fd = shm_open(ShmName(key).c_str(), O_CREAT | O_RDWR, 0600);
    if (fd < 0 || ftruncate(fd, kSmallShared) != 0) _exit(4);
    posix =
        static_cast<unsigned char*>(mmap(nullptr, kSmallShared, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    close(fd);
    Fill(sysv, kSmallShared, 1);
    Fill(anon, kSmallShared, 2);
    Fill(posix, kSmallShared, 3);
    unsigned short v[4] = {10, 10, 10, 10};
    semctl(semid, 0, SETALL, v);
    struct {
      long type;
      char text[kMsgText];
    } m;
    std::memset(m.text, 'm', sizeof m.text);
    for (int i = 0; i < kMessages; ++i) {
      m.type = 1 + i % 3;
      msgsnd(qid, &m, sizeof m.text, 0);
    }
    std::string bytes(kPipeBytes, 'p');
    if (write(comm_pipe[1], bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) _exit(4);
  } else if (mode == "sysv256") {
    shmid = shmget(IPC_PRIVATE, 256u << 20, IPC_CREAT | 0600);
    if (shmid < 0) _exit(4);
    sysv = static_cast<unsigned char*>(shmat(shmid, nullptr, 0));
    Fill(sysv, 256u << 20, 4);
    shmctl(shmid, IPC_RMID, nullptr);  // gone once both detach
  }
  pid_t child = fork();
  if (child == 0) {
    close(ready_fd);
    Private(mib << 20, 6);
    if (semid >= 0) {
      struct sembuf b = {1, -1, SEM_UNDO};
      semop(semid, &b, 1);
    }
    if (write(both[1], "c", 1) != 1) _exit(5);
    for (;;) pause();
  }
  Private(mib << 20, 5);  // after the fork: no page is shared copy-on-write
  char c;
  if (read(both[0], &c, 1) != 1) _exit(5);
  if (write(ready_fd, "r", 1) != 1) _exit(1);
  close(ready_fd);
  for (;;) pause();
}

pid_t StartTarget(const std::string& mode, std::size_t mib, int key) {
  int ready[2];
  if (pipe(ready) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    // Only the ready pipe: descriptors inherited from whoever started the
    // benchmark would tie the tree to processes outside it.
    if (dup2(ready[1], 3) != 3) _exit(126);
    syscall(SYS_close_range, 4u, ~0u, 0u);
    std::string m = std::to_string(mib), k = std::to_string(key), fd = "3";
    execl("/proc/self/exe", "engine_v2_bench", "--target", mode.c_str(), m.c_str(), k.c_str(), fd.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(ready[1]);
  char c;
  if (read(ready[0], &c, 1) != 1) return -1;
  close(ready[0]);
  return pid;
}

void RemoveIpc(int key) {
  int id = shmget(key, 0, 0);
  if (id >= 0) shmctl(id, IPC_RMID, nullptr);
  id = semget(key, 0, 0);
  if (id >= 0) semctl(id, 0, IPC_RMID);
  id = msgget(key, 0);
  if (id >= 0) msgctl(id, IPC_RMID, nullptr);
  shm_unlink(ShmName(key).c_str());
}

void KillTree(pid_t root) {
  kill(-root, SIGKILL);
  kill(root, SIGKILL);
  // The restored root is our child; its child went to init or to us.
  while (waitpid(-1, nullptr, __WALL | WNOHANG) > 0) {
  }
  usleep(20000);
  while (waitpid(-1, nullptr, __WALL | WNOHANG) > 0) {
  }
}

struct Run {
  double dump = 0, restore = 0;
  ckpt::engine::DumpStats stats;
};

bool DumpOnce(const std::string& mode, std::size_t mib, int key, const std::string& dir, bool restore,
              Run* out) {
  // A fresh directory each time, as for CRIU: renaming over an old image
  // makes ext4 write the new one back at once (auto_da_alloc).
  unlink((dir + "/process.ckpt").c_str());
  pid_t pid = StartTarget(mode, mib, key);
  if (pid < 0) return false;
  ckpt::engine::DumpOptions d;
  d.pid = pid;
  d.tree = true;
  d.dir = dir;
  d.sync = false;
  ::sync();
  double t = Now();
  auto ds = ckpt::engine::Dump(d);
  out->dump = Now() - t;
  waitpid(pid, nullptr, 0);
  if (!ds.ok()) {
    std::fprintf(stderr, "dump (%s) failed: %s\n", mode.c_str(), ds.status().message().c_str());
    return false;
  }
  out->stats = *ds;
  if (restore) {
    ckpt::engine::RestoreOptions r;
    r.dir = dir;
    r.detach = true;
    t = Now();
    auto rs = ckpt::engine::Restore(r);
    out->restore = Now() - t;
    if (!rs.ok()) {
      std::fprintf(stderr, "restore (%s) failed: %s\n", mode.c_str(), rs.status().message().c_str());
      return false;
    }
    KillTree(rs->pid);
  }
  RemoveIpc(key);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 6 && std::string(argv[1]) == "--target") {
    TargetMain(argv[2], std::strtoull(argv[3], nullptr, 10), std::atoi(argv[4]), std::atoi(argv[5]));
  }
  std::size_t mib = 64;
  int reps = 9;
  std::string dir = "/var/tmp/ckpt-v2-bench";
  bool pair = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--no-pair") {
      pair = false;
      continue;
    }
    if (a == "--mib" && i + 1 < argc)
      mib = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--reps" && i + 1 < argc)
      reps = std::atoi(argv[++i]);
    else if (a == "--dir" && i + 1 < argc)
      dir = argv[++i];
    else {
      std::fprintf(stderr, "usage: engine_v2_bench [--mib N] [--reps R] [--dir DIR] [--no-pair]\n");
      return 2;
    }
  }
  mkdir(dir.c_str(), 0755);
  int key = 0x5c000000 | (getpid() & 0xffffff);
  std::vector<double> t_private, t_comm, t_big_dump, t_big_restore, comm_share, comm_meta_share, raw_w;
  Run priv, comm, big;
  for (int rep = 0; rep < reps; ++rep) {
    // Alternate which goes first so that drift favours neither.
    for (int k = 0; k < 2; ++k) {
      bool with = (k == 0) == (rep % 2 == 0);
      Run& r = with ? comm : priv;
      if (!DumpOnce(with ? "comm" : "private", mib, key, dir + "/img", false, &r)) return 1;
      (with ? t_comm : t_private).push_back(r.dump);
      if (with) {
        double total = static_cast<double>(r.stats.total_ns);
        comm_share.push_back(static_cast<double>(r.stats.comm_ns) / total);
        comm_meta_share.push_back(static_cast<double>(r.stats.comm_ns - r.stats.shared_write_ns) / total);
      }
    }
    if (!pair) continue;
    {
      // Raw baseline for the big segment: its bytes written to a file.
      std::size_t n = 256u << 20;
      auto* buf = Private(n, 7);
      std::string raw = dir + "/raw.bin";
      ::sync();
      double t = Now();
      int fd = open(raw.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      for (std::size_t off = 0; off < n; off += 8u << 20) {
        if (write(fd, buf + off, 8u << 20) < 0) return 1;
      }
      close(fd);
      raw_w.push_back(Now() - t);
      munmap(buf, n);
      unlink(raw.c_str());
    }
    if (!DumpOnce("sysv256", 1, key, dir + "/big", true, &big)) return 1;
    t_big_dump.push_back(big.dump);
    t_big_restore.push_back(big.restore);
  }
  double tp = Median(t_private), tc = Median(t_comm);
  // Payload of the comm state: shared pages (stored once), pipe bytes and
  // message texts. The image bytes that are not private pages, of the comm
  // image beyond those of the private one and beyond the payload, describe
  // the comm state (the extra mappings and descriptors included). Private
  // pages are left out on both sides: their count varies by a few pages
  // (stack, heap) from run to run.
  double payload = static_cast<double>(comm.stats.shared_bytes) + kPipeBytes + kMessages * kMsgText;
  auto non_private = [](const ckpt::engine::DumpStats& s) {
    return static_cast<double>(s.image_bytes) - static_cast<double>(s.pages_stored) * 4096;
  };
  double described = non_private(comm.stats) - non_private(priv.stats) - payload;
  std::printf("engine_v2_bench: 2 processes x %zu MiB private memory, %d reps (median), images in %s\n", mib,
              reps, dir.c_str());
  std::printf("  dump, private memory only      %.4f s   image %llu bytes\n", tp,
              static_cast<unsigned long long>(priv.stats.image_bytes));
  std::printf(
      "  dump, with comm state          %.4f s   image %llu bytes (%d shared objects, %d sem sets, %d "
      "queues, %llu shared bytes)\n",
      tc, static_cast<unsigned long long>(comm.stats.image_bytes), comm.stats.shared_objects,
      comm.stats.sysv_sems, comm.stats.sysv_queues, static_cast<unsigned long long>(comm.stats.shared_bytes));
  std::printf(
      "  time overhead of comm state    %+.2f %% (median dump with / without - 1; noise of this VM "
      "included)\n",
      (tc / tp - 1) * 100);
  std::printf(
      "  comm-state work inside the dump with it: %.3f %% of its time, %.3f %% without writing the shared "
      "pages (medians)   (paper 8.5 %%, goal <= 2 %%)\n",
      Median(comm_share) * 100, Median(comm_meta_share) * 100);
  std::printf(
      "  space: %.0f bytes describe the comm state beyond %.0f bytes of payload = %.4f %% of the image   "
      "(paper 0.55 %%, goal <= 0.1 %%); tree/IPC sections %llu bytes\n",
      described, payload, described / static_cast<double>(comm.stats.image_bytes) * 100,
      static_cast<unsigned long long>(comm.stats.tree_meta_bytes));
  std::printf(
      "  space, the tree/IPC sections alone (members, objects, mappings, semaphores, queues): %.4f %% of the "
      "image (%.4f %% in the dump without comm state)\n",
      static_cast<double>(comm.stats.tree_meta_bytes) / static_cast<double>(comm.stats.image_bytes) * 100,
      static_cast<double>(priv.stats.tree_meta_bytes) / static_cast<double>(priv.stats.image_bytes) * 100);
  if (!pair) return 0;
  std::printf(
      "  2 processes sharing a 256 MiB System V segment: dump %.3f s (best %.3f), restore %.3f s (best "
      "%.3f)   CRIU here: dump 0.032 s, restore 0.048 s\n",
      Median(t_big_dump), *std::min_element(t_big_dump.begin(), t_big_dump.end()), Median(t_big_restore),
      *std::min_element(t_big_restore.begin(), t_big_restore.end()));
  std::printf("    last big dump: total %.3f s, writing the segment's pages %.3f s\n",
              big.stats.total_ns / 1e9, big.stats.shared_write_ns / 1e9);
  std::printf("    raw write of 256 MiB to the same file system: %.3f s (median)\n", Median(raw_w));
  std::printf("    image %llu bytes, %llu shared bytes stored\n",
              static_cast<unsigned long long>(big.stats.image_bytes),
              static_cast<unsigned long long>(big.stats.shared_bytes));
  return 0;
}
