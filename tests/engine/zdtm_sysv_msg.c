/* A System V message queue with queued messages of several types: a child
 * sends numbered messages of types 1-4 (types 3 and 4 only at first, and
 * nobody reads them until the end, so they sit in the queue at every
 * dump); the parent reads types 1 and 2 as they come. After the restore
 * every type's messages must arrive complete, in order, once. */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/wait.h>

#include "zdtm.h"

struct msg {
  long type;
  char text[200];
};

static int make(struct msg* m, long type, unsigned long long seq) {
  m->type = type;
  int n = snprintf(m->text, sizeof m->text, "type %ld seq %llu ", type, seq);
  int len = n + (int)(seq % 97); /* varying sizes, checkable bytes */
  for (int i = n; i < len; i++) m->text[i] = (char)('a' + (seq + (unsigned long long)i) % 26);
  return len;
}

static int check(const struct msg* m, ssize_t len, long type, unsigned long long seq) {
  struct msg want;
  int n = make(&want, type, seq);
  return len == n && memcmp(want.text, m->text, (size_t)n) == 0;
}

static int send_all(int q) {
  unsigned long long seq[5] = {0};
  struct msg m;
  for (unsigned long long i = 0;; i++) {
    if (zdtm_should_stop()) {
      m.type = 1;
      int n = snprintf(m.text, sizeof m.text, "END %llu %llu", seq[3], seq[4]);
      return msgsnd(q, &m, (size_t)n + 1, 0) == 0 ? 0 : 50;
    }
    long type = i < 40 ? 1 + (long)(i % 4) : 1 + (long)(i % 2);
    int n = make(&m, type, seq[type]++);
    while (msgsnd(q, &m, (size_t)n, 0) != 0) {
      if (errno != EINTR) return 51;
      return 52; /* msgsnd restarts by itself: EINTR means ckpt showed */
    }
    zdtm_sleep_ms(1);
  }
}

int main(int argc, char** argv) {
  zdtm_init(argc, argv);
  key_t key = (key_t)(0x5b000000 | (getpid() & 0xffffff));
  int q = msgget(key, IPC_CREAT | IPC_EXCL | 0640);
  if (q < 0) return zdtm_fail("msgget: %s", strerror(errno));
  char keys[64];
  snprintf(keys, sizeof keys, "%d\n", key);
  zdtm_write("ipc_keys", keys);
  pid_t p = fork();
  if (p == 0) _exit(send_all(q));
  unsigned long long next[3] = {0};
  unsigned long long end3 = 0, end4 = 0;
  int readied = 0;
  struct msg m;
  for (;;) {
    ssize_t n = msgrcv(q, &m, sizeof m.text, -2, 0);
    if (n < 0) return msgctl(q, IPC_RMID, NULL), zdtm_fail("msgrcv: %s", strerror(errno));
    if (m.type == 1 && strncmp(m.text, "END ", 4) == 0) {
      if (sscanf(m.text, "END %llu %llu", &end3, &end4) != 2) return zdtm_fail("bad END");
      break;
    }
    if (!check(&m, n, m.type, next[m.type]))
      return msgctl(q, IPC_RMID, NULL), zdtm_fail("type %ld: message %llu wrong or out of order: '%.*s'",
                                                  m.type, next[m.type], (int)n, m.text);
    next[m.type]++;
    if (!readied && next[1] > 30) {
      readied = 1;
      zdtm_ready();
    }
  }
  int st;
  if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    return msgctl(q, IPC_RMID, NULL), zdtm_fail("sender failed: %#x", st);
  for (long type = 3; type <= 4; type++) {
    unsigned long long want = type == 3 ? end3 : end4, got = 0;
    for (;;) {
      ssize_t n = msgrcv(q, &m, sizeof m.text, type, IPC_NOWAIT);
      if (n < 0) break;
      if (!check(&m, n, type, got))
        return msgctl(q, IPC_RMID, NULL), zdtm_fail("type %ld message %llu wrong", type, got);
      got++;
    }
    if (got != want || want != 10)
      return msgctl(q, IPC_RMID, NULL), zdtm_fail("type %ld: %llu messages, sent %llu", type, got, want);
  }
  struct msqid_ds ds;
  if (msgctl(q, IPC_STAT, &ds) != 0) return zdtm_fail("queue %d gone", q);
  if (ds.msg_perm.__key != key || (ds.msg_perm.mode & 0777) != 0640 || ds.msg_qnum != 0)
    return msgctl(q, IPC_RMID, NULL), zdtm_fail("queue key/mode/count changed");
  msgctl(q, IPC_RMID, NULL);
  return zdtm_pass();
}
