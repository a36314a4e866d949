// Test hooks: lets tests run Sessions against a fault-injecting Env. Not part
// of the public API. Not thread-safe: set before creating Sessions.
#pragma once

#include "platform/env.h"

namespace ckpt::lib {

// Sessions created afterwards use `env` (nullptr restores Env::Default()).
void SetEnvForTesting(platform::Env* env);
platform::Env* SessionEnv();

}  // namespace ckpt::lib
