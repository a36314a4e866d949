/* 1 GiB of populated heap filled with a pattern, verified by checksum after
 * the restore (and untouched pages must still read as zero). */
#include <sys/mman.h>

#include "zdtm.h"

int main(int argc, char** argv) {
  zdtm_init(argc, argv);
  size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 1024;
  size_t bytes = mib << 20, words = bytes / 8;
  /* A hole of never-touched pages after the data. */
  uint64_t* a = mmap(NULL, bytes + (64u << 20), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (a == MAP_FAILED) return zdtm_fail("mmap");
  uint64_t s = 7, sum = 0;
  for (size_t i = 0; i < words; i++) {
    a[i] = zdtm_rand(&s);
    sum += a[i] * (i | 1);
  }
  zdtm_ready();
  while (!zdtm_should_stop()) zdtm_sleep_ms(10);
  uint64_t again = 0;
  for (size_t i = 0; i < words; i++) again += a[i] * (i | 1);
  if (again != sum)
    return zdtm_fail("checksum %llx, expected %llx", (unsigned long long)again, (unsigned long long)sum);
  const uint64_t* hole = a + words;
  for (size_t i = 0; i < (64u << 20) / 8; i += 512) {
    if (hole[i] != 0) return zdtm_fail("untouched page at +%zu is not zero", i * 8);
  }
  return zdtm_pass();
}
