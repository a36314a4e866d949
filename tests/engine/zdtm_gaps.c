/* Stall meter: sleeps 1 ms in a loop and logs every gap between two
 * wake-ups longer than 2 ms ("END_NS GAP_NS", CLOCK_MONOTONIC) to
 * DIR/gaps.PID, so a test can see how long something stopped it.
 *   zdtm_gaps --now             prints CLOCK_MONOTONIC in ns
 *   zdtm_gaps DIR [--fork] [--socket] [--timer] [--bpf-filter] [--md5]
 * --fork: a child runs the same loop (a tree of two); the resources below
 * are then created by the child only. --socket: holds a listening TCP socket
 * with a connection waiting to be accepted (a descriptor the engine
 * refuses); --timer: holds a POSIX timer on the
 * parent's CPU-time clock (which the engine refuses too); --bpf-filter:
 * holds a UDP socket with an eBPF socket filter (SO_ATTACH_BPF), which
 * the engine cannot read back and refuses; --md5: holds a listening TCP
 * socket with a TCP MD5 signature key (TCP_MD5SIG), refused likewise. Writes
 * DIR/pid (and DIR/child) and DIR/ready, runs until DIR/stop. */
#include <linux/bpf.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "zdtm.h"

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A UDP socket with an eBPF socket filter that accepts every datagram. */
static int bpf_filtered_socket(void) {
  struct bpf_insn prog[2];
  memset(prog, 0, sizeof prog);
  prog[0].code = BPF_ALU64 | BPF_MOV | BPF_K; /* r0 = 0xffff: keep the datagram */
  prog[0].dst_reg = BPF_REG_0;
  prog[0].imm = 0xffff;
  prog[1].code = BPF_JMP | BPF_EXIT;
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
  attr.insns = (uint64_t)(uintptr_t)prog;
  attr.insn_cnt = 2;
  attr.license = (uint64_t)(uintptr_t) "GPL";
  int pfd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr);
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  if (pfd < 0 || s < 0 || setsockopt(s, SOL_SOCKET, SO_ATTACH_BPF, &pfd, sizeof pfd) != 0) return -1;
  close(pfd);
  return 0;
}

/* A listening TCP socket with an MD5 signature key for peer 127.0.0.1. */
static int md5_socket(void) {
  struct tcp_md5sig sig;
  memset(&sig, 0, sizeof sig);
  struct sockaddr_in* peer = (struct sockaddr_in*)&sig.tcpm_addr;
  peer->sin_family = AF_INET;
  peer->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sig.tcpm_keylen = 6;
  memcpy(sig.tcpm_key, "secret", 6);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0 || listen(s, 1) != 0 || setsockopt(s, IPPROTO_TCP, TCP_MD5SIG, &sig, sizeof sig) != 0) return -1;
  return 0;
}

static int hold(int sock, int timer, int bpf, int md5) {
  if (bpf && bpf_filtered_socket() != 0) return -1;
  if (md5 && md5_socket() != 0) return -1;
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
  int fork_child = 0, sock = 0, timer = 0, bpf = 0, md5 = 0;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--fork") == 0) fork_child = 1;
    if (strcmp(argv[i], "--socket") == 0) sock = 1;
    if (strcmp(argv[i], "--timer") == 0) timer = 1;
    if (strcmp(argv[i], "--bpf-filter") == 0) bpf = 1;
    if (strcmp(argv[i], "--md5") == 0) md5 = 1;
  }
  char pid[32];
  snprintf(pid, sizeof pid, "%d\n", (int)getpid());
  zdtm_write("pid", pid);
  if (!fork_child) {
    if (hold(sock, timer, bpf, md5) != 0) return zdtm_fail("socket, eBPF filter or timer_create");
    loop("ready");
    return zdtm_pass();
  }
  pid_t c = fork();
  if (c == 0) {
    if (hold(sock, timer, bpf, md5) != 0) _exit(3);
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
