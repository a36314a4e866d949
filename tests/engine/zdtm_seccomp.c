/* A process under a seccomp filter (allow-all): the engine cannot restore
 * seccomp filters yet, so a dump must refuse it clearly and leave it
 * running untouched. */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>

#include "zdtm.h"

int main(int argc, char** argv) {
  zdtm_init(argc, argv);
  struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
  struct sock_fprog prog = {.len = 1, .filter = allow};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return zdtm_fail("PR_SET_NO_NEW_PRIVS");
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) return zdtm_fail("PR_SET_SECCOMP");
  zdtm_ready();
  while (!zdtm_should_stop()) zdtm_sleep_ms(5);
  return zdtm_pass();
}
