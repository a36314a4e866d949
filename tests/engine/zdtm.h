/* The zdtm contract for engine tests: a test program sets up its state,
 * announces DIR/ready, keeps working until DIR/stop appears (the dump and
 * restore happen meanwhile), then verifies its data and writes DIR/result:
 * "PASS" or "FAIL: why". Single-threaded helpers; async-signal-unsafe. */
#pragma once
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char* zdtm_dir;

static void zdtm_write(const char* name, const char* text) {
  char p[4096], t[4096];
  snprintf(p, sizeof p, "%s/%s", zdtm_dir, name);
  snprintf(t, sizeof t, "%s/%s.tmp", zdtm_dir, name);
  FILE* f = fopen(t, "w");
  if (!f) exit(2);
  fputs(text, f);
  fclose(f);
  rename(t, p);
}

static void zdtm_init(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s DIR\n", argv[0]);
    exit(2);
  }
  zdtm_dir = argv[1];
}

static void zdtm_ready(void) {
  zdtm_write("ready", "ready\n");
}

static int zdtm_should_stop(void) {
  char p[4096];
  snprintf(p, sizeof p, "%s/stop", zdtm_dir);
  return access(p, F_OK) == 0;
}

static void zdtm_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static int zdtm_fail(const char* fmt, ...) {
  char m[2048] = "FAIL: ";
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m + 6, sizeof m - 8, fmt, ap);
  va_end(ap);
  strcat(m, "\n");
  zdtm_write("result", m);
  return 1;
}

static int zdtm_pass(void) {
  zdtm_write("result", "PASS\n");
  return 0;
}

/* xorshift64*: deterministic data to fill and verify. */
static uint64_t zdtm_rand(uint64_t* s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ULL;
}
