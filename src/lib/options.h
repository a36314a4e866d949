// The --ckpt-* options of a Session: read from CKPT_* environment variables
// and from the program's arguments, which lose them. A bad value prints the
// message and the options' help and exits with status 2, or throws
// ckpt::Error with Options::throw_on_error. Not thread-safe (used at start).
#pragma once

#include <string>

#include "ckpt/ckpt.hpp"
#include "platform/env.h"

namespace ckpt::lib {

// Sets the options given by CKPT_DIR, CKPT_RESUME, ... in *o.
void ApplyEnvOptions(platform::Env* env, Options* o);
// Moves --ckpt-* arguments (before a "--") out of argv into *o; --ckpt-help
// prints the help and exits with status 0.
void ParseOptionArgs(int& argc, char** argv, Options* o);
[[noreturn]] void OptionUsageError(const Options& o, const std::string& message);

}  // namespace ckpt::lib
