/* Producer/consumer over System V IPC in the host IPC namespace: a child
 * produces sequence numbers into a ring in a SysV segment, the parent
 * consumes them; semaphores count empty and full slots and a mutex taken
 * with SEM_UNDO guards the ring. The producer also holds a permanent
 * SEM_UNDO adjustment (+1 on "alive", which starts at 5): once it exits
 * the kernel must undo exactly that, once. After the restore: no gap, no
 * duplicate, the pattern in the segment intact, semaphores consistent, and
 * no semop may ever fail with EINTR because of ckpt. With "hold" the
 * producer sleeps inside the critical section, so that dumps mostly find
 * the consumer blocked on the mutex the producer holds.
 *   zdtm_sysv_pc DIR [hold] */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/wait.h>

#include "zdtm.h"

#define SLOTS 64
#define PATTERN_WORDS (64u * 1024u)
#define SENTINEL (~0ull)
enum { EMPTY, FULL, MUTEX, ALIVE, NSEMS };

struct ring {
  uint64_t slot[SLOTS];
  uint64_t head, tail;
  uint64_t pattern[PATTERN_WORDS];
};

static int semid, quiet, lonely;
static int hold;

static int op(int num, int delta, int undo) {
  struct sembuf b = {(unsigned short)num, (short)delta, (short)(undo ? SEM_UNDO : 0)};
  while (semop(semid, &b, 1) != 0) {
    if (errno == EINTR) return -2; /* ckpt must never make this visible */
    return -1;
  }
  return 0;
}

static int produce(struct ring* r) {
  if (op(ALIVE, 1, 1) != 0) return 40;
  /* A second set, operated once and then left alone: it must still be
   * found (and its adjustment kept) by every later dump. */
  struct sembuf q = {0, -1, SEM_UNDO};
  if (semop(quiet, &q, 1) != 0) return 46;
  uint64_t seq = 0;
  for (;;) {
    int stop = zdtm_should_stop();
    int e = op(EMPTY, -1, 0);
    if (e != 0) return e == -2 ? 41 : 42;
    if (op(MUTEX, -1, 1) != 0) return 43;
    r->slot[r->head % SLOTS] = stop ? SENTINEL : ++seq;
    r->head++;
    if (hold) zdtm_sleep_ms(3);
    if (op(MUTEX, 1, 1) != 0) return 44;
    if (op(FULL, 1, 0) != 0) return 45;
    if (stop) return 0;
    if (seq % 4 == 0) zdtm_sleep_ms(1);
  }
}

static int cleanup(int shmid) {
  shmctl(shmid, IPC_RMID, NULL);
  semctl(semid, 0, IPC_RMID);
  semctl(quiet, 0, IPC_RMID);
  semctl(lonely, 0, IPC_RMID);
  return 0;
}

int main(int argc, char** argv) {
  zdtm_init(argc, argv);
  hold = argc > 2 && strcmp(argv[2], "hold") == 0;
  key_t key = (key_t)(0x5a000000 | (getpid() & 0xffffff));
  int shmid = shmget(key, sizeof(struct ring), IPC_CREAT | IPC_EXCL | 0600);
  if (shmid < 0) return zdtm_fail("shmget: %s", strerror(errno));
  semid = semget(key, NSEMS, IPC_CREAT | IPC_EXCL | 0600);
  if (semid < 0) return cleanup(shmid), zdtm_fail("semget: %s", strerror(errno));
  quiet = semget(key | 0x800000, 1, IPC_CREAT | IPC_EXCL | 0600);
  if (quiet < 0 || semctl(quiet, 0, SETVAL, 3) != 0) return cleanup(shmid), zdtm_fail("quiet set");
  /* A third set the consumer operates once, without SEM_UNDO: ckpt's own
   * semops while it reads adjustments must not hide it from later dumps. */
  lonely = semget(key | 0x400000, 1, IPC_CREAT | IPC_EXCL | 0600);
  struct sembuf once = {0, 1, 0};
  if (lonely < 0 || semop(lonely, &once, 1) != 0) return cleanup(shmid), zdtm_fail("lonely set");
  char keys[128];
  snprintf(keys, sizeof keys, "%d\n%d\n%d\n", key, key | 0x800000,
           key | 0x400000); /* the harness removes what is left */
  zdtm_write("ipc_keys", keys);
  unsigned short init[NSEMS] = {SLOTS, 0, 1, 5};
  if (semctl(semid, 0, SETALL, init) != 0) return cleanup(shmid), zdtm_fail("SETALL");
  struct ring* r = shmat(shmid, NULL, 0);
  /* A second, read-only attachment of the same segment in the consumer. */
  const struct ring* ro = shmat(shmid, NULL, SHM_RDONLY);
  if (ro == (void*)-1) return cleanup(shmid), zdtm_fail("shmat SHM_RDONLY");
  if (r == (void*)-1) return cleanup(shmid), zdtm_fail("shmat");
  uint64_t s = 7;
  for (size_t i = 0; i < PATTERN_WORDS; i++) r->pattern[i] = zdtm_rand(&s);
  pid_t p = fork();
  if (p == 0) _exit(produce(r));
  uint64_t want = 1;
  int readied = 0;
  for (;;) {
    int e = op(FULL, -1, 0);
    if (e != 0)
      return cleanup(shmid), zdtm_fail("consumer semop(FULL) %s", e == -2 ? "EINTR" : strerror(errno));
    if (op(MUTEX, -1, 1) != 0) return cleanup(shmid), zdtm_fail("consumer lock");
    uint64_t v = r->slot[r->tail % SLOTS];
    r->tail++;
    if (op(MUTEX, 1, 1) != 0) return cleanup(shmid), zdtm_fail("consumer unlock");
    if (op(EMPTY, 1, 0) != 0) return cleanup(shmid), zdtm_fail("consumer semop(EMPTY)");
    if (v == SENTINEL) break;
    if (v != want)
      return cleanup(shmid),
             zdtm_fail("sequence: got %llu, expected %llu", (unsigned long long)v, (unsigned long long)want);
    want++;
    if (!readied && want > 50) {
      readied = 1;
      zdtm_ready();
    }
  }
  int st;
  if (waitpid(p, &st, 0) != p) return cleanup(shmid), zdtm_fail("producer lost");
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return cleanup(shmid), zdtm_fail("producer status %#x", st);
  unsigned short v[NSEMS];
  if (semctl(semid, 0, GETALL, v) != 0) return cleanup(shmid), zdtm_fail("GETALL");
  if (v[ALIVE] != 5)
    return cleanup(shmid), zdtm_fail(
                               "alive is %u after the producer's exit: its SEM_UNDO was not "
                               "applied exactly once",
                               v[ALIVE]);
  int lv = semctl(lonely, 0, GETVAL);
  if (lv != 1)
    return cleanup(shmid), zdtm_fail("lonely set: %d (%s)", lv, lv < 0 ? strerror(errno) : "wrong value");
  int qv = semctl(quiet, 0, GETVAL);
  if (qv != 3) return cleanup(shmid), zdtm_fail("quiet set is %d after the producer's exit, not 3", qv);
  if (v[MUTEX] != 1 || v[FULL] != 0 || v[EMPTY] != SLOTS)
    return cleanup(shmid), zdtm_fail("semaphores %u %u %u at the end", v[EMPTY], v[FULL], v[MUTEX]);
  if (r->head != r->tail)
    return cleanup(shmid),
           zdtm_fail("ring head %llu tail %llu", (unsigned long long)r->head, (unsigned long long)r->tail);
  s = 7;
  for (size_t i = 0; i < PATTERN_WORDS; i++) {
    if (r->pattern[i] != zdtm_rand(&s)) return cleanup(shmid), zdtm_fail("segment pattern differs at %zu", i);
  }
  if (ro->head != r->head || memcmp(ro->pattern, r->pattern, sizeof r->pattern) != 0)
    return cleanup(shmid), zdtm_fail("the read-only attachment no longer shows the segment");
  char maps[64], line[512];
  snprintf(maps, sizeof maps, "/proc/%d/maps", getpid());
  FILE* mf = fopen(maps, "r");
  int ro_ok = 0;
  unsigned long lo, hi;
  char perm[8];
  while (mf && fgets(line, sizeof line, mf)) {
    if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perm) == 3 && lo == (unsigned long)ro) ro_ok = perm[1] == '-';
  }
  if (mf) fclose(mf);
  if (!ro_ok) return cleanup(shmid), zdtm_fail("the read-only attachment is writable or gone");
  struct shmid_ds ds;
  if (shmctl(shmid, IPC_STAT, &ds) != 0 || ds.shm_perm.__key != key)
    return cleanup(shmid), zdtm_fail("segment id %d no longer has key %#x", shmid, key);
  cleanup(shmid);
  return zdtm_pass();
}
