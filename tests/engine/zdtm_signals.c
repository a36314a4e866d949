/* Signal handlers, an alternate stack, an interval timer, a blocked signal
 * pending with a value: after the restore SIGUSR1 (sent by the test driver) runs its
 * handler on the alternate stack, and the pending SIGUSR2 arrives with its
 * value once unblocked. */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/time.h>

#include "zdtm.h"

static volatile sig_atomic_t usr1, usr2_value, on_altstack, alarms;
static char altstack[65536];

static void on_usr1(int sig, siginfo_t* si, void* uc) {
  (void)sig;
  (void)si;
  (void)uc;
  char here;
  if (&here >= altstack && &here < altstack + sizeof altstack) on_altstack = 1;
  usr1++;
}
static void on_alarm(int sig) {
  (void)sig;
  alarms++;
}
static void on_usr2(int sig, siginfo_t* si, void* uc) {
  (void)sig;
  (void)uc;
  usr2_value = si->si_value.sival_int;
}

int main(int argc, char** argv) {
  zdtm_init(argc, argv);
  stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
  sigaltstack(&ss, NULL);
  struct sigaction sa = {0};
  sa.sa_sigaction = on_usr1;
  sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  sigaction(SIGUSR1, &sa, NULL);
  sa.sa_sigaction = on_usr2;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGUSR2, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  /* An interval timer must keep ticking after the restore. */
  struct sigaction al = {0};
  al.sa_handler = on_alarm;
  al.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &al, NULL);
  struct itimerval it = {{0, 20000}, {0, 20000}};
  setitimer(ITIMER_REAL, &it, NULL);
  sigset_t m;
  sigemptyset(&m);
  sigaddset(&m, SIGUSR2);
  sigprocmask(SIG_BLOCK, &m, NULL);
  union sigval v = {.sival_int = 4242};
  sigqueue(getpid(), SIGUSR2, v);
  zdtm_ready();
  while (!zdtm_should_stop()) zdtm_sleep_ms(5);
  int ticks = alarms;
  for (int i = 0; i < 500 && alarms <= ticks; i++) zdtm_sleep_ms(10); /* up to 5 s on a busy machine */
  if (alarms <= ticks) return zdtm_fail("the interval timer stopped (%d ticks)", (int)alarms);
  if (usr1 == 0) return zdtm_fail("SIGUSR1 handler never ran");
  if (!on_altstack) return zdtm_fail("SIGUSR1 handler did not run on the alternate stack");
  if (usr2_value != 0) return zdtm_fail("SIGUSR2 delivered while blocked");
  sigprocmask(SIG_UNBLOCK, &m, NULL);
  if (usr2_value != 4242) return zdtm_fail("pending SIGUSR2 value %d, expected 4242", (int)usr2_value);
  struct sigaction now;
  sigaction(SIGPIPE, NULL, &now);
  if (now.sa_handler != SIG_IGN) return zdtm_fail("SIGPIPE disposition lost");
  return zdtm_pass();
}
