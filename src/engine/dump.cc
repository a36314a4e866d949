// ckpt dump: freeze, collect every resource, write the image under a
// temporary name, rename it into place, then kill or release the process.
#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "engine/engine.h"
#include "engine/files.h"
#include "engine/filetable.h"
#include "engine/mm.h"
#include "engine/pagemap.h"
#include "engine/proc.h"
#include "engine/ptrace.h"
#include "engine/signals.h"
#include "engine/task.h"
#include "engine/threads.h"
#include "engine/timers.h"
#include "engine/vdso.h"
#include "platform/env.h"

namespace ckpt::engine {

namespace {

std::int64_t NowNs() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// If the traced process died, says how ("" if it is alive). A SIGKILL
// takes a moment to be seen, so this looks a few times before answering.
std::string DeathOf(pid_t pid) {
  for (int i = 0; i < 30; ++i) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, __WALL | WNOHANG);
    if (r == pid && !WIFSTOPPED(status)) return DescribeWaitStatus(status);
    if (::kill(pid, 0) != 0 && errno == ESRCH) return "exited";
    auto stat = ReadStat(pid);
    if (!stat.ok()) return "exited";
    if (!stat->empty() && ((*stat)[0] == "Z" || (*stat)[0] == "X")) return "exited";
    struct timespec ts = {0, 10 * 1000 * 1000};
    ::nanosleep(&ts, nullptr);
  }
  return "";
}

Status Collect(FrozenProcess& fp, ProcessModel* m, std::vector<Blob>* blobs, std::uint64_t* gadget_out) {
  pid_t pid = fp.pid();
  FileTable files;
  ASSIGN_OR_RETURN(auto maps, ReadMaps(pid, true));
  RETURN_IF_ERROR(DumpTask(pid, &files, &m->core));
  RETURN_IF_ERROR(DumpVmas(pid, maps, &files, m));
  if (!arch::IsNative64(fp.threads()[0].regs)) {
    return NotSupported("process " + std::to_string(pid) +
                        " runs 32-bit code; only x86-64 processes are supported");
  }
  std::vector<std::pair<std::uint64_t, std::uint64_t>> exec;
  for (const auto& v : m->vmas) {
    // The vDSO first: it is small and always has a syscall (its fallbacks).
    if ((v.prot & 4) != 0 && v.kind == VmaKind::kVdso)
      exec.insert(exec.begin(), {v.start, v.end});
    else if ((v.prot & 4) != 0 && (v.prot & 1) != 0 && IsRestorableVma(v))
      exec.push_back({v.start, v.end});
  }
  ASSIGN_OR_RETURN(std::uint64_t insn, FindSyscallInstruction(pid, exec));
  ASSIGN_OR_RETURN(std::uint64_t gadget, BootstrapGadget(pid, insn));
  *gadget_out = gadget;
  Injector leader(pid, gadget);
  RETURN_IF_ERROR(leader.Save());
  Status st = DumpMmLayout(pid, &leader, &m->core);
  if (st.ok()) st = DumpSignals(&leader, &m->signals);
  if (st.ok()) st = DumpTimers(&leader, &m->core);
  RETURN_IF_ERROR(leader.Restore());
  RETURN_IF_ERROR(st);
  RETURN_IF_ERROR(DumpThreads(fp, gadget, m));
  m->core.xsave_size = static_cast<std::uint32_t>(m->threads[0].xsave.size());
  RETURN_IF_ERROR(DumpFds(pid, &files, m, blobs));
  RETURN_IF_ERROR(DumpVdso(pid, m->vmas, &m->vdso));
  m->files = files.files();
  return Status::Ok();
}

Status RemoveGadget(pid_t pid, std::uint64_t gadget) {
  Injector inj(pid, gadget);
  RETURN_IF_ERROR(inj.Save());
  Status st = inj.UnmapGadgetArea();
  Status rs = inj.Restore();
  return st.ok() ? rs : st;
}

}  // namespace

Result<DumpStats> Dump(const DumpOptions& o) {
  DumpStats stats;
  std::int64_t t0 = NowNs();
  platform::Env* env = platform::Env::Default();
  RETURN_IF_ERROR(env->CreateDirs(o.dir));
  std::string final_path = platform::JoinPath(o.dir, kImageFileName);
  std::string tmp_path = final_path + ".tmp";
  stats.image_path = final_path;

  ASSIGN_OR_RETURN(auto fp, FrozenProcess::Freeze(o.pid));
  std::int64_t t_frozen = NowNs();
  pid_t pid = o.pid;
  ProcessModel m;
  std::vector<Blob> blobs;
  std::uint64_t gadget = 0;
  bool released = false;
  Progress progress = o.progress;
  const char* fault = std::getenv("CKPT_ENGINE_FAULT");
  if (fault != nullptr && std::strcmp(fault, "kill-during-dump") == 0) {
    // Test hook: the process dies while its memory is being read.
    progress = [pid, &o](std::uint64_t done, std::uint64_t total) {
      ::kill(pid, SIGKILL);
      if (o.progress) o.progress(done, total);
    };
  }

  Status st = [&]() -> Status {
    RETURN_IF_ERROR(Collect(*fp, &m, &blobs, &gadget));
    ASSIGN_OR_RETURN(auto candidates, CollectPopulatedPages(pid, m.vmas));
    ASSIGN_OR_RETURN(auto file, env->NewWritableFile(tmp_path));
    image::WriterOptions wo;
    wo.frame_size = kImageFrameSize;  // one frame per dump chunk: written without a copy
    image::ImageWriter w(file.get(), image::ImageKind::kProcess, wo);
    RETURN_IF_ERROR(w.Begin());
    RETURN_IF_ERROR(WriteModel(&w, m));
    for (const auto& b : blobs) RETURN_IF_ERROR(w.AddSection(kSecBlob, b.name, "", b.data));
    ASSIGN_OR_RETURN(PageDumpResult pages, WritePages(pid, candidates, &w, progress));
    m.pagemap = std::move(pages.runs);
    stats.pages_stored = PagemapPages(m.pagemap);
    stats.zero_pages_skipped = pages.zero_pages;
    RETURN_IF_ERROR(w.AddSection(kSecPagemap, "pagemap", "", EncodePagemap(m.pagemap)));
    RETURN_IF_ERROR(w.Finish());
    stats.image_bytes = file->Position();
    RETURN_IF_ERROR(RemoveGadget(pid, gadget));
    gadget = 0;
    if (o.leave_running) {
      // Everything is read: the process may run on while the image is made
      // durable (it is renamed into place only after that).
      RETURN_IF_ERROR(
          fp->Release().WithContext("releasing process " + std::to_string(pid) + " after the dump"));
      released = true;
      stats.frozen_ns = NowNs() - t_frozen;
    }
    if (o.sync) RETURN_IF_ERROR(file->Sync());
    RETURN_IF_ERROR(file->Close());
    RETURN_IF_ERROR(env->RenameFile(tmp_path, final_path));
    return env->SyncDir(o.dir);
  }();
  if (!st.ok()) {
    env->RemoveFile(tmp_path).IgnoreError();
    std::string death = released ? "" : DeathOf(pid);
    if (!death.empty()) {
      return FailedPrecondition("process " + std::to_string(pid) + " " + death +
                                " during the dump; no image was written (a previous image in " + o.dir +
                                " is unchanged)");
    }
    if (gadget != 0) RemoveGadget(pid, gadget).IgnoreError();
    fp->Release().IgnoreError();
    return st.WithContext("dump of process " + std::to_string(pid));
  }
  stats.threads = static_cast<int>(m.threads.size());
  stats.vmas = static_cast<int>(m.vmas.size());
  stats.fds = static_cast<int>(m.fds.size());
  if (!released) {
    // The image is durable and in place: only now may the process go.
    Status end = fp->KillNoWait();
    stats.frozen_ns = NowNs() - t_frozen;
    RETURN_IF_ERROR(end.WithContext("killing process " + std::to_string(pid) + " after the dump"));
  }
  stats.total_ns = NowNs() - t0;
  return stats;
}

}  // namespace ckpt::engine
