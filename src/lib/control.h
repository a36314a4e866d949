// The control plane: finding the ckpt programs and groups that run on this
// machine and asking a program for checkpoints and holds — what `ckpt
// checkpoint`, `release`, `list`, `migrate`, `job` and the public
// ckpt/control.hpp share. A program is found through its registration file
// (lib/registration.h, one schema for writer and reader) and answers there
// (generation, failures, last_image, held, exited); a group through its
// coordinator's registration (lib/control_group.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lib/registration.h"
#include "platform/env.h"
#include "platform/socket.h"
#include "util/status.h"

namespace ckpt::lib {

struct ProgramTarget {
  std::int64_t pid = 0;
  RegistrationRecord reg;  // the registration as read
  std::string reg_path;    // where it is
};

// The runtime directories this user's programs may register in, each checked
// (this user's, private, not a link); `refused` collects why any was skipped.
// Registrations of processes that are gone are collected on the way.
std::vector<std::string> UsableRuntimeDirs(platform::Env* env, std::string* refused);
// Process `pid`'s registration, a program's or a group coordinator's, from
// the first of `dirs` that has one. NotFound when there is none.
Result<ProgramTarget> ReadRegistration(platform::Env* env, const std::vector<std::string>& dirs,
                                       std::int64_t pid, const std::string& refused);
// The registration of a program (not a group) that runs as `pid` now: a
// stale one (the process is gone, has exited, or its PID was reused) is
// removed and reported as NotFound.
Result<ProgramTarget> CheckProgram(platform::Env* env, Result<ProgramTarget> found);
// The running ckpt program `pid` (registration checked as above; a group
// coordinator is refused).
Result<ProgramTarget> FindProgram(platform::Env* env, std::int64_t pid);

// Every live program and group registered in `dirs` (a program that has
// exited, or whose registration is stale, is dropped and its file removed;
// registrations of the other OS — Windows under Wine sharing a directory —
// are skipped), by PID.
std::vector<ProgramTarget> ListRunning(platform::Env* env, const std::vector<std::string>& dirs);

// Waits up to `timeout` s for process `pid` to end; true once it has.
bool WaitGone(platform::Env* env, std::int64_t pid, double timeout);

// Sends `t` a checkpoint request (exit: checkpoint and exit, status 75).
Status RequestCheckpoint(platform::Env* env, const ProgramTarget& t, bool exit);

// What a checkpoint request led to.
struct Outcome {
  std::string image;
  std::uint64_t generation = 0;
  bool exited = false;  // the program has ended after writing `image`
  bool held = false;    // the program waits for ReleaseHeld
};
// Waits up to `timeout` s for the checkpoint requested of `t` (after `t` was
// read): a new generation in the registration, a new failure (an error
// naming it), or the end of the process (the image it wrote found in its
// directory). With `exit`, also waits for the process to be gone.
Result<Outcome> WaitForCheckpoint(platform::Env* env, const ProgramTarget& t, bool exit, double timeout);
// RequestCheckpoint, then WaitForCheckpoint.
Result<Outcome> Checkpoint(platform::Env* env, const ProgramTarget& t, bool exit, double timeout);

struct HeldImage {
  std::string image;
  std::uint64_t generation = 0;
  std::string program;  // the program's name (image name prefix)
  std::string cwd;      // its working directory, absolute
};
// Asks for checkpoint-and-hold and waits up to `timeout` s for the image; the
// program then waits inside its safepoint for ReleaseHeld. The requester it
// watches is the calling process: if that ends without a decision, the
// program continues by itself. On a timeout the request is cancelled (a
// release follows it), and the program continues when it gets there.
Result<HeldImage> CheckpointAndHold(platform::Env* env, const ProgramTarget& t, double timeout);
// The same with the image streamed, not written to a file (lib/hold.h): a
// ticket beside the registration names a loopback port, the program
// connects at its safepoint and `pump` reads the image from that connection
// to its end. The result's `image` is empty when it was streamed; a program
// that wrote a file instead (a libckpt without streamed holds) gives that
// file, and `pump` is not called. If `pump` fails the program runs on.
Result<HeldImage> StreamAndHold(platform::Env* env, const ProgramTarget& t, double timeout,
                                const std::function<Status(platform::Socket*)>& pump);
// exit=false: the held program continues (waits until it says so); exit=true:
// it exits with status 75 without writing another image — waits (up to
// `timeout` s) until it is gone and collects its registration.
// FailedPrecondition when the program is not held (any more).
Status ReleaseHeld(platform::Env* env, const ProgramTarget& t, bool exit, double timeout);

std::string FormatSeconds(double s);

}  // namespace ckpt::lib
