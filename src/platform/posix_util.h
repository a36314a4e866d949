// POSIX-only helpers shared by the POSIX Env and the Linux engine.
#pragma once

#include <string>

#include "util/status.h"

namespace ckpt::platform {

// "op object: strerror(err)" as a Status of a fitting code.
Status PosixError(const std::string& op, const std::string& object, int err);
// The real-time signal a ckpt session listens on for checkpoint requests.
int CheckpointSignal();

}  // namespace ckpt::platform
