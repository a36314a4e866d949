// A CKPT program holding MIB MiB of state, for bench/migrate_net_bench.py:
//
//   migrate_state MIB [SECONDS] [--ckpt-... options]
//
// The state is one std::vector<std::uint64_t> filled with a sensor log: each
// 64-bit word is a record (timestamp u32, sensor id u16, reading u16) for 16
// sensors per tick, readings drifting slowly with 3 bits of noise. zstd
// level 1 stores it in about a fifth of its size: compressible, but neither
// zeros nor a repeated block. After filling it the program loops on
// safepoints with a 2 ms sleep between them (it uses almost no CPU while it
// waits to be migrated) and exits after SECONDS (default 900) of looping.
//
// Stdout: "ready N words" at the first safepoint (the state filled or resumed). On SIGUSR1
// it checks every word against the formula and prints "verified N words" or
// "MISMATCH at I". At exit it prints its own CPU time on stderr
// ("migrate_state cpu_s USER SYS"), also at the exit with status 75 that
// ends the source of a migration.
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "ckpt/ckpt.hpp"
#if defined(__unix__)
#include <sys/resource.h>
#endif

namespace {

std::uint64_t Record(std::uint64_t i) {
  std::uint64_t t = i >> 4, sensor = i & 15;
  std::uint64_t noise = ((i * 2654435761u) >> 13) & 7;
  std::uint64_t value = 1000 + 100 * sensor + ((t >> 10) % 200) + noise;
  return (t & 0xffffffffu) | (sensor << 32) | (value << 48);
}

// The CPU this process used, on stderr at exit (also at the exit with status
// 75 after a migration): the benchmark's source-side CPU of the checkpoint.
void PrintCpu() {
#if defined(__unix__)
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::fprintf(stderr, "migrate_state cpu_s %.3f %.3f\n", ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
               ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
#endif
}

volatile std::sig_atomic_t verify_requested = 0;

extern "C" void OnVerify(int) {
  verify_requested = 1;
}

}  // namespace

int main(int argc, char** argv) {
  ckpt::Session s(argc, argv);
  std::atexit(PrintCpu);
  std::uint64_t mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1024;
  double seconds = argc > 2 && argv[2][0] != '-' ? std::strtod(argv[2], nullptr) : 900;
  auto& ticks = s.var("ticks", std::uint64_t{0});
  auto& log = s.var("log", std::vector<std::uint64_t>());
  s.stage("fill", [&] {
    log.resize(mib * (1u << 20) / sizeof(std::uint64_t));
    for (std::uint64_t i = 0; i < log.size(); ++i) log[i] = Record(i);
  });
#ifdef SIGUSR1
  std::signal(SIGUSR1, OnVerify);
#endif
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  bool announced = false;
  while (std::chrono::steady_clock::now() < end) {
    ++ticks;
    s.safepoint();
    if (!announced) {  // after the first safepoint: a migrated copy runs only once it was let go
      announced = true;
      std::printf("ready %zu words\n", log.size());
      std::fflush(stdout);
    }
    if (verify_requested) {
      verify_requested = 0;
      std::uint64_t bad = log.size();
      for (std::uint64_t i = 0; i < log.size() && bad == log.size(); ++i)
        if (log[i] != Record(i)) bad = i;
      if (bad == log.size())
        std::printf("verified %zu words\n", log.size());
      else
        std::printf("MISMATCH at %" PRIu64 "\n", bad);
      std::fflush(stdout);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::printf("done ticks=%" PRIu64 "\n", ticks.get());
  return 0;
}
