/* Counter: an in-memory sequence and a 16 MiB pattern (or MIB MiB); every
 * step appends the sequence number to a log. After the restore the pattern
 * must be intact and the log continuous.
 *   zdtm_counter DIR [MIB] */
#include <sys/mman.h>

#include "zdtm.h"

int main(int argc, char** argv) {
  zdtm_init(argc, argv);
  /* A session leader must lead a session again after the restore. */
  if (setsid() < 0) return zdtm_fail("setsid");
  size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 16;
  size_t n = (mib << 20) / 8;
  uint64_t* a = malloc(n * 8);
  uint64_t s = 42;
  for (size_t i = 0; i < n; i++) a[i] = zdtm_rand(&s);
  /* Data behind PROT_NONE: the process cannot read it itself, so the dump
   * must copy it another way, and the restore must keep the protection. */
  size_t hidden_len = 64 * 4096;
  uint64_t* hidden = mmap(NULL, hidden_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (hidden == MAP_FAILED) return zdtm_fail("mmap");
  uint64_t hs = 7;
  for (size_t i = 0; i < hidden_len / 8; i++) hidden[i] = zdtm_rand(&hs);
  if (mprotect(hidden, hidden_len, PROT_NONE) != 0) return zdtm_fail("mprotect");
  char logp[4096];
  snprintf(logp, sizeof logp, "%s/log", zdtm_dir);
  FILE* log = fopen(logp, "w");
  setvbuf(log, NULL, _IOLBF, 0);
  uint64_t seq = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  zdtm_ready();
  while (!zdtm_should_stop()) {
    fprintf(log, "%llu\n", (unsigned long long)seq++);
    zdtm_sleep_ms(5);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (getsid(0) != getpid() || getpgrp() != getpid()) return zdtm_fail("no longer a session leader");
  if (t1.tv_sec < t0.tv_sec) return zdtm_fail("CLOCK_MONOTONIC went backwards");
  if (mprotect(hidden, hidden_len, PROT_READ) != 0) return zdtm_fail("mprotect back");
  hs = 7;
  for (size_t i = 0; i < hidden_len / 8; i++) {
    if (hidden[i] != zdtm_rand(&hs)) return zdtm_fail("PROT_NONE data differs at word %zu", i);
  }
  s = 42;
  for (size_t i = 0; i < n; i++) {
    if (a[i] != zdtm_rand(&s)) return zdtm_fail("pattern differs at word %zu", i);
  }
  fclose(log);
  log = fopen(logp, "r");
  unsigned long long v, want = 0;
  while (fscanf(log, "%llu", &v) == 1) {
    if (v != want) return zdtm_fail("log has %llu where %llu was expected", v, want);
    want++;
  }
  if (want != seq) return zdtm_fail("log ends at %llu, counter is %llu", want, (unsigned long long)seq);
  return zdtm_pass();
}
