// Transparent engine benchmark: dump and restore of a process with N MiB of
// populated memory, against a raw write and a raw read of the same number
// of bytes measured in the same run, on the same file system. The raw write
// is timed twice per repetition, in 256 KiB write() calls and in the
// image's layout (a 16-byte frame header before each MiB); the dump is
// compared with the faster. Prints the frozen time, the dump's page-copy
// phase and the image size against populated memory. Linux x86-64 only.
//   engine_bench [--mib N] [--dir DIR] [--reps R] [--sync]
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
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
#include "engine/model.h"
#include "raw_write.h"

namespace {

using ckpt::bench::Fill;
using ckpt::bench::Median;
using ckpt::bench::Now;
using ckpt::bench::RawWrite;

// The process to dump: this program re-executed with `--target`, so that it
// holds the N MiB and nothing else of the benchmark's own memory.
[[noreturn]] void TargetMain(std::size_t bytes, int ready_fd) {
  // stdio on /dev/null: a pipe to whoever reads the benchmark's output
  // (`| tee`) would tie the target to a process outside the dump, which
  // refuses such pipes.
  int nul = open("/dev/null", O_RDWR);
  for (int fd = 0; fd < 3; ++fd) dup2(nul, fd);
  if (nul > 2) close(nul);
  auto* p = static_cast<unsigned char*>(
      mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  Fill(p, bytes);
  if (write(ready_fd, "r", 1) != 1) _exit(1);
  close(ready_fd);
  for (;;) pause();
}

pid_t StartTarget(std::size_t bytes) {
  int ready[2];
  if (pipe(ready) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    // Only the ready pipe: descriptors inherited from whoever started the
    // benchmark would tie the target to processes outside the dump.
    if (dup2(ready[1], 3) != 3) _exit(126);
    syscall(SYS_close_range, 4u, ~0u, 0u);
    ready[1] = 3;
    std::string mib = std::to_string(bytes >> 20), fd = std::to_string(ready[1]);
    execl("/proc/self/exe", "engine_bench", "--target", mib.c_str(), fd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(ready[1]);
  char c;
  if (read(ready[0], &c, 1) != 1) return -1;
  if (read(ready[0], &c, 1) != 0) return -1;  // EOF: the child closed its end too
  close(ready[0]);
  return pid;
}

void Reap(pid_t pid) {
  kill(pid, SIGKILL);
  while (waitpid(pid, nullptr, 0) == -1 && errno == EINTR) {
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--target") {
    TargetMain(std::strtoull(argv[2], nullptr, 10) << 20, std::atoi(argv[3]));
  }
  std::size_t mib = 1024;
  std::string dir = "/var/tmp/ckpt-engine-bench";
  int reps = 3;
  bool sync = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--mib" && i + 1 < argc)
      mib = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--dir" && i + 1 < argc)
      dir = argv[++i];
    else if (a == "--reps" && i + 1 < argc)
      reps = std::atoi(argv[++i]);
    else if (a == "--sync")
      sync = true;
    else {
      std::fprintf(stderr, "usage: engine_bench [--mib N] [--dir DIR] [--reps R] [--sync]\n");
      return 2;
    }
  }
  std::size_t bytes = mib << 20;
  mkdir(dir.c_str(), 0755);
  std::string raw_path = dir + "/raw.bin";
  std::vector<double> raw_w, raw_wg, raw_r, raw_fresh, dump_t, frozen_t, pages_t, restore_t;
  std::uint64_t image_bytes = 0, stored = 0;
  const std::size_t chunk = 256u << 10;  // the fastest write() size here (docs/performance.md)
  // The raw write's buffer is written once before the timed writes: on a
  // virtual machine with shadow page tables (the test VM) the kernel's first
  // access to each page of a process's buffer costs a hypervisor fault,
  // which would make the baseline several times slower than the page-cache
  // write itself (the dump reads the process's pages without it).
  auto* buf = static_cast<unsigned char*>(
      mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0));
  Fill(buf, bytes);
  auto raw_write = [&](bool gaps) { return RawWrite(raw_path, buf, bytes, gaps, sync); };
  if (raw_write(false) < 0) return 1;  // untimed: the buffer is warm
  for (int rep = 0; rep < reps; ++rep) {
    // Raw baselines: the same bytes written to and read back from one file.
    {
      raw_w.push_back(raw_write(false));
      raw_wg.push_back(raw_write(true));
      if (raw_w.back() < 0 || raw_wg.back() < 0) return 1;
      double t = Now();
      int fd = open(raw_path.c_str(), O_RDONLY);
      for (std::size_t off = 0; off < bytes; off += chunk) {
        if (read(fd, buf + off, std::min(chunk, bytes - off)) < 0) return 1;
      }
      close(fd);
      raw_r.push_back(Now() - t);
      // The floor for any restore: read the same bytes into fresh memory,
      // which the kernel must allocate and zero first, as for the process.
      auto* fresh = static_cast<unsigned char*>(
          mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      t = Now();
      fd = open(raw_path.c_str(), O_RDONLY);
      for (std::size_t off = 0; off < bytes; off += chunk) {
        if (read(fd, fresh + off, std::min(chunk, bytes - off)) < 0) return 1;
      }
      close(fd);
      raw_fresh.push_back(Now() - t);
      munmap(fresh, bytes);
    }
    pid_t pid = StartTarget(bytes);
    if (pid < 0) return 1;
    ckpt::engine::DumpOptions d;
    d.pid = pid;
    d.dir = dir + "/img";
    unlink((d.dir + "/" + ckpt::engine::kImageFileName).c_str());  // as for the raw write
    d.sync = sync;
    ::sync();
    double t = Now();
    auto ds = ckpt::engine::Dump(d);
    dump_t.push_back(Now() - t);
    if (!ds.ok()) kill(pid, SIGKILL);  // a failed dump leaves it running
    waitpid(pid, nullptr, 0);
    if (!ds.ok()) {
      std::fprintf(stderr, "dump failed: %s\n", ds.status().message().c_str());
      return 1;
    }
    frozen_t.push_back(ds->frozen_ns / 1e9);
    pages_t.push_back(ds->phases.pages_ns / 1e9);
    image_bytes = ds->image_bytes;
    stored = ds->pages_stored * 4096;
    ckpt::engine::RestoreOptions r;
    r.dir = d.dir;
    r.detach = true;
    t = Now();
    auto rs = ckpt::engine::Restore(r);
    restore_t.push_back(Now() - t);
    if (!rs.ok()) {
      std::fprintf(stderr, "restore failed: %s\n", rs.status().message().c_str());
      return 1;
    }
    Reap(rs->pid);
  }
  unlink(raw_path.c_str());
  auto best = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };
  if (std::getenv("ENGINE_BENCH_VERBOSE") != nullptr) {
    for (int i = 0; i < reps; ++i)
      std::printf(
          "  rep %d: raw write %.3f (image layout %.3f) dump %.3f (frozen %.3f, pages %.3f) fresh read %.3f "
          "restore %.3f\n",
          i, raw_w[i], raw_wg[i], dump_t[i], frozen_t[i], pages_t[i], raw_fresh[i], restore_t[i]);
  }
  double w = Median(raw_w), rd = Median(raw_r), dt = Median(dump_t), ft = Median(frozen_t),
         rt = Median(restore_t);
  std::printf("engine_bench: %zu MiB populated memory, %d reps (median), images in %s, fsync %s\n", mib, reps,
              dir.c_str(), sync ? "on" : "off");
  double wg = Median(raw_wg);
  std::printf("  raw write   %.3f s (%.2f GB/s); in the image's layout %.3f s (%.2f GB/s)\n", w,
              bytes / w / 1e9, wg, bytes / wg / 1e9);
  // Against the faster of the two: the physical limit of writing the bytes.
  double wmin = std::min(w, wg);
  std::printf("  dump        %.3f s (%.2f GB/s)   raw write / dump = %.2fx   frozen %.3f s\n", dt,
              bytes / dt / 1e9, wmin / dt, ft);
  std::printf("  raw read    %.3f s (%.2f GB/s)\n", rd, bytes / rd / 1e9);
  double rf = Median(raw_fresh);
  std::printf("  raw read into fresh memory %.3f s (%.2f GB/s)\n", rf, bytes / rf / 1e9);
  std::printf(
      "  restore     %.3f s (%.2f GB/s)   raw read / restore = %.2fx   fresh-memory read / restore = %.2fx\n",
      rt, bytes / rt / 1e9, rd / rt, rf / rt);
  std::printf(
      "  best of %d: raw write %.3f s, dump %.3f s (%.2fx), raw read into fresh memory %.3f s, restore %.3f "
      "s (%.2fx)\n",
      reps, std::min(best(raw_w), best(raw_wg)), best(dump_t),
      std::min(best(raw_w), best(raw_wg)) / best(dump_t), best(raw_fresh), best(restore_t),
      best(raw_fresh) / best(restore_t));
  std::printf("  image       %llu bytes for %zu populated bytes (%.4fx); %llu bytes of pages stored\n",
              static_cast<unsigned long long>(image_bytes), bytes, static_cast<double>(image_bytes) / bytes,
              static_cast<unsigned long long>(stored));
  return 0;
}
