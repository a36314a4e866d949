#include "engine/timers.h"

#include <sys/syscall.h>
#include <sys/time.h>

namespace ckpt::engine {

Status DumpTimers(Injector* inj, Core* core) {
  core->itimers.clear();
  for (int which = 0; which < 3; ++which) {
    RETURN_IF_ERROR(
        inj->Call("getitimer", SYS_getitimer, {static_cast<std::uint64_t>(which), inj->scratch()}).status());
    std::uint64_t v[4];
    RETURN_IF_ERROR(ReadMemory(inj->tid(), inj->scratch(), v, sizeof v));
    core->itimers.insert(core->itimers.end(), v, v + 4);
  }
  return Status::Ok();
}

Status RestoreTimers(const Core& core, Injector* inj) {
  for (std::size_t which = 0; which < 3 && (which + 1) * 4 <= core.itimers.size(); ++which) {
    const std::uint64_t* v = &core.itimers[which * 4];
    if ((v[2] | v[3]) == 0) continue;  // disarmed
    ASSIGN_OR_RETURN(std::uint64_t at, inj->PutScratch(0, v, 4 * sizeof(std::uint64_t)));
    RETURN_IF_ERROR(inj->Call("setitimer", SYS_setitimer, {which, at, 0}).status());
  }
  return Status::Ok();
}

}  // namespace ckpt::engine
