/* CKPT C API: the same session, variables, stages and safepoints as the C++
 * API (ckpt/ckpt.hpp), for C programs and other languages' bindings.
 * A session is used by the thread that opened it; ckpt_request is thread-safe.
 *
 * Every call checks its arguments: a NULL session, a NULL or empty name, NULL
 * data for a non-zero count, an unknown type, a duplicate name or a
 * registration after the first safepoint is refused with a negative CKPT_ERR_*
 * code, without changing anything, and ckpt_last_error(s) says why. A failed
 * resume and bad --ckpt-* options end the program (status 3 or 2, after
 * printing the reason), as in C++, unless the session was opened with
 * ckpt_open_flags(..., CKPT_OPEN_RETURN_ERRORS): then they are returned too. */
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

/* Refused calls (negative); nothing was changed, ckpt_last_error(s) says why. */
enum {
  CKPT_OK = 0,
  CKPT_ERR_INVALID = -1,   /* NULL session, NULL/empty name, NULL data with count > 0, unknown type,
                              count too large, ckpt_stage_end without an open stage */
  CKPT_ERR_DUPLICATE = -2, /* a variable of that name is already registered */
  CKPT_ERR_LATE = -3,      /* registration after the first safepoint or checkpoint */
  CKPT_ERR_INTERNAL = -4,  /* out of memory or another unexpected failure */
  CKPT_ERR_RESUME = -5     /* (CKPT_OPEN_RETURN_ERRORS only) the image cannot be resumed: a variable
                              of another type, a damaged value, a variable the program never
                              registered. The session must not go on: close it. */
};

/* ckpt_open_flags flags. */
#define CKPT_OPEN_RETURN_ERRORS 1u /* never end the program: return failed resumes and bad options */

/* Opens a session from the program's arguments; --ckpt-* options are removed
 * from argv and *argc adjusted (argc may be NULL: no arguments). Returns NULL,
 * after printing why on stderr, when *argc > 0 and argv or one of its first
 * *argc entries is NULL, or memory runs out. Bad --ckpt-* options end the
 * program with status 2, a failed resume with status 3, after printing why. */
ckpt_session* ckpt_open(int* argc, char** argv);
/* ckpt_open with flags (0: the same as ckpt_open). With
 * CKPT_OPEN_RETURN_ERRORS, bad --ckpt-* options and an image that cannot be
 * opened make it return NULL, printing nothing, with the reason in
 * ckpt_open_error(); a resume that fails later (ckpt_register,
 * ckpt_safepoint, ckpt_checkpoint) returns CKPT_ERR_RESUME with the reason in
 * ckpt_last_error(s). A requested checkpoint-and-exit still exits (75). */
ckpt_session* ckpt_open_flags(int* argc, char** argv, unsigned flags);
/* Why the calling thread's last ckpt_open or ckpt_open_flags returned NULL
 * ("" if it did not). */
const char* ckpt_open_error(void);
/* Ends the session (NULL: does nothing). */
void ckpt_close(ckpt_session* s);

/* Registers `count` elements of `type` at `data` under `name` (before the
 * first safepoint or checkpoint). When resuming they are filled from the image
 * at once; an image that does not match ends the program with status 3.
 * Returns CKPT_OK, or a negative CKPT_ERR_* code. */
int ckpt_register(ckpt_session* s, const char* name, ckpt_type type, void* data, size_t count);

/* Stages: if (ckpt_stage_begin(s, "init") == 1) { ...; ckpt_stage_end(s); }
 * ckpt_stage_begin returns 1 (run the stage), 0 (completed before the
 * checkpoint: skip it) or a negative CKPT_ERR_* code; ckpt_stage_end returns
 * CKPT_OK or CKPT_ERR_INVALID (NULL session, no open stage). */
int ckpt_stage_begin(ckpt_session* s, const char* name);
int ckpt_stage_end(ckpt_session* s);

/* Return CKPT_NONE, CKPT_CHECKPOINTED, CKPT_RESUMED or CKPT_FAILED (also when
 * called from a thread that did not open the session), or a negative
 * CKPT_ERR_* code (CKPT_ERR_INVALID for a NULL session). A checkpoint-and-exit
 * request (ckpt_request(s, 1), --ckpt-stop-at, `ckpt checkpoint --exit`) ends
 * the program with status 75 once its image is written. */
int ckpt_safepoint(ckpt_session* s);
int ckpt_checkpoint(ckpt_session* s);
/* Asks for a checkpoint at the next safepoint (and then exit with status 75
 * if exit_after is non-zero). Returns CKPT_OK or CKPT_ERR_INVALID. */
int ckpt_request(ckpt_session* s, int exit_after);
/* 1 if this run resumed from an image, 0 if not (or s is NULL). */
int ckpt_resumed(const ckpt_session* s);
/* Path of the newest image written by this session, or "" (also for NULL). */
const char* ckpt_last_image(const ckpt_session* s);
/* Why the latest failed checkpoint or refused call failed ("" if none, or
 * after a successful checkpoint); a fixed message for a NULL session. Owned by
 * the session, valid until its next call. */
const char* ckpt_last_error(const ckpt_session* s);

#ifdef __cplusplus
}
#endif

#endif /* CKPT_CKPT_H_ */
