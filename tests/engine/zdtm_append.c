/* An O_APPEND log and a positioned (non-append) file: after the restore the
 * log continues at its end and the other file at its offset. */
#include "zdtm.h"

int main(int argc, char** argv) {
  zdtm_init(argc, argv);
  char p[4096], q[4096];
  snprintf(p, sizeof p, "%s/append.log", zdtm_dir);
  snprintf(q, sizeof q, "%s/positioned.dat", zdtm_dir);
  int lf = open(p, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0644);
  int pf = open(q, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (lf < 0 || pf < 0) return zdtm_fail("open");
  /* Another writer appends too (as a second process would); O_APPEND must keep us at the end. */
  int other = open(p, O_WRONLY | O_APPEND);
  unsigned seq = 0;
  char line[64];
  zdtm_ready();
  while (!zdtm_should_stop()) {
    int n = snprintf(line, sizeof line, "rec %06u\n", seq);
    if (write(lf, line, n) != n) return zdtm_fail("write log");
    if (write(pf, &seq, sizeof seq) != sizeof seq) return zdtm_fail("write positioned");
    if (seq % 10 == 0 && write(other, "other\n", 6) != 6) return zdtm_fail("write other");
    seq++;
    zdtm_sleep_ms(3);
  }
  FILE* f = fopen(p, "r");
  unsigned want = 0, got;
  char w[16];
  while (fscanf(f, "%15s", w) == 1) {
    if (strcmp(w, "other") == 0) continue;
    if (strcmp(w, "rec") != 0 || fscanf(f, "%u", &got) != 1)
      return zdtm_fail("log garbled near record %u", want);
    if (got != want) return zdtm_fail("log record %u where %u expected", got, want);
    want++;
  }
  if (want != seq) return zdtm_fail("log has %u records, wrote %u", want, seq);
  if (lseek(pf, 0, SEEK_CUR) != (off_t)(seq * sizeof seq))
    return zdtm_fail("positioned file offset is wrong");
  for (unsigned i = 0; i < seq; i++) {
    unsigned v;
    if (pread(pf, &v, sizeof v, i * sizeof v) != sizeof v || v != i)
      return zdtm_fail("positioned record %u wrong", i);
  }
  return zdtm_pass();
}
