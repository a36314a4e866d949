/* A 1-D wave equation in C, checkpointable through the C API (ckpt/ckpt.h).
 *
 *   wave_c [POINTS] [STEPS] [--ckpt-... options]
 */
#include <ckpt/ckpt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
  ckpt_session* s = ckpt_open(&argc, argv);
  uint64_t params[2] = {argc > 1 ? strtoull(argv[1], NULL, 10) : 2000,
                        argc > 2 ? strtoull(argv[2], NULL, 10) : 3000};
  ckpt_register(s, "params", CKPT_U64, params, 2); /* the image's values win on a resume */
  size_t n = (size_t)params[0];
  uint64_t step = 0;
  long checksum_steps = 0; /* a platform-width type: stored as 64 bits */
  double* u = calloc(n, sizeof(double));
  double* prev = calloc(n, sizeof(double));
  double* next = calloc(n, sizeof(double));
  ckpt_register(s, "step", CKPT_U64, &step, 1);
  ckpt_register(s, "u", CKPT_F64, u, n);
  ckpt_register(s, "prev", CKPT_F64, prev, n);
  ckpt_register(s, "checksum_steps", CKPT_LONG, &checksum_steps, 1);
  if (ckpt_stage_begin(s, "init")) {
    for (size_t i = n / 3; i < n / 2; ++i) u[i] = prev[i] = 1.0; /* a square pulse */
    ckpt_stage_end(s);
  }
  const double c2 = 0.25;
  while (step < params[1]) {
    for (size_t i = 1; i + 1 < n; ++i) next[i] = 2 * u[i] - prev[i] + c2 * (u[i - 1] - 2 * u[i] + u[i + 1]);
    memcpy(prev, u, n * sizeof(double));
    memcpy(u, next, n * sizeof(double));
    ++step;
    checksum_steps += (long)(step % 7);
    ckpt_safepoint(s);
  }
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; ++i) {
    uint64_t bits;
    memcpy(&bits, &u[i], sizeof bits);
    for (int b = 0; b < 8; ++b) h = (h ^ ((bits >> (8 * b)) & 0xff)) * 1099511628211ULL;
  }
  printf("result wave_c points=%llu steps=%llu hash=%016llx checksum_steps=%ld\n", (unsigned long long)n,
         (unsigned long long)params[1], (unsigned long long)h, checksum_steps);
  ckpt_close(s);
  free(u);
  free(prev);
  free(next);
  return 0;
}
