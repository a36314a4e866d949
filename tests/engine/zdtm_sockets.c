/* Unix socket pairs across a dump and restore (issue 12): stream,
 * datagram and seqpacket pairs with bytes queued in both directions (the
 * datagrams' boundaries kept), a duplicate descriptor, SO_PASSCRED; after
 * the restore every queued byte reads back in order and the pairs still
 * carry new data both ways. With "tree": parent and child ping-pong
 * numbered messages over a socket pair (as multiprocessing.Pipe() does);
 * no number may be lost or repeated. */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "zdtm.h"

#define DUP_FD 90
#define STREAM_BYTES 100000

static int st[2], dg[2], sp[2];

static unsigned char pattern(size_t i, int salt) {
  return (unsigned char)((i * 31 + (size_t)salt) & 0xff);
}

static int setup(void) {
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, st) ||
      socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, dg) ||
      socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sp))
    return zdtm_fail("socketpair");
  static unsigned char buf[STREAM_BYTES];
  for (size_t i = 0; i < STREAM_BYTES; i++) buf[i] = pattern(i, 1);
  int big = 1 << 20;
  setsockopt(st[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  if (write(st[0], buf, STREAM_BYTES) != STREAM_BYTES) return zdtm_fail("stream write: %s", strerror(errno));
  for (size_t i = 0; i < 5000; i++) buf[i] = pattern(i, 2);
  if (write(st[1], buf, 5000) != 5000) return zdtm_fail("stream write back");
  const char* msgs[] = {"first", "second message", "3"};
  for (int i = 0; i < 3; i++) {
    if (send(dg[0], msgs[i], strlen(msgs[i]), 0) < 0) return zdtm_fail("dgram send");
    if (send(sp[1], msgs[i], strlen(msgs[i]), 0) < 0) return zdtm_fail("seqpacket send");
  }
  if (send(dg[1], "reply", 5, 0) < 0) return zdtm_fail("dgram reply");
  int one = 1;
  setsockopt(dg[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
  if (dup2(st[0], DUP_FD) != DUP_FD) return zdtm_fail("dup2");
  return 0;
}

static int expect_msg(int fd, const char* want, const char* what) {
  char b[256];
  ssize_t n = recv(fd, b, sizeof b, 0);
  if (n != (ssize_t)strlen(want) || memcmp(b, want, (size_t)n) != 0)
    return zdtm_fail("%s: got %zd bytes '%.*s', expected '%s'", what, n, n > 0 ? (int)n : 0, b, want);
  return 0;
}

static int check(void) {
  static unsigned char buf[STREAM_BYTES + 16];
  size_t got = 0;
  ssize_t n;
  while ((n = read(st[1], buf + got, sizeof buf - got)) > 0) got += (size_t)n;
  if (got != STREAM_BYTES) return zdtm_fail("stream: %zu bytes queued, expected %d", got, STREAM_BYTES);
  for (size_t i = 0; i < got; i++)
    if (buf[i] != pattern(i, 1)) return zdtm_fail("stream byte %zu differs", i);
  got = 0;
  while ((n = read(st[0], buf + got, sizeof buf - got)) > 0) got += (size_t)n;
  if (got != 5000) return zdtm_fail("stream back: %zu bytes", got);
  for (size_t i = 0; i < got; i++)
    if (buf[i] != pattern(i, 2)) return zdtm_fail("stream back byte %zu differs", i);
  if (expect_msg(dg[1], "first", "dgram 1") || expect_msg(dg[1], "second message", "dgram 2") ||
      expect_msg(dg[1], "3", "dgram 3") || expect_msg(dg[0], "reply", "dgram reply") ||
      expect_msg(sp[0], "first", "seqpacket 1") || expect_msg(sp[0], "second message", "seqpacket 2") ||
      expect_msg(sp[0], "3", "seqpacket 3"))
    return 1;
  if (recv(dg[1], buf, sizeof buf, 0) != -1 || errno != EAGAIN) return zdtm_fail("an extra datagram");
  int cred = 0;
  socklen_t len = sizeof cred;
  getsockopt(dg[1], SOL_SOCKET, SO_PASSCRED, &cred, &len);
  if (!cred) return zdtm_fail("SO_PASSCRED lost");
  /* Still connected, both ways, and the duplicate is the same socket. */
  if (write(DUP_FD, "ping", 4) != 4 || read(st[1], buf, 16) != 4 || memcmp(buf, "ping", 4) != 0)
    return zdtm_fail("the stream pair no longer carries data (through the duplicate)");
  if (send(sp[0], "pong", 4, 0) != 4 || expect_msg(sp[1], "pong", "seqpacket after restore")) return 1;
  return 0;
}

/* Parent sends n, child answers n + 1; both check the sequence. */
static int tree_main(void) {
  int pv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, pv) != 0) return zdtm_fail("socketpair");
  pid_t child = fork();
  if (child == 0) {
    close(pv[0]);
    unsigned long long n, expect = 0;
    while (read(pv[1], &n, sizeof n) == (ssize_t)sizeof n) {
      if (n != expect) _exit(3);
      expect = n + 2;
      n++;
      if (write(pv[1], &n, sizeof n) != (ssize_t)sizeof n) _exit(4);
    }
    _exit(0);
  }
  close(pv[1]);
  zdtm_ready();
  unsigned long long n = 0, r;
  while (!zdtm_should_stop()) {
    if (write(pv[0], &n, sizeof n) != (ssize_t)sizeof n) return zdtm_fail("write %llu", n);
    if (read(pv[0], &r, sizeof r) != (ssize_t)sizeof r) return zdtm_fail("read after %llu", n);
    if (r != n + 1) return zdtm_fail("sent %llu, the child answered %llu", n, r);
    n += 2;
    zdtm_sleep_ms(1);
  }
  close(pv[0]);
  int status;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return zdtm_fail("the child saw a gap (status %d)", status);
  if (n < 20) return zdtm_fail("only %llu messages", n / 2);
  return zdtm_pass();
}

int main(int argc, char** argv) {
  zdtm_init(argc, argv);
  if (argc > 2 && strcmp(argv[2], "tree") == 0) return tree_main();
  if (setup() != 0) return 1;
  zdtm_ready();
  while (!zdtm_should_stop()) zdtm_sleep_ms(5);
  if (check() != 0) return 1;
  return zdtm_pass();
}
