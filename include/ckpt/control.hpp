// Asking the ckpt programs and dependent process groups that run on this
// machine for checkpoints, from one's own code: what `ckpt list` and `ckpt
// checkpoint` do (docs/api.md, "Controlling running programs"). Programs are
// found through the registration files their sessions publish in this user's
// private runtime directory; only this user's programs are seen. Every call
// may throw ckpt::Error with a message naming what went wrong; none ends the
// process. Thread-safe (each call reads the registrations afresh).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ckpt/ckpt.hpp"

namespace ckpt::control {

// A checkpointable program or group that runs now.
struct Running {
  std::int64_t pid = 0;  // the program's, or the group coordinator's
  bool group = false;
  std::string name;               // the program's image name prefix, or the group's name
  bool held = false;              // waits in a safepoint for a hold's decision (`ckpt release`)
  std::uint64_t checkpoints = 0;  // written by this run
  std::uint64_t failures = 0;     // checkpoints of this run that failed (programs)
  int members = 0;                // a group's
  std::string image_dir;          // where its images go
  std::string cwd;                // its working directory
  std::string last_image;         // the newest image of this run, empty before the first
  std::string exe;                // a program's executable
  std::string platform;           // a program's platform tag ("linux-x86_64")
};

// This user's running ckpt programs and groups, by PID. Registrations of
// processes that are gone are removed on the way.
std::vector<Running> List();

struct Request {
  bool exit = false;            // the program (a group's members) exits after the checkpoint, status 75
  double timeout_seconds = 60;  // how long to wait for the image
};

struct Checkpointed {
  std::string image;             // the image written
  std::uint64_t generation = 0;  // a program's checkpoint count with it (0 for a group)
  bool exited = false;           // the program has ended after writing it
};

// Asks the ckpt program running as `pid` for a checkpoint at its next
// safepoint and waits for the image. Throws when no ckpt program runs as
// `pid` (a group's coordinator included: use CheckpointGroup), when the
// checkpoint failed (the program runs on; its previous image is intact), or
// when no safepoint came within the timeout (the request stays pending).
Checkpointed Checkpoint(std::int64_t pid, const Request& request = {});

// The same for the group named `name` (its name or id).
Checkpointed CheckpointGroup(const std::string& name, const Request& request = {});

}  // namespace ckpt::control
