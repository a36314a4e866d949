// ckptd's accept loop (serve.cc).
#pragma once

#include "config.h"

namespace ckpt::ckptd {

// Listens and serves clients until SIGTERM/SIGINT/SIGHUP; the exit status.
int Serve(const Config& c);

}  // namespace ckpt::ckptd
