/* A deleted-but-open file, a pipe with unread data inside the process, a
 * private file mapping with some pages changed, and the cwd and umask. */
#include <sys/mman.h>

#include "zdtm.h"

int main(int argc, char** argv) {
  zdtm_init(argc, argv);
  char p[4096];
  snprintf(p, sizeof p, "%s/deleted.dat", zdtm_dir);
  int df = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
  char buf[100000];
  uint64_t s = 9;
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (char)zdtm_rand(&s);
  if (write(df, buf, sizeof buf) != sizeof buf) return zdtm_fail("write");
  unlink(p);
  lseek(df, 12345, SEEK_SET);
  int pp[2];
  if (pipe(pp) != 0) return zdtm_fail("pipe");
  if (write(pp[1], "hello through the pipe", 22) != 22) return zdtm_fail("pipe write");
  snprintf(p, sizeof p, "%s/mapped.dat", zdtm_dir);
  const char* mapped_path = argc > 2 ? argv[2] : p;
  int mf = open(mapped_path, O_RDONLY);
  if (mf < 0) return zdtm_fail("open %s", mapped_path);
  unsigned char* map = mmap(NULL, 16 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, mf, 0);
  if (map == MAP_FAILED) return zdtm_fail("mmap");
  close(mf);
  unsigned char orig[16];
  for (int i = 0; i < 16; i++) orig[i] = map[i * 4096 + 7];
  for (int i = 0; i < 16; i += 3) map[i * 4096 + 7] ^= 0xff;
  if (chdir(zdtm_dir) != 0) return zdtm_fail("chdir");
  umask(027);
  zdtm_ready();
  while (!zdtm_should_stop()) zdtm_sleep_ms(5);
  struct stat st;
  if (fstat(df, &st) != 0 || st.st_nlink != 0) return zdtm_fail("deleted file is linked again");
  if (lseek(df, 0, SEEK_CUR) != 12345) return zdtm_fail("deleted file offset lost");
  char back[sizeof buf];
  if (pread(df, back, sizeof back, 0) != sizeof back || memcmp(back, buf, sizeof buf) != 0)
    return zdtm_fail("deleted file contents differ");
  char msg[64] = {0};
  if (read(pp[0], msg, sizeof msg) != 22 || memcmp(msg, "hello through the pipe", 22) != 0)
    return zdtm_fail("pipe contents lost: '%s'", msg);
  for (int i = 0; i < 16; i++) {
    unsigned char want = (i % 3 == 0) ? (unsigned char)(orig[i] ^ 0xff) : orig[i];
    if (map[i * 4096 + 7] != want) return zdtm_fail("mapped page %d differs", i);
  }
  char cwd[4096];
  if (!getcwd(cwd, sizeof cwd)) return zdtm_fail("getcwd");
  mode_t old = umask(0);
  if (old != 027) return zdtm_fail("umask is %o", old);
  return zdtm_pass();
}
