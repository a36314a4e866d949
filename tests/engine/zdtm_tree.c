/* Process tree: the root (a session leader) has a child in its group with a
 * grandchild that leads its own group, a child that leads a new session
 * with a grandchild in it, and a child that exited before the dump (a
 * zombie with status 7). After the restore every process must have its old
 * PID, parent, group and session, its memory intact, and the root must
 * reap the zombie's status and every child's success. */
#include <signal.h>
#include <sys/wait.h>

#include "zdtm.h"

/* Runs until DIR/stop, then checks its identity and memory; exit 0 if all
 * held, else a code saying what changed. */
static int member_loop(const char* tag, pid_t child) {
  pid_t pid = getpid(), ppid = getppid(), pgid = getpgrp(), sid = getsid(0);
  size_t n = (1u << 20) / 8;
  uint64_t* a = malloc(n * 8);
  uint64_t s = (uint64_t)pid * 7919u + 1;
  for (size_t i = 0; i < n; i++) a[i] = zdtm_rand(&s);
  char p[4096];
  snprintf(p, sizeof p, "%s/ready.%s", zdtm_dir, tag);
  FILE* f = fopen(p, "w");
  if (f) fclose(f);
  while (!zdtm_should_stop()) zdtm_sleep_ms(10);
  if (getpid() != pid) return 11;
  if (getppid() != ppid) return 12;
  if (getpgrp() != pgid) return 13;
  if (getsid(0) != sid) return 14;
  s = (uint64_t)pid * 7919u + 1;
  for (size_t i = 0; i < n; i++) {
    if (a[i] != zdtm_rand(&s)) return 15;
  }
  if (child > 0) {
    int st;
    if (waitpid(child, &st, 0) != child) return 16;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return 17;
  }
  return 0;
}

static int wait_ready(const char* tag) {
  char p[4096];
  snprintf(p, sizeof p, "%s/ready.%s", zdtm_dir, tag);
  for (int i = 0; i < 3000; i++) {
    if (access(p, F_OK) == 0) return 1;
    zdtm_sleep_ms(10);
  }
  return 0;
}

int main(int argc, char** argv) {
  zdtm_init(argc, argv);
  if (setsid() < 0) return zdtm_fail("setsid");
  pid_t a = fork();
  if (a == 0) {
    pid_t a1 = fork();
    if (a1 == 0) {
      if (setpgid(0, 0) != 0) _exit(20);
      _exit(member_loop("a1", 0));
    }
    _exit(member_loop("a", a1));
  }
  pid_t b = fork();
  if (b == 0) {
    if (setsid() < 0) _exit(21);
    pid_t b1 = fork();
    if (b1 == 0) _exit(member_loop("b1", 0));
    _exit(member_loop("b", b1));
  }
  pid_t z = fork();
  if (z == 0) _exit(7);
  siginfo_t si;
  memset(&si, 0, sizeof si);
  if (waitid(P_PID, (id_t)z, &si, WEXITED | WNOWAIT) != 0) return zdtm_fail("waitid zombie");
  const char* tags[] = {"a", "a1", "b", "b1"};
  for (int i = 0; i < 4; i++) {
    if (!wait_ready(tags[i])) return zdtm_fail("member %s never became ready", tags[i]);
  }
  pid_t me = getpid();
  zdtm_ready();
  while (!zdtm_should_stop()) zdtm_sleep_ms(10);
  if (getpid() != me || getsid(0) != me || getpgrp() != me) return zdtm_fail("root lost its identity");
  int st;
  if (waitpid(z, &st, 0) != z) return zdtm_fail("zombie %d is not our child any more", z);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 7) return zdtm_fail("zombie status is %#x, not exit 7", st);
  if (waitpid(a, &st, 0) != a) return zdtm_fail("child a lost");
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return zdtm_fail("child a (or its child) reports %#x", st);
  if (waitpid(b, &st, 0) != b) return zdtm_fail("child b lost");
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return zdtm_fail("child b (or its child) reports %#x", st);
  return zdtm_pass();
}
