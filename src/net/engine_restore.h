// The receiving side's restore of the transparent engine's images, for
// `ckpt receive` and ckptd (builds with the engine only: ckpt_net_engine).
#pragma once

#include "net/receive.h"

namespace ckpt::net {

// Restores DIR/process.ckpt with its PIDs (or in a new PID namespace when
// the source asks), its System V objects where their ids are free (else in
// a new IPC namespace), held in `hold` before it runs.
ProcessRestorer EngineRestorer();

}  // namespace ckpt::net
