// The engine's knobs and the test hooks, from the environment: the one
// place where the CLI reads CKPT_ENGINE_* and CKPT_*_FAULT (docs/engine.md,
// "Knobs and test hooks"). The engine and the network code take them as
// options; nothing below the CLI reads the environment for them.
#pragma once

#include <string>

#include "net/handoff.h"
#include "net/receive.h"
#include "platform/env.h"
#if CKPT_HAVE_ENGINE
#include "engine/engine.h"
#endif

namespace ckpt::cli {

struct Knobs {
  bool in_place_copy = false;     // CKPT_ENGINE_DUMP_COPY=in-place
  bool pagemap_scan = true;       // CKPT_ENGINE_NO_PAGEMAP_SCAN=1 turns it off
  bool force_vdso_proxy = false;  // CKPT_ENGINE_FORCE_VDSO_PROXY=1
  std::string engine_fault;       // CKPT_ENGINE_FAULT
  net::SourceFaults migrate;      // CKPT_MIGRATE_FAULT
  std::string receive_fault;      // CKPT_RECEIVE_FAULT
};

Knobs KnobsFromEnvironment(platform::Env* env);

#if CKPT_HAVE_ENGINE
void ApplyKnobs(const Knobs& k, engine::DumpOptions* d);
void ApplyKnobs(const Knobs& k, engine::RestoreOptions* r);
#endif

}  // namespace ckpt::cli
