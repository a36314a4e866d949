/* A FIFO between two processes of a tree, with bytes buffered in it: a
 * child writes numbered records into DIR/fifo faster than the parent reads
 * them. After the restore the parent must read every record once, in
 * order, the ones buffered at the dump included. */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "zdtm.h"

int main(int argc, char** argv) {
  zdtm_init(argc, argv);
  char path[4096];
  snprintf(path, sizeof path, "%s/fifo", zdtm_dir);
  if (mkfifo(path, 0600) != 0) return zdtm_fail("mkfifo: %s", strerror(errno));
  pid_t p = fork();
  if (p == 0) {
    int w = open(path, O_WRONLY);
    if (w < 0) _exit(60);
    uint64_t rec[8];
    for (uint64_t seq = 0; !zdtm_should_stop(); seq++) {
      for (int i = 0; i < 8; i++) rec[i] = seq * 8 + (uint64_t)i;
      if (write(w, rec, sizeof rec) != sizeof rec) _exit(61);
      if (seq % 64 == 0) zdtm_sleep_ms(1);
    }
    uint64_t end[8];
    memset(end, 0xff, sizeof end);
    if (write(w, end, sizeof end) != sizeof end) _exit(62);
    _exit(0);
  }
  int r = open(path, O_RDONLY);
  if (r < 0) return zdtm_fail("open fifo");
  uint64_t want = 0, rec[8];
  int readied = 0;
  for (;;) {
    size_t got = 0;
    while (got < sizeof rec) {
      ssize_t n = read(r, (char*)rec + got, sizeof rec - got);
      if (n <= 0) return zdtm_fail("fifo read %zd: %s", n, strerror(errno));
      got += (size_t)n;
    }
    if (rec[0] == ~0ull) break;
    for (int i = 0; i < 8; i++) {
      if (rec[i] != want * 8 + (uint64_t)i)
        return zdtm_fail("record %llu: word %d is %llu", (unsigned long long)want, i,
                         (unsigned long long)rec[i]);
    }
    want++;
    if (!readied && want > 2000) {
      readied = 1;
      zdtm_ready();
    }
    if (want % 16 == 0) zdtm_sleep_ms(1); /* slower than the writer: the FIFO fills */
  }
  int st;
  if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    return zdtm_fail("writer status %#x", st);
  unlink(path);
  return zdtm_pass();
}
