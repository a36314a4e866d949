// The memory map: VMAs read from /proc/PID/smaps at dump; at restore the
// fresh process's own mappings are removed and the image's are created by
// injected mmap calls, then protected and advised as they were; the mm
// layout (brk, code/data, arg/env, auxv, exe) is set with PR_SET_MM_MAP.
// Not thread-safe.
#pragma once

#include <sys/types.h>

#include <vector>

#include "engine/filetable.h"
#include "engine/inject.h"
#include "engine/model.h"
#include "engine/proc.h"
#include "util/status.h"

namespace ckpt::engine {

Status DumpVmas(pid_t pid, const std::vector<MapsEntry>& maps, FileTable* files, ProcessModel* m);
// Fills the mm layout fields of core; brk comes from an injected brk(0).
Status DumpMmLayout(pid_t pid, Injector* inj, Core* core);

// Unmaps every mapping of the restore child except [keep_lo, keep_hi) and
// the vDSO/vvar regions.
Status ClearAddressSpace(Injector* inj, const std::vector<MapsEntry>& maps, std::uint64_t keep_lo,
                         std::uint64_t keep_hi);
// Creates every VMA of the image (writable while pages are filled).
// `file_fds[i]` is the tracee's descriptor for file i (or -1).
Status CreateVmas(const ProcessModel& m, Injector* inj, const std::vector<int>& file_fds);
// Gives every VMA its final protection and madvise flags.
Status FinishVmas(const ProcessModel& m, Injector* inj);
// PR_SET_MM_MAP with the image's layout and auxv; `exe_fd` is the tracee's fd
// of the executable.
Status RestoreMmLayout(const ProcessModel& m, Injector* inj, int exe_fd);

// True for VMAs that restore creates (not vdso/vvar/vsyscall).
bool IsRestorableVma(const Vma& v);

}  // namespace ckpt::engine
