/* Calls the vDSO's clock_gettime and gettimeofday in a loop: after the
 * restore (with the vDSO moved, or a proxy in front of a new one) time must
 * still move forward and agree with the kernel's. */
#include <sys/syscall.h>
#include <sys/time.h>

#include "zdtm.h"

int main(int argc, char** argv) {
  zdtm_init(argc, argv);
  struct timespec last = {0, 0};
  long calls = 0;
  zdtm_ready();
  while (!zdtm_should_stop()) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec < last.tv_sec || (now.tv_sec == last.tv_sec && now.tv_nsec < last.tv_nsec))
      return zdtm_fail("CLOCK_MONOTONIC went backwards");
    last = now;
    calls++;
    zdtm_sleep_ms(1);
  }
  struct timespec v, k;
  clock_gettime(CLOCK_REALTIME, &v);
  syscall(SYS_clock_gettime, CLOCK_REALTIME, &k);
  long long d = (k.tv_sec - v.tv_sec) * 1000000000LL + (k.tv_nsec - v.tv_nsec);
  if (d < 0 || d > 1000000000LL) return zdtm_fail("vDSO time and kernel time differ by %lld ns", d);
  struct timeval tv;
  gettimeofday(&tv, NULL);
  if (tv.tv_sec < k.tv_sec - 1) return zdtm_fail("gettimeofday is off");
  if (calls < 2) return zdtm_fail("loop did not run");
  return zdtm_pass();
}
