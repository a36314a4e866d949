/* POSIX timers across a dump and restore (issue 12): a periodic
 * CLOCK_MONOTONIC timer signalling SIGUSR1 with a value, a timer aimed at
 * one thread (SIGEV_THREAD_ID), a one-shot CLOCK_REALTIME timer an hour away
 * without a signal (SIGEV_NONE), and a gap in the ids (a deleted timer).
 * After the restore every timer_t still names its timer, the periodic ones
 * keep firing with their value and target, the hour is still ahead, and a
 * new timer gets a fresh id. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>

#include "zdtm.h"

static volatile sig_atomic_t ticks, bad_value, thread_ticks, wrong_thread;
static volatile int worker_tid;
static timer_t periodic, to_thread, hour, gone;

static void on_usr1(int sig, siginfo_t* si, void* uc) {
  (void)sig;
  (void)uc;
  if (si->si_value.sival_int != 0x1234 || si->si_code != SI_TIMER) bad_value = 1;
  ticks++;
}

static void on_usr2(int sig, siginfo_t* si, void* uc) {
  (void)sig;
  (void)uc;
  if (si->si_value.sival_int != 0x77) bad_value = 2;
  if ((int)syscall(SYS_gettid) != worker_tid) wrong_thread = 1;
  thread_ticks++;
}

static void* worker(void* arg) {
  (void)arg;
  worker_tid = (int)syscall(SYS_gettid);
  for (;;) pause();
  return NULL;
}

static long long left_ms(timer_t t) {
  struct itimerspec its;
  if (timer_gettime(t, &its) != 0) return -1;
  return its.it_value.tv_sec * 1000LL + its.it_value.tv_nsec / 1000000;
}

static int setup(void) {
  struct sigaction sa = {0};
  sa.sa_sigaction = on_usr1;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);
  sa.sa_sigaction = on_usr2;
  sigaction(SIGUSR2, &sa, NULL);
  pthread_t th;
  pthread_create(&th, NULL, worker, NULL);
  while (worker_tid == 0) zdtm_sleep_ms(1);
  /* Only the worker takes SIGUSR2 (it was created before this mask). */
  sigset_t m;
  sigemptyset(&m);
  sigaddset(&m, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &m, NULL);
  struct sigevent ev = {0};
  ev.sigev_notify = SIGEV_SIGNAL;
  ev.sigev_signo = SIGUSR1;
  ev.sigev_value.sival_int = 0x1234;
  if (timer_create(CLOCK_MONOTONIC, &ev, &periodic) != 0) return zdtm_fail("timer_create periodic");
  if (timer_create(CLOCK_MONOTONIC, &ev, &gone) != 0) return zdtm_fail("timer_create gone");
  struct sigevent tev = {0};
  tev.sigev_notify = SIGEV_THREAD_ID;
  tev.sigev_signo = SIGUSR2;
  tev.sigev_value.sival_int = 0x77;
  tev._sigev_un._tid = worker_tid;
  if (timer_create(CLOCK_MONOTONIC, &tev, &to_thread) != 0) return zdtm_fail("timer_create thread");
  struct sigevent nev = {0};
  nev.sigev_notify = SIGEV_NONE;
  if (timer_create(CLOCK_REALTIME, &nev, &hour) != 0) return zdtm_fail("timer_create hour");
  timer_delete(gone);
  struct itimerspec p = {{0, 10000000}, {0, 10000000}}, t = {{0, 15000000}, {0, 15000000}},
                    h = {{0, 0}, {3600, 0}};
  timer_settime(periodic, 0, &p, NULL);
  timer_settime(to_thread, 0, &t, NULL);
  timer_settime(hour, 0, &h, NULL);
  return 0;
}

int main(int argc, char** argv) {
  zdtm_init(argc, argv);
  if (setup() != 0) return 1;
  zdtm_ready();
  while (!zdtm_should_stop()) zdtm_sleep_ms(5);
  int t0 = ticks, w0 = thread_ticks;
  for (int i = 0; i < 500 && (ticks < t0 + 5 || thread_ticks < w0 + 5); i++) zdtm_sleep_ms(10);
  if (ticks < t0 + 5) return zdtm_fail("the periodic POSIX timer stopped (%d -> %d)", t0, (int)ticks);
  if (thread_ticks < w0 + 5)
    return zdtm_fail("the thread's POSIX timer stopped (%d -> %d)", w0, (int)thread_ticks);
  if (bad_value) return zdtm_fail("a timer signal carried the wrong value or code (%d)", (int)bad_value);
  if (wrong_thread) return zdtm_fail("the thread's timer signalled another thread");
  long long left = left_ms(hour);
  if (left < 3000 * 1000LL || left > 3600 * 1000LL) return zdtm_fail("the hour timer has %lld ms left", left);
  if (timer_getoverrun(periodic) < 0) return zdtm_fail("timer_getoverrun on the periodic timer");
  struct itimerspec its;
  if (timer_gettime(gone, &its) == 0) return zdtm_fail("the deleted timer's id came back");
  timer_t fresh;
  struct sigevent nev = {0};
  nev.sigev_notify = SIGEV_NONE;
  if (timer_create(CLOCK_MONOTONIC, &nev, &fresh) != 0) return zdtm_fail("a new timer cannot be created");
  if (fresh == periodic || fresh == to_thread || fresh == hour) return zdtm_fail("a new timer reused an id");
  return zdtm_pass();
}
