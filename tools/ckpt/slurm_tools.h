// Slurm's own commands (scontrol, squeue, scancel), run for `ckpt job` and
// `ckpt evacuate`: ckpt talks to Slurm only through them, so it works with
// whatever Slurm the user has and needs no library or plugin.
#pragma once

#include <string>
#include <vector>

#include "platform/env.h"
#include "util/status.h"

namespace ckpt::cli {

// The marker `ckpt job` leaves in its job's Comment (with its image
// directory after it): `ckpt evacuate` signals only jobs that carry it.
inline constexpr const char* kJobMarker = "ckpt-job:";

// A file `ckpt rebalance` leaves in a ckpt job's image directory before it
// signals the job: the job then requeues held (`scontrol requeuehold`).
inline constexpr const char* kHoldRequest = "requeue-hold";

// "2.98 s": how `ckpt job`, `ckpt evacuate` and `ckpt rebalance` print times.
std::string SecondsText(double s);

// Runs `argv` (a Slurm command, found in PATH) and returns its standard
// output. An error names the command, its exit status and its first
// line of standard error.
Result<std::string> SlurmCommand(platform::Env* env, const std::vector<std::string>& argv);

}  // namespace ckpt::cli
