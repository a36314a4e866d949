#include "engine/mm.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "engine/shared_mem.h"
#include "platform/posix_util.h"

namespace ckpt::engine {

namespace {

std::string Range(const Vma& v) {
  return HexAddr(v.start) + "-" + HexAddr(v.end) + " " + v.name;
}

}  // namespace

bool IsRestorableVma(const Vma& v) {
  return v.kind != VmaKind::kVdso && v.kind != VmaKind::kVvar && v.kind != VmaKind::kVsyscall;
}

Status DumpVmas(pid_t pid, const std::vector<MapsEntry>& maps, FileTable* files, ProcessModel* m) {
  for (const auto& e : maps) {
    Vma v;
    v.start = e.start;
    v.end = e.end;
    v.prot = e.prot;
    v.pgoff = e.pgoff;
    v.name = e.path;
    v.shares_pages = e.shared_kb != 0;
    if (e.shared) v.flags |= kVmaShared;
    if (e.HasFlag("gd")) v.flags |= kVmaGrowsDown;
    if (e.HasFlag("mw")) v.flags |= kVmaMayWrite;
    if (e.HasFlag("hg")) v.flags |= kVmaHugePage;
    if (e.HasFlag("nh")) v.flags |= kVmaNoHugePage;
    if (e.HasFlag("dc")) v.flags |= kVmaDontFork;
    if (e.HasFlag("wf")) v.flags |= kVmaWipeOnFork;
    if (e.HasFlag("dd")) v.flags |= kVmaDontDump;
    if (e.HasFlag("lo")) v.flags |= kVmaLocked;
    if (e.path == "[vdso]") {
      v.kind = VmaKind::kVdso;
    } else if (e.path.compare(0, 5, "[vvar") == 0) {
      v.kind = VmaKind::kVvar;
    } else if (e.path == "[vsyscall]") {
      v.kind = VmaKind::kVsyscall;
    } else if (e.path == "[heap]") {
      v.kind = VmaKind::kHeap;
    } else if (e.path == "[stack]") {
      v.kind = VmaKind::kStack;
    } else if (ShmKind shm; ClassifySharedMapping(pid, e, &shm)) {
      // One object of the tree, stored once (shared_mem.cc).
      v.kind = shm == ShmKind::kSysv ? VmaKind::kSysvShm : VmaKind::kSharedAnon;
      v.flags |= kVmaSharedObject;
    } else if (e.path.empty() || e.path[0] == '[') {
      v.kind = e.shared ? VmaKind::kSharedAnon : VmaKind::kAnon;
    } else {
      bool deleted = false;
      StripDeleted(e.path, &deleted);
      struct stat st;
      std::string mf = ProcPath(pid, "map_files/" + HexAddr(e.start) + "-" + HexAddr(e.end));
      bool have = ::stat(mf.c_str(), &st) == 0;
      if (deleted || !have || !S_ISREG(st.st_mode)) {
        // A deleted file, memfd or device mapping: keep its contents instead.
        if (have && S_ISCHR(st.st_mode) && !deleted) {
          return NotSupported("mapping " + Range(v) + " of a device is not supported");
        }
        v.kind = e.shared ? VmaKind::kSharedAnon : VmaKind::kAnon;
        v.flags |= kVmaAllPages;
      } else {
        v.kind = VmaKind::kFile;
        v.file = files->Add(e.path, st, true);
      }
    }
    m->vmas.push_back(std::move(v));
  }
  return Status::Ok();
}

Status DumpMmLayout(pid_t pid, Injector* inj, Core* core) {
  ASSIGN_OR_RETURN(auto f, ReadStat(pid));
  if (f.size() < 49) return Corruption("short " + ProcPath(pid, "stat"));
  auto field = [&](int n) { return std::strtoull(f[n - 3].c_str(), nullptr, 10); };
  MmLayout& mm = core->mm;
  mm.start_code = field(26);
  mm.end_code = field(27);
  mm.start_stack = field(28);
  mm.start_data = field(45);
  mm.end_data = field(46);
  mm.start_brk = field(47);
  mm.arg_start = field(48);
  mm.arg_end = field(49);
  mm.env_start = field(50);
  mm.env_end = field(51);
  ASSIGN_OR_RETURN(mm.brk, inj->Call("brk(0)", SYS_brk, {0}));
  ASSIGN_OR_RETURN(std::string auxv, ReadProcFile(pid, "auxv"));
  for (std::size_t i = 0; i + 16 <= auxv.size(); i += 16) {
    std::uint64_t k, v;
    std::memcpy(&k, auxv.data() + i, 8);
    std::memcpy(&v, auxv.data() + i + 8, 8);
    core->auxv.push_back(k);
    core->auxv.push_back(v);
    if (k == 0) break;
  }
  return Status::Ok();
}

Status ClearAddressSpace(Injector* inj, const std::vector<MapsEntry>& maps, std::uint64_t keep_lo,
                         std::uint64_t keep_hi) {
  // Runs of mappings between the kept ones go in one munmap each (holes
  // inside a range are fine): a few calls instead of one per mapping.
  std::uint64_t run_lo = 0, run_hi = 0;
  auto flush = [&]() -> Status {
    if (run_hi <= run_lo) return Status::Ok();
    Status st =
        inj->Call("munmap " + HexAddr(run_lo) + "-" + HexAddr(run_hi), SYS_munmap, {run_lo, run_hi - run_lo})
            .status();
    run_lo = run_hi = 0;
    return st;
  };
  auto add = [&](std::uint64_t lo, std::uint64_t hi) -> Status {
    // Never across the kept area: it is not in `maps` (made after them).
    if (run_hi > run_lo && run_hi <= keep_lo && lo >= keep_hi) RETURN_IF_ERROR(flush());
    if (run_hi <= run_lo) run_lo = lo;
    run_hi = hi;
    return Status::Ok();
  };
  std::vector<MapsEntry> sorted = maps;
  std::sort(sorted.begin(), sorted.end(),
            [](const MapsEntry& a, const MapsEntry& b) { return a.start < b.start; });
  for (const auto& e : sorted) {
    if (e.path == "[vdso]" || e.path.compare(0, 5, "[vvar") == 0 || e.path == "[vsyscall]") {
      RETURN_IF_ERROR(flush());
      continue;
    }
    std::uint64_t lo = e.start, hi = e.end;
    if (lo < keep_hi && hi > keep_lo) {
      // Unmap around the kept area.
      if (lo < keep_lo) RETURN_IF_ERROR(add(lo, keep_lo));
      RETURN_IF_ERROR(flush());
      if (hi > keep_hi) RETURN_IF_ERROR(add(keep_hi, hi));
      continue;
    }
    RETURN_IF_ERROR(add(lo, hi));
  }
  return flush();
}

Status CreateVmas(const ProcessModel& m, Injector* inj, const std::vector<int>& file_fds) {
  for (const auto& v : m.vmas) {
    if (!IsRestorableVma(v) || (v.flags & kVmaSharedObject) != 0) continue;
    std::uint64_t prot = v.prot | PROT_READ | PROT_WRITE;
    std::uint64_t flags = MAP_FIXED | ((v.flags & kVmaShared) != 0 ? MAP_SHARED : MAP_PRIVATE);
    if ((v.flags & kVmaGrowsDown) != 0) flags |= MAP_GROWSDOWN;
    std::uint64_t fd = static_cast<std::uint64_t>(-1);
    std::uint64_t off = 0;
    if (v.kind == VmaKind::kFile) {
      fd = static_cast<std::uint64_t>(file_fds.at(v.file));
      off = v.pgoff;
      // A shared mapping of a read-only descriptor cannot be made writable.
      if ((v.flags & kVmaShared) != 0 && (v.flags & kVmaMayWrite) == 0) prot = v.prot;
    } else {
      flags |= MAP_ANONYMOUS;
    }
    ASSIGN_OR_RETURN(std::uint64_t got,
                     inj->Call("mmap " + Range(v), SYS_mmap, {v.start, v.size(), prot, flags, fd, off}));
    if (got != v.start) {
      return Internal("mmap " + Range(v) + " returned address " + HexAddr(got) + " instead of " +
                      HexAddr(v.start));
    }
  }
  return Status::Ok();
}

Status FinishVmas(const ProcessModel& m, Injector* inj) {
  for (const auto& v : m.vmas) {
    if (!IsRestorableVma(v)) continue;
    RETURN_IF_ERROR(inj->Call("mprotect " + Range(v), SYS_mprotect, {v.start, v.size(), v.prot}).status());
    auto advise = [&](std::uint32_t bit, int advice) -> Status {
      if ((v.flags & bit) == 0) return Status::Ok();
      return inj
          ->Call("madvise " + Range(v), SYS_madvise, {v.start, v.size(), static_cast<std::uint64_t>(advice)})
          .status();
    };
    RETURN_IF_ERROR(advise(kVmaHugePage, MADV_HUGEPAGE));
    RETURN_IF_ERROR(advise(kVmaNoHugePage, MADV_NOHUGEPAGE));
    RETURN_IF_ERROR(advise(kVmaDontFork, MADV_DONTFORK));
    RETURN_IF_ERROR(advise(kVmaWipeOnFork, MADV_WIPEONFORK));
    RETURN_IF_ERROR(advise(kVmaDontDump, MADV_DONTDUMP));
  }
  return Status::Ok();
}

Status RestoreMmLayout(const ProcessModel& m, Injector* inj, int exe_fd) {
  const MmLayout& l = m.core.mm;
  std::string auxv;
  for (std::uint64_t v : m.core.auxv) auxv.append(reinterpret_cast<const char*>(&v), 8);
  ASSIGN_OR_RETURN(std::uint64_t auxv_at, inj->PutScratch(2048, auxv.data(), auxv.size()));
  std::uint64_t map[13] = {
      l.start_code, l.end_code, l.start_data, l.end_data, l.start_brk, l.brk, l.start_stack,
      l.arg_start,  l.arg_end,  l.env_start,  l.env_end,  auxv_at,     0};
  std::uint32_t tail[2] = {static_cast<std::uint32_t>(auxv.size()), static_cast<std::uint32_t>(exe_fd)};
  std::memcpy(&map[12], tail, 8);
  ASSIGN_OR_RETURN(std::uint64_t map_at, inj->PutScratch(0, map, sizeof map));
  return inj->Call("prctl(PR_SET_MM_MAP)", SYS_prctl, {PR_SET_MM, PR_SET_MM_MAP, map_at, sizeof map})
      .status();
}

}  // namespace ckpt::engine
