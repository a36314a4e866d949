#include "engine/timers.h"

#include <sys/syscall.h>
#include <sys/time.h>

#include <algorithm>

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
    std::uint64_t v[4];
    std::copy_n(&core.itimers[which * 4], 4, v);
    if ((v[2] | v[3]) == 0) {
      // A periodic timer that has just expired reads as disarmed until its
      // signal is dequeued (the kernel re-arms it then); that signal is in
      // the image as pending. Arm it for one more interval.
      if ((v[0] | v[1]) == 0) continue;
      v[2] = v[0];
      v[3] = v[1];
    }
    ASSIGN_OR_RETURN(std::uint64_t at, inj->PutScratch(0, v, sizeof v));
    RETURN_IF_ERROR(inj->Call("setitimer", SYS_setitimer, {which, at, 0}).status());
  }
  return Status::Ok();
}

}  // namespace ckpt::engine
