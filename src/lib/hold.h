// Migration support inside a ckpt session (docs/api.md, "Migration: holds
// and handoffs").
//
// Source side: after a checkpoint-and-hold request the program writes its
// image and waits inside that safepoint for a decision — release (continue)
// or exit (status 75, no further image). It never waits forever: it
// continues on its own when the requester is gone or the hold timeout
// (CKPT_HOLD_TIMEOUT, default 600 s) passes.
//
// Target side: a program started with CKPT_HOLD_PORT and CKPT_HOLD_TOKEN
// reports to 127.0.0.1:PORT at its first safepoint ("CKPTHOLD TOKEN PID\n")
// and runs on only after it reads the byte 'g'; anything else ends it with
// status 76 (kExitHandoffAborted) before any of its own work.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "platform/env.h"

namespace ckpt::lib {

inline constexpr double kDefaultHoldTimeout = 600;

// CKPT_HOLD_TIMEOUT in seconds (a number above 0), or kDefaultHoldTimeout
// when unset; InvalidArgument for anything else.
Result<double> HoldTimeoutFromEnvironment(platform::Env* env);

enum class HoldDecision { kRelease, kExit };

// Waits (polling every few ms) for a decision bit in *pending
// (platform::kRequestRelease / kRequestReleaseExit) and clears it. Without a
// decision it releases when the requester (Env::HoldRequester(), if known)
// has ended or `timeout` seconds have passed; *note then says why.
HoldDecision WaitForHoldDecision(platform::Env* env, std::atomic<int>* pending, double timeout,
                                 std::string* note);

// The target side of a handoff, taken from the environment.
struct Handoff {
  bool requested = false;  // CKPT_HOLD_PORT or CKPT_HOLD_TOKEN was set
  int port = 0;
  std::string token;  // 32 hex digits
  std::string error;  // why the variables are unusable ("" when fine)
};
// Reads CKPT_HOLD_PORT and CKPT_HOLD_TOKEN and removes both from the
// environment, so that the program's children do not inherit them.
Handoff TakeHandoff(platform::Env* env);
// Connects, reports and waits up to `timeout` s for 'g'. Ok only for 'g';
// otherwise the reason the program must not run.
Status RunHandoff(const Handoff& h, std::int64_t pid, double timeout);

}  // namespace ckpt::lib
