/* Producer/consumer over POSIX shared memory: a ring in a shm_open object,
 * guarded either by a process-shared pthread mutex and condition variables
 * living in that object ("mutex", the default) or by glibc sem_open named
 * semaphores ("sem"). Sequence-checked like the System V variant; the
 * objects must come back with their contents even where /dev/shm is empty.
 *   zdtm_posix_shm DIR [mutex|sem] */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "zdtm.h"

#define SLOTS 32
#define PATTERN_WORDS (32u * 1024u)
#define SENTINEL (~0ull)

struct ring {
  pthread_mutex_t mu;
  pthread_cond_t not_empty, not_full;
  uint64_t count;
  uint64_t slot[SLOTS];
  uint64_t head, tail;
  uint64_t pattern[PATTERN_WORDS];
};

static int use_sem;
static sem_t *s_empty, *s_full, *s_mutex;
static char name_ring[64], name_empty[64], name_full[64], name_mutex[64];

static void put(struct ring* r, uint64_t v) {
  if (use_sem) {
    while (sem_wait(s_empty) != 0) {
    }
    while (sem_wait(s_mutex) != 0) {
    }
  } else {
    pthread_mutex_lock(&r->mu);
    while (r->count == SLOTS) pthread_cond_wait(&r->not_full, &r->mu);
  }
  r->slot[r->head % SLOTS] = v;
  r->head++;
  if (use_sem) {
    sem_post(s_mutex);
    sem_post(s_full);
  } else {
    r->count++;
    pthread_cond_signal(&r->not_empty);
    pthread_mutex_unlock(&r->mu);
  }
}

static uint64_t take(struct ring* r) {
  if (use_sem) {
    while (sem_wait(s_full) != 0) {
    }
    while (sem_wait(s_mutex) != 0) {
    }
  } else {
    pthread_mutex_lock(&r->mu);
    while (r->count == 0) pthread_cond_wait(&r->not_empty, &r->mu);
  }
  uint64_t v = r->slot[r->tail % SLOTS];
  r->tail++;
  if (use_sem) {
    sem_post(s_mutex);
    sem_post(s_empty);
  } else {
    r->count--;
    pthread_cond_signal(&r->not_full);
    pthread_mutex_unlock(&r->mu);
  }
  return v;
}

static void unlink_all(void) {
  shm_unlink(name_ring);
  if (use_sem) {
    sem_unlink(name_empty);
    sem_unlink(name_full);
    sem_unlink(name_mutex);
  }
}

int main(int argc, char** argv) {
  zdtm_init(argc, argv);
  use_sem = argc > 2 && strcmp(argv[2], "sem") == 0;
  int me = getpid();
  snprintf(name_ring, sizeof name_ring, "/zdtm-%d-ring", me);
  snprintf(name_empty, sizeof name_empty, "/zdtm-%d-empty", me);
  snprintf(name_full, sizeof name_full, "/zdtm-%d-full", me);
  snprintf(name_mutex, sizeof name_mutex, "/zdtm-%d-mutex", me);
  char files[512];
  snprintf(files, sizeof files, "zdtm-%d-ring\nsem.zdtm-%d-empty\nsem.zdtm-%d-full\nsem.zdtm-%d-mutex\n", me,
           me, me, me);
  zdtm_write("shm_files", files); /* the harness removes what is left */
  int fd = shm_open(name_ring, O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0 || ftruncate(fd, sizeof(struct ring)) != 0) return zdtm_fail("shm_open: %s", strerror(errno));
  struct ring* r = mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (r == MAP_FAILED) return unlink_all(), zdtm_fail("mmap");
  close(fd);
  if (use_sem) {
    s_empty = sem_open(name_empty, O_CREAT | O_EXCL, 0600, SLOTS);
    s_full = sem_open(name_full, O_CREAT | O_EXCL, 0600, 0);
    s_mutex = sem_open(name_mutex, O_CREAT | O_EXCL, 0600, 1);
    if (s_empty == SEM_FAILED || s_full == SEM_FAILED || s_mutex == SEM_FAILED)
      return unlink_all(), zdtm_fail("sem_open: %s", strerror(errno));
  } else {
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&r->mu, &ma);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
    pthread_cond_init(&r->not_empty, &ca);
    pthread_cond_init(&r->not_full, &ca);
  }
  uint64_t s = 11;
  for (size_t i = 0; i < PATTERN_WORDS; i++) r->pattern[i] = zdtm_rand(&s);
  pid_t p = fork();
  if (p == 0) {
    uint64_t seq = 0;
    while (!zdtm_should_stop()) {
      put(r, ++seq);
      if (seq % 4 == 0) zdtm_sleep_ms(1);
    }
    put(r, SENTINEL);
    _exit(0);
  }
  uint64_t want = 1;
  int readied = 0;
  for (;;) {
    uint64_t v = take(r);
    if (v == SENTINEL) break;
    if (v != want)
      return unlink_all(),
             zdtm_fail("sequence: got %llu, expected %llu", (unsigned long long)v, (unsigned long long)want);
    want++;
    if (!readied && want > 50) {
      readied = 1;
      zdtm_ready();
    }
  }
  int st;
  if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    return unlink_all(), zdtm_fail("producer failed: %#x", st);
  if (r->head != r->tail) return unlink_all(), zdtm_fail("ring head/tail differ");
  if (use_sem) {
    int a, b, c;
    sem_getvalue(s_empty, &a);
    sem_getvalue(s_full, &b);
    sem_getvalue(s_mutex, &c);
    if (a != SLOTS || b != 0 || c != 1)
      return unlink_all(), zdtm_fail("semaphores %d %d %d at the end", a, b, c);
  } else if (pthread_mutex_trylock(&r->mu) != 0) {
    return unlink_all(), zdtm_fail("mutex still held at the end");
  }
  s = 11;
  for (size_t i = 0; i < PATTERN_WORDS; i++) {
    if (r->pattern[i] != zdtm_rand(&s)) return unlink_all(), zdtm_fail("shm pattern differs at %zu", i);
  }
  /* The object is still there under its name, with our contents. */
  fd = shm_open(name_ring, O_RDWR, 0);
  if (fd < 0) return unlink_all(), zdtm_fail("%s is gone from /dev/shm", name_ring);
  struct ring* again = mmap(NULL, sizeof *again, PROT_READ, MAP_SHARED, fd, 0);
  if (again == MAP_FAILED || again->head != r->head)
    return unlink_all(), zdtm_fail("%s is another object", name_ring);
  unlink_all();
  return zdtm_pass();
}
