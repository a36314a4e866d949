/* CKPT C API: the same session, variables, stages and safepoints as the C++
 * API (ckpt/ckpt.hpp), for C programs and other languages' bindings.
 * A session is used by one thread; ckpt_request is thread-safe. */
#ifndef CKPT_CKPT_H_
#define CKPT_CKPT_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ckpt_session ckpt_session;

/* Element types of variables registered from C. */
typedef enum ckpt_type {
  CKPT_I8,
  CKPT_U8,
  CKPT_I16,
  CKPT_U16,
  CKPT_I32,
  CKPT_U32,
  CKPT_I64,
  CKPT_U64,
  CKPT_F32,
  CKPT_F64,
  CKPT_BOOL,
  CKPT_CHAR,
  CKPT_LONG, /* C long: 32 or 64 bits by platform, stored as 64 */
  CKPT_ULONG,
  CKPT_SIZE /* size_t, stored as 64 bits */
} ckpt_type;

/* What ckpt_safepoint / ckpt_checkpoint report. */
enum { CKPT_NONE = 0, CKPT_CHECKPOINTED = 1, CKPT_RESUMED = 2, CKPT_FAILED = 3 };

/* Opens a session from the program's arguments; --ckpt-* options are removed
 * from argv and *argc adjusted. On a resume error the program exits with
 * status 3 after printing the reason. */
ckpt_session* ckpt_open(int* argc, char** argv);
void ckpt_close(ckpt_session* s);

/* Registers `count` elements of `type` at `data` under `name`. When resuming
 * they are filled from the image at once. Returns 0. */
int ckpt_register(ckpt_session* s, const char* name, ckpt_type type, void* data, size_t count);

/* Stages: if (ckpt_stage_begin(s, "init")) { ...; ckpt_stage_end(s); } */
int ckpt_stage_begin(ckpt_session* s, const char* name);
void ckpt_stage_end(ckpt_session* s);

int ckpt_safepoint(ckpt_session* s);
int ckpt_checkpoint(ckpt_session* s);
void ckpt_request(ckpt_session* s, int exit_after);
int ckpt_resumed(const ckpt_session* s);
/* Path of the newest image written by this session, or "". */
const char* ckpt_last_image(const ckpt_session* s);
const char* ckpt_last_error(const ckpt_session* s);

#ifdef __cplusplus
}
#endif

#endif /* CKPT_CKPT_H_ */
