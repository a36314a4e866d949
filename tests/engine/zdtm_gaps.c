/* Stall meter: sleeps 1 ms in a loop and logs every gap between two
 * wake-ups longer than 2 ms ("END_NS GAP_NS", CLOCK_MONOTONIC) to
 * DIR/gaps.PID, so a test can see how long something stopped it.
 *   zdtm_gaps --now             prints CLOCK_MONOTONIC in ns
 *   zdtm_gaps DIR [--fork] [--socket] [--timer]
 * --fork: a child runs the same loop (a tree of two); the resources below
 * are then created by the child only. --socket: holds a listening TCP socket
 * with a connection waiting to be accepted (a descriptor the engine
 * refuses); --timer: holds a POSIX timer on the
 * parent's CPU-time clock (which the engine refuses too). Writes
 * DIR/pid (and DIR/child) and DIR/ready, runs until DIR/stop. */
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "zdtm.h"

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int hold(int sock, int timer) {
  if (sock) {
    /* A connection (to itself) never accepted: the listening socket has
     * it waiting, which the engine refuses. */
    int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (l < 0 || c < 0 || bind(l, (struct sockaddr*)&a, sizeof a) != 0 || listen(l, 1) != 0 ||
        getsockname(l, (struct sockaddr*)&a, &len) != 0 || connect(c, (struct sockaddr*)&a, sizeof a) != 0)
      return -1;
  }
  if (timer) {
    timer_t t;
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_NONE;
    /* On the parent's CPU-time clock: a timer the engine still refuses. */
    clockid_t clock;
    if (clock_getcpuclockid(getppid(), &clock) != 0) return -1;
    if (timer_create(clock, &ev, &t) != 0) return -1;
    struct itimerspec its = {{1, 0}, {1, 0}};
    if (timer_settime(t, 0, &its, NULL) != 0) return -1;
  }
  return 0;
}

static void loop(const char* ready_name) {
  char p[4096];
  snprintf(p, sizeof p, "%s/gaps.%d", zdtm_dir, (int)getpid());
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) exit(2);
  zdtm_write(ready_name, "ready\n");
  int64_t prev = now_ns();
  while (!zdtm_should_stop()) {
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
    int64_t t = now_ns();
    if (t - prev > 2000000) {
      char line[64];
      int n = snprintf(line, sizeof line, "%lld %lld\n", (long long)t, (long long)(t - prev));
      if (write(fd, line, (size_t)n) != n) exit(2);
    }
    prev = t;
  }
  close(fd);
}

int main(int argc, char** argv) {
  if (argc == 2 && strcmp(argv[1], "--now") == 0) {
    printf("%lld\n", (long long)now_ns());
    return 0;
  }
  zdtm_init(argc, argv);
  int fork_child = 0, sock = 0, timer = 0;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--fork") == 0) fork_child = 1;
    if (strcmp(argv[i], "--socket") == 0) sock = 1;
    if (strcmp(argv[i], "--timer") == 0) timer = 1;
  }
  char pid[32];
  snprintf(pid, sizeof pid, "%d\n", (int)getpid());
  zdtm_write("pid", pid);
  if (!fork_child) {
    if (hold(sock, timer) != 0) return zdtm_fail("socketpair or timer_create");
    loop("ready");
    return zdtm_pass();
  }
  pid_t c = fork();
  if (c == 0) {
    if (hold(sock, timer) != 0) _exit(3);
    loop("ready.child");
    _exit(0);
  }
  snprintf(pid, sizeof pid, "%d\n", (int)c);
  zdtm_write("child", pid);
  char p[4096];
  snprintf(p, sizeof p, "%s/ready.child", zdtm_dir);
  while (access(p, F_OK) != 0) zdtm_sleep_ms(1);
  loop("ready");
  int st;
  if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return zdtm_fail("child failed");
  return zdtm_pass();
}
