/* Event files across a dump and restore (issue 12): eventfd (counter,
 * semaphore mode, a duplicate sharing it), signalfd (a signal pending from
 * before the dump, one sent after the restore), timerfd (periodic and still
 * ticking, one-shot an hour away, an absolute CLOCK_REALTIME deadline, one
 * expiration not yet read) and epoll (five watches with their events and
 * data, then modified and removed by the process's own descriptor numbers).
 * With "tree": a child shares an eventfd with its parent and counts every
 * write; the parent's reads must add up to the child's writes. With
 * "shared-epoll": parent and child wait on one epoll file (created before
 * the fork) for each other's eventfd, ping-pong, and go on doing so after
 * the last restore. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#include "zdtm.h"

#define DUP_FD 100

static int efd, sem, sfd, tfd_tick, tfd_hour, tfd_wall, tfd_expired, ep, pr, pw;

static long long left_ms(int fd) {
  struct itimerspec its;
  if (timerfd_gettime(fd, &its) != 0) return -1;
  return its.it_value.tv_sec * 1000LL + its.it_value.tv_nsec / 1000000;
}

static int setup(void) {
  efd = eventfd(0, EFD_NONBLOCK);
  uint64_t seven = 7;
  if (write(efd, &seven, 8) != 8) return zdtm_fail("eventfd write");
  if (dup2(efd, DUP_FD) != DUP_FD) return zdtm_fail("dup2");
  sem = eventfd(3, EFD_NONBLOCK | EFD_SEMAPHORE);
  sigset_t m;
  sigemptyset(&m);
  sigaddset(&m, SIGUSR1);
  sigaddset(&m, SIGUSR2);
  sigprocmask(SIG_BLOCK, &m, NULL);
  sfd = signalfd(-1, &m, SFD_NONBLOCK);
  union sigval v = {.sival_int = 4242};
  sigqueue(getpid(), SIGUSR2, v);
  tfd_tick = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  struct itimerspec tick = {{0, 20000000}, {0, 20000000}};
  timerfd_settime(tfd_tick, 0, &tick, NULL);
  tfd_hour = timerfd_create(CLOCK_MONOTONIC, 0);
  struct itimerspec hour = {{0, 0}, {3600, 0}};
  timerfd_settime(tfd_hour, 0, &hour, NULL);
  tfd_wall = timerfd_create(CLOCK_REALTIME, 0);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  struct itimerspec wall = {{0, 0}, {now.tv_sec + 3600, now.tv_nsec}};
  timerfd_settime(tfd_wall, TFD_TIMER_ABSTIME, &wall, NULL);
  tfd_expired = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  struct itimerspec once = {{0, 0}, {0, 1000000}};
  timerfd_settime(tfd_expired, 0, &once, NULL);
  int p[2];
  if (pipe(p) != 0) return zdtm_fail("pipe");
  pr = p[0];
  pw = p[1];
  if (write(pw, "x", 1) != 1) return zdtm_fail("pipe write");
  ep = epoll_create1(0);
  struct {
    int fd;
    uint32_t ev;
    uint64_t data;
  } w[] = {{efd, EPOLLIN, 0x1111},
           {pr, EPOLLIN | EPOLLET, 0x2222},
           {sfd, EPOLLIN, 0x3333},
           {tfd_tick, EPOLLIN, 0x4444},
           {pw, EPOLLIN, 0x5555}};
  for (unsigned i = 0; i < sizeof w / sizeof w[0]; i++) {
    struct epoll_event e = {.events = w[i].ev, .data.u64 = w[i].data};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, w[i].fd, &e) != 0) return zdtm_fail("epoll_ctl add %d", i);
  }
  /* Changed after it was added: the restore must keep the change. */
  struct epoll_event out = {.events = EPOLLOUT, .data.u64 = 0x5555};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, pw, &out) != 0) return zdtm_fail("epoll_ctl mod");
  return 0;
}

static int check_epoll(void) {
  struct epoll_event ev[16];
  int n = epoll_wait(ep, ev, 16, 1000);
  uint32_t want_in[] = {0x1111, 0x2222, 0x3333, 0x4444};
  for (unsigned i = 0; i < 4; i++) {
    int seen = 0;
    for (int j = 0; j < n; j++) seen |= ev[j].data.u64 == want_in[i] && (ev[j].events & EPOLLIN);
    if (!seen) return zdtm_fail("epoll did not report data %#x readable (%d events)", want_in[i], n);
  }
  int out = 0;
  for (int j = 0; j < n; j++) {
    if (ev[j].data.u64 == 0x5555) out = (ev[j].events & EPOLLOUT) && !(ev[j].events & EPOLLIN);
  }
  if (!out) return zdtm_fail("epoll lost the modified watch (EPOLLOUT, 0x5555)");
  /* The watches are keyed by the process's own descriptor numbers. */
  struct epoll_event e = {.events = EPOLLIN, .data.u64 = 0x6666};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, pr, &e) != 0)
    return zdtm_fail("EPOLL_CTL_MOD after restore: %s", strerror(errno));
  if (epoll_ctl(ep, EPOLL_CTL_DEL, efd, NULL) != 0)
    return zdtm_fail("EPOLL_CTL_DEL after restore: %s", strerror(errno));
  if (epoll_ctl(ep, EPOLL_CTL_ADD, tfd_hour, &e) != 0) return zdtm_fail("EPOLL_CTL_ADD after restore");
  n = epoll_wait(ep, ev, 16, 0);
  for (int j = 0; j < n; j++) {
    if (ev[j].data.u64 == 0x1111) return zdtm_fail("a removed watch still reports");
  }
  return 0;
}

static int check_signals_and_timers(void) {
  struct signalfd_siginfo si;
  int usr1 = 0, usr2 = -1;
  while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
    if (si.ssi_signo == SIGUSR1) usr1 = 1;
    if (si.ssi_signo == SIGUSR2) usr2 = si.ssi_int;
  }
  if (usr2 != 4242) return zdtm_fail("signalfd: pending SIGUSR2 value %d, expected 4242", usr2);
  if (!usr1) return zdtm_fail("signalfd: SIGUSR1 sent after the restore not read");
  uint64_t t;
  if (read(tfd_expired, &t, 8) != 8 || t != 1) return zdtm_fail("the unread expiration was lost");
  if (read(tfd_tick, &t, 8) != 8) return zdtm_fail("periodic timerfd: no expiration");
  zdtm_sleep_ms(200);
  if (read(tfd_tick, &t, 8) != 8 || t < 1) return zdtm_fail("the periodic timerfd stopped ticking");
  long long h = left_ms(tfd_hour), w = left_ms(tfd_wall);
  if (h < 3000 * 1000LL || h > 3600 * 1000LL) return zdtm_fail("one-shot timerfd: %lld ms left", h);
  if (w < 3000 * 1000LL || w > 3600 * 1000LL) return zdtm_fail("absolute timerfd: %lld ms left", w);
  return 0;
}

static int check_eventfds(void) {
  uint64_t v;
  if (read(efd, &v, 8) != 8 || v != 7)
    return zdtm_fail("eventfd counter %llu, expected 7", (unsigned long long)v);
  uint64_t five = 5;
  if (write(DUP_FD, &five, 8) != 8) return zdtm_fail("write to the duplicate");
  if (read(efd, &v, 8) != 8 || v != 5) return zdtm_fail("the duplicate no longer shares the eventfd");
  for (int i = 0; i < 3; i++) {
    if (read(sem, &v, 8) != 8 || v != 1) return zdtm_fail("semaphore eventfd read %d", i);
  }
  if (read(sem, &v, 8) != -1 || errno != EAGAIN) return zdtm_fail("semaphore eventfd: more than 3");
  return 0;
}

/* The count the child left in DIR/written. */
static int read_written(unsigned long long* written) {
  char p[4096];
  snprintf(p, sizeof p, "%s/written", zdtm_dir);
  FILE* f = fopen(p, "r");
  if (!f) return -1;
  int ok = fscanf(f, "%llu", written) == 1;
  fclose(f);
  return ok ? 0 : -1;
}

/* The tree case: the child writes 1 to a shared eventfd every 2 ms and, at
 * the end, its count to DIR/written; the parent sums what it reads. */
static int tree_main(void) {
  int shared = eventfd(0, EFD_NONBLOCK);
  pid_t child = fork();
  if (child == 0) {
    uint64_t one = 1, n = 0;
    while (!zdtm_should_stop()) {
      if (write(shared, &one, 8) == 8) n++;
      zdtm_sleep_ms(2);
    }
    char b[64];
    snprintf(b, sizeof b, "%llu\n", (unsigned long long)n);
    zdtm_write("written", b);
    _exit(0);
  }
  zdtm_ready();
  uint64_t sum = 0, v;
  while (!zdtm_should_stop()) {
    if (read(shared, &v, 8) == 8) sum += v;
    zdtm_sleep_ms(5);
  }
  int st;
  waitpid(child, &st, 0);
  if (read(shared, &v, 8) == 8) sum += v;
  unsigned long long written = 0;
  if (read_written(&written) != 0) return zdtm_fail("the child wrote no count");
  if (written == 0 || sum != written)
    return zdtm_fail("the parent read %llu, the child wrote %llu", (unsigned long long)sum, written);
  return zdtm_pass();
}

/* The shared-epoll case. One epoll file, created before the fork and used by
 * both: tag 0xA (parent -> child eventfd) and tag 0xB (child -> parent).
 * Level-triggered, so a side that sees only the other's tag waits 1 ms. */
static int wait_tag(int ep, uint64_t tag, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms;) {
    struct epoll_event ev[4];
    int n = epoll_wait(ep, ev, 4, 50);
    if (n < 0 && errno != EINTR) return -1;
    for (int i = 0; i < n; i++) {
      if (ev[i].data.u64 == tag && (ev[i].events & EPOLLIN)) return 0;
      if (ev[i].data.u64 != 0xA && ev[i].data.u64 != 0xB) return -2;
    }
    if (n > 0) zdtm_sleep_ms(1);
    waited += n > 0 ? 1 : 50;
  }
  return -1;
}

static int shared_epoll_main(void) {
  int ep = epoll_create1(0), a = eventfd(0, EFD_NONBLOCK), b = eventfd(0, EFD_NONBLOCK);
  struct epoll_event ea = {.events = EPOLLIN, .data.u64 = 0xA}, eb = {.events = EPOLLIN, .data.u64 = 0xB};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, a, &ea) != 0 || epoll_ctl(ep, EPOLL_CTL_ADD, b, &eb) != 0)
    return zdtm_fail("epoll set-up: %s", strerror(errno));
  pid_t child = fork();
  if (child == 0) {
    /* Answers every ping; ends when the parent closes the game (a = 1000). */
    uint64_t v, one = 1, n = 0;
    for (;;) {
      int r = wait_tag(ep, 0xA, 3600 * 1000);
      if (r != 0) _exit(10 - r);
      if (read(a, &v, 8) != 8) continue;
      if (v == 1000) break;
      if (write(b, &one, 8) == 8) n++;
    }
    /* The child's own numbers still key the watches of the shared file. */
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = 0xA};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, a, &e) != 0) _exit(20);
    char t[64];
    snprintf(t, sizeof t, "%llu\n", (unsigned long long)n);
    zdtm_write("written", t);
    _exit(0);
  }
  zdtm_ready();
  uint64_t v, one = 1, rounds = 0, after = 0;
  while (after < 50) {
    if (zdtm_should_stop()) after++;
    if (write(a, &one, 8) != 8)
      return zdtm_fail("ping %llu: %s", (unsigned long long)rounds, strerror(errno));
    int r = wait_tag(ep, 0xB, 5000);
    if (r == -2) return zdtm_fail("the shared epoll reported data it was never given");
    if (r != 0)
      return zdtm_fail("no answer to ping %llu through the shared epoll", (unsigned long long)rounds);
    if (read(b, &v, 8) != 8 || v != 1)
      return zdtm_fail("answer %llu: read %llu", (unsigned long long)rounds, (unsigned long long)v);
    rounds++;
    zdtm_sleep_ms(2);
  }
  uint64_t end = 1000;
  if (write(a, &end, 8) != 8) return zdtm_fail("end: %s", strerror(errno));
  int st;
  waitpid(child, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return zdtm_fail("the child ended with status %#x", st);
  if (epoll_ctl(ep, EPOLL_CTL_DEL, b, NULL) != 0) return zdtm_fail("EPOLL_CTL_DEL: %s", strerror(errno));
  unsigned long long written = 0;
  if (read_written(&written) != 0) return zdtm_fail("the child wrote no count");
  if (written != rounds)
    return zdtm_fail("the parent counted %llu rounds, the child %llu", (unsigned long long)rounds, written);
  return zdtm_pass();
}

int main(int argc, char** argv) {
  zdtm_init(argc, argv);
  if (argc > 2 && strcmp(argv[2], "tree") == 0) return tree_main();
  if (argc > 2 && strcmp(argv[2], "shared-epoll") == 0) return shared_epoll_main();
  if (setup() != 0) return 1;
  zdtm_sleep_ms(20); /* the one-shot expires, unread */
  zdtm_ready();
  while (!zdtm_should_stop()) zdtm_sleep_ms(5);
  if (check_epoll() || check_signals_and_timers() || check_eventfds()) return 1;
  return zdtm_pass();
}
