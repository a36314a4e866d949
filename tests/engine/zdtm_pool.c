/* Forked worker pool: the root hands task numbers to three workers through
 * one pipe and reads their answers from another; each worker writes its
 * answer into a shared anonymous mapping (inherited across fork) and bumps
 * counters in it and in a memfd mapping. Tasks are issued faster than the
 * workers take them, so the task pipe holds bytes at the dump. After the
 * restore every task issued must be answered exactly once, with the right
 * value in shared memory, and the shared patterns must be intact. */
#define _GNU_SOURCE
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "zdtm.h"

#define WORKERS 3
#define MAX_TASKS (1u << 20)
#define PATTERN_WORDS (256u * 1024u) /* 2 MiB of pattern */

struct shared {
  _Atomic uint64_t answered;
  uint64_t pattern[PATTERN_WORDS];
  uint32_t answer[MAX_TASKS];
};

static uint32_t answer_of(uint32_t t) {
  return t * 2654435761u ^ 0x5bd1e995u;
}

static int worker(struct shared* sh, _Atomic uint64_t* mfd_count, int tasks, int results) {
  uint32_t t;
  for (;;) {
    ssize_t n = read(tasks, &t, sizeof t);
    if (n == 0) return 0;
    if (n < 0) return 30;
    if (n != sizeof t) return 31;
    sh->answer[t] = answer_of(t);
    atomic_fetch_add(&sh->answered, 1);
    atomic_fetch_add(mfd_count, 1);
    if (write(results, &t, sizeof t) != sizeof t) return 32;
    zdtm_sleep_ms(1);
  }
}

int main(int argc, char** argv) {
  zdtm_init(argc, argv);
  struct shared* sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED) return zdtm_fail("mmap shared");
  uint64_t s = 99;
  for (size_t i = 0; i < PATTERN_WORDS; i++) sh->pattern[i] = zdtm_rand(&s);
  int mfd = memfd_create("zdtm-pool", 0);
  if (mfd < 0 || ftruncate(mfd, 8192) != 0) return zdtm_fail("memfd");
  char* mm = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
  if (mm == MAP_FAILED) return zdtm_fail("mmap memfd");
  strcpy(mm + 4096, "memfd pattern survives");
  _Atomic uint64_t* mfd_count = (_Atomic uint64_t*)mm;
  int tp[2], rp[2];
  if (pipe(tp) != 0 || pipe(rp) != 0) return zdtm_fail("pipe");
  pid_t w[WORKERS];
  for (int i = 0; i < WORKERS; i++) {
    w[i] = fork();
    if (w[i] == 0) {
      close(tp[1]);
      close(rp[0]);
      _exit(worker(sh, mfd_count, tp[0], rp[1]));
    }
  }
  close(tp[0]);
  close(rp[1]);
  fcntl(tp[1], F_SETFL, O_NONBLOCK);
  uint8_t* seen = calloc(MAX_TASKS, 1);
  uint32_t issued = 0, got = 0;
  zdtm_ready();
  while (!zdtm_should_stop() && issued < MAX_TASKS - 64) {
    /* Keep the task pipe well filled. */
    uint32_t batch[64];
    for (int i = 0; i < 64; i++) batch[i] = issued + i;
    ssize_t n = write(tp[1], batch, sizeof batch);
    if (n == (ssize_t)sizeof batch)
      issued += 64;
    else if (n > 0)
      return zdtm_fail("partial write of a task batch");
    struct pollfd pf = {rp[0], POLLIN, 0};
    if (poll(&pf, 1, 5) > 0) {
      uint32_t r[64];
      n = read(rp[0], r, sizeof r);
      if (n < 0 || n % 4 != 0) return zdtm_fail("result read %zd", n);
      for (ssize_t i = 0; i < n / 4; i++) {
        if (r[i] >= issued) return zdtm_fail("answer to task %u that was never issued", r[i]);
        if (seen[r[i]]++) return zdtm_fail("task %u answered twice", r[i]);
        got++;
      }
    }
  }
  close(tp[1]);
  fcntl(rp[0], F_SETFL, 0);
  for (;;) {
    uint32_t r[64];
    ssize_t n = read(rp[0], r, sizeof r);
    if (n == 0) break;
    if (n < 0 || n % 4 != 0) return zdtm_fail("result read %zd", n);
    for (ssize_t i = 0; i < n / 4; i++) {
      if (r[i] >= issued) return zdtm_fail("answer to task %u that was never issued", r[i]);
      if (seen[r[i]]++) return zdtm_fail("task %u answered twice", r[i]);
      got++;
    }
  }
  for (int i = 0; i < WORKERS; i++) {
    int st;
    if (waitpid(w[i], &st, 0) != w[i]) return zdtm_fail("worker %d lost", w[i]);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return zdtm_fail("worker %d status %#x", w[i], st);
  }
  if (got != issued) return zdtm_fail("%u tasks issued, %u answered", issued, got);
  for (uint32_t t = 0; t < issued; t++) {
    if (sh->answer[t] != answer_of(t)) return zdtm_fail("shared answer of task %u is wrong", t);
  }
  if (atomic_load(&sh->answered) != issued)
    return zdtm_fail("shared counter %llu, issued %u", (unsigned long long)sh->answered, issued);
  if (atomic_load(mfd_count) != issued) return zdtm_fail("memfd counter wrong");
  if (strcmp(mm + 4096, "memfd pattern survives") != 0) return zdtm_fail("memfd pattern lost");
  s = 99;
  for (size_t i = 0; i < PATTERN_WORDS; i++) {
    if (sh->pattern[i] != zdtm_rand(&s)) return zdtm_fail("shared pattern differs at %zu", i);
  }
  if (issued < 64 * 4) return zdtm_fail("only %u tasks issued", issued);
  return zdtm_pass();
}
