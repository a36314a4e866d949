#include "knobs.h"

namespace ckpt::cli {

Knobs KnobsFromEnvironment(platform::Env* env) {
  Knobs k;
  k.in_place_copy = env->GetEnv("CKPT_ENGINE_DUMP_COPY") == "in-place";
  k.pagemap_scan = env->GetEnv("CKPT_ENGINE_NO_PAGEMAP_SCAN").empty();
  k.force_vdso_proxy = env->GetEnv("CKPT_ENGINE_FORCE_VDSO_PROXY") == "1";
  k.engine_fault = env->GetEnv("CKPT_ENGINE_FAULT");
  const std::string m = env->GetEnv("CKPT_MIGRATE_FAULT");
  k.migrate.corrupt_first_data = m == "corrupt-data";
  k.migrate.pause_before_commit = m == "pause-before-commit";
  if (m.rfind("hold-end:", 0) == 0) k.migrate.hold_end_until = m.substr(9);
  k.receive_fault = env->GetEnv("CKPT_RECEIVE_FAULT");
  return k;
}

#if CKPT_HAVE_ENGINE
void ApplyKnobs(const Knobs& k, engine::DumpOptions* d) {
  d->in_place_copy = k.in_place_copy;
  d->pagemap_scan = k.pagemap_scan;
  d->fault = k.engine_fault;
}

void ApplyKnobs(const Knobs& k, engine::RestoreOptions* r) {
  r->force_vdso_proxy = k.force_vdso_proxy;
  r->fault = k.engine_fault;
}
#endif

}  // namespace ckpt::cli
