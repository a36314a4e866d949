/* A deleted-but-open file, a pipe with unread data inside the process, a
 * private file mapping with some pages changed, the cwd and umask, rlimits,
 * personality and the mm layout (brk, /proc/self/cmdline and exe). */
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/syscall.h>

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
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = 200;
  setrlimit(RLIMIT_NOFILE, &rl);
  personality(ADDR_NO_RANDOMIZE);
  char* heap = sbrk(0);
  sbrk(3 * 4096 + 123); /* brk moves; the new bytes must survive */
  memset(heap, 0x5a, 3 * 4096 + 123);
  char cmdline[4096] = {0}, exe[4096] = {0};
  int cf = open("/proc/self/cmdline", O_RDONLY);
  ssize_t cl = read(cf, cmdline, sizeof cmdline);
  close(cf);
  ssize_t el = readlink("/proc/self/exe", exe, sizeof exe);
  void* brk_before = sbrk(0);
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
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur != 200)
    return zdtm_fail("RLIMIT_NOFILE soft limit is %llu", (unsigned long long)rl.rlim_cur);
  if ((personality(0xffffffff) & ADDR_NO_RANDOMIZE) == 0) return zdtm_fail("personality lost");
  /* The kernel's break must be where libc believes it is. */
  if ((void*)syscall(SYS_brk, 0) != sbrk(0))
    return zdtm_fail("kernel brk %p, libc brk %p", (void*)syscall(SYS_brk, 0), sbrk(0));
  if (sbrk(0) < brk_before) return zdtm_fail("program break went back");
  for (int i = 0; i < 3 * 4096 + 123; i++) {
    if (heap[i] != 0x5a) return zdtm_fail("brk memory lost at %d", i);
  }
  char cmdline2[4096] = {0}, exe2[4096] = {0};
  cf = open("/proc/self/cmdline", O_RDONLY);
  ssize_t cl2 = read(cf, cmdline2, sizeof cmdline2);
  close(cf);
  if (cl2 != cl || memcmp(cmdline, cmdline2, (size_t)cl) != 0) return zdtm_fail("/proc/self/cmdline changed");
  if (readlink("/proc/self/exe", exe2, sizeof exe2) != el || strcmp(exe, exe2) != 0)
    return zdtm_fail("/proc/self/exe is %s, was %s", exe2, exe);
  return zdtm_pass();
}
