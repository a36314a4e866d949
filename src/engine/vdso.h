// vDSO and vvar. The dump keeps the dumping kernel's [vdso] bytes (vvar is
// unreadable and kernel-owned). At restore, when the restoring kernel's vDSO
// is byte-identical and laid out the same, its regions are moved (mremap,
// all by one offset) to where the image had them; otherwise the kernel's
// vDSO is moved out of the way and a proxy is built at the old address: the
// old vDSO's bytes with every exported function patched to jump into the
// new one. Not thread-safe.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "engine/inject.h"
#include "engine/model.h"
#include "engine/proc.h"
#include "util/status.h"

namespace ckpt::engine {

Status DumpVdso(pid_t pid, const std::vector<Vma>& vmas, std::string* bytes);

struct VdsoPlan {
  bool proxy = false;
};

// `child_maps`: the restore child's mappings (after ClearAddressSpace they
// are only its vDSO/vvar and the gadget area). `force_proxy` is for tests.
Result<VdsoPlan> RestoreVdso(const ProcessModel& m, Injector* inj, pid_t pid,
                             const std::vector<MapsEntry>& child_maps, bool force_proxy);

// Exported function symbols of a vDSO image: name -> offset from its start.
std::vector<std::pair<std::string, std::uint64_t>> VdsoSymbols(const std::string& image);

}  // namespace ckpt::engine
