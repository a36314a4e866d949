/* A worker pool: each thread keeps a counter, a thread-local value and its
 * TID; after the restore every thread must still have its TID and TLS,
 * keep counting, and be joinable (pthread_join needs the TID address). */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#include "zdtm.h"

#define N 4
static __thread uint64_t tls_value;
static atomic_ullong counters[N];
static pid_t tids[N];
static atomic_int stop;
static char errors[N][256];

static void* worker(void* arg) {
  int id = (int)(intptr_t)arg;
  tls_value = 1000 + id;
  tids[id] = (pid_t)syscall(SYS_gettid);
  char name[16];
  snprintf(name, sizeof name, "worker-%d", id);
  pthread_setname_np(pthread_self(), name);
  void* robust_before;
  size_t robust_len;
  syscall(SYS_get_robust_list, 0, &robust_before, &robust_len);
  sigset_t m;
  sigemptyset(&m);
  sigaddset(&m, SIGRTMIN + id);
  pthread_sigmask(SIG_BLOCK, &m, NULL);
  double acc = id; /* FPU state must survive too */
  while (!atomic_load(&stop)) {
    acc = acc * 1.0000001 + 0.5;
    atomic_fetch_add(&counters[id], 1);
    zdtm_sleep_ms(1);
  }
  if (tls_value != 1000 + (uint64_t)id)
    snprintf(errors[id], 256, "thread %d TLS is %llu", id, (unsigned long long)tls_value);
  if ((pid_t)syscall(SYS_gettid) != tids[id]) snprintf(errors[id], 256, "thread %d TID changed", id);
  sigset_t now;
  pthread_sigmask(SIG_BLOCK, NULL, &now);
  if (!sigismember(&now, SIGRTMIN + id)) snprintf(errors[id], 256, "thread %d lost its signal mask", id);
  if (!(acc > id)) snprintf(errors[id], 256, "thread %d FPU value wrong", id);
  char now_name[16] = {0};
  pthread_getname_np(pthread_self(), now_name, sizeof now_name);
  if (strcmp(now_name, name) != 0) snprintf(errors[id], 256, "thread %d is named '%s'", id, now_name);
  void* robust_after;
  syscall(SYS_get_robust_list, 0, &robust_after, &robust_len);
  if (robust_after != robust_before) snprintf(errors[id], 256, "thread %d lost its robust list", id);
  return NULL;
}

int main(int argc, char** argv) {
  zdtm_init(argc, argv);
  pthread_t th[N];
  for (int i = 0; i < N; i++) pthread_create(&th[i], NULL, worker, (void*)(intptr_t)i);
  zdtm_sleep_ms(50);
  zdtm_ready();
  while (!zdtm_should_stop()) zdtm_sleep_ms(5);
  unsigned long long before[N];
  for (int i = 0; i < N; i++) before[i] = atomic_load(&counters[i]);
  for (int i = 0; i < N; i++) {
    for (int t = 0; t < 500 && atomic_load(&counters[i]) <= before[i]; t++) zdtm_sleep_ms(10);
    if (atomic_load(&counters[i]) <= before[i]) return zdtm_fail("thread %d stopped counting", i);
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < N; i++) {
    if (errors[i][0]) return zdtm_fail("%s", errors[i]);
  }
  return zdtm_pass();
}
