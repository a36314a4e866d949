/* A workload for bench/incremental_bench.py: MIB MiB of private memory,
 * every page written once, then RATE MB/s of page writes (one 8-byte store
 * per page, pages in a pseudo-random order) paced in 1 ms steps. Every
 * second it prints the page writes of that second and the microseconds
 * they took, so that the driver can see the cost of tracking per write.
 *   dirty_worker MIB RATE_MB_PER_S */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  size_t pages = (size_t)atol(argv[1]) * 256;
  double rate = atof(argv[2]) * 1e6 / 4096; /* pages per second */
  volatile uint64_t* mem =
      mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return 1;
  for (size_t p = 0; p < pages; ++p) mem[p * 512] = p + 1;
  printf("ready\n");
  fflush(stdout);
  uint64_t x = 1, done = 0, second_done = 0;
  double start = now(), second = start, busy = 0;
  for (;;) {
    double t = now();
    uint64_t due = (uint64_t)((t - start) * rate);
    for (; done < due; ++done) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      mem[((x >> 33) % pages) * 512 + 1] = done;
    }
    double t2 = now();
    busy += t2 - t;
    if (t2 - second >= 1.0) {
      printf("%llu %.0f\n", (unsigned long long)(done - second_done), busy * 1e6);
      fflush(stdout);
      second_done = done;
      second = t2;
      busy = 0;
    }
    struct timespec d = {0, 1000000};
    nanosleep(&d, NULL);
  }
}
