/* sums.cc in C, through the C API: prints the same result line. */
#include <ckpt/ckpt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  ckpt_session* s = ckpt_open(&argc, argv);
  uint64_t steps = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000;
  uint64_t i = 0, sum = 0;
  double series[2] = {0.0, 1.0};
  ckpt_register(s, "i", CKPT_U64, &i, 1);
  ckpt_register(s, "sum", CKPT_U64, &sum, 1);
  ckpt_register(s, "series", CKPT_F64, series, 2);
  while (i < steps) {
    sum += i * i;
    series[0] += series[1] / (double)(i + 1);
    series[1] = -series[1];
    ++i;
    ckpt_safepoint(s);
  }
  printf("result %" PRIu64 " %" PRIu64 " %.17g\n", steps, sum, series[0]);
  ckpt_close(s);
  return 0;
}
