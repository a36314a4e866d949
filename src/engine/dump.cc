// ckpt dump: freeze, collect every resource, write the image under a
// temporary name, rename it into place, then kill or release the process.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>

#include "engine/creds.h"
#include "engine/engine.h"
#include "engine/files.h"
#include "engine/filetable.h"
#include "engine/guard.h"
#include "engine/image_file.h"
#include "engine/incremental.h"
#include "engine/lazy.h"
#include "engine/mm.h"
#include "engine/pagemap.h"
#include "engine/pipes.h"
#include "engine/precheck.h"
#include "engine/proc.h"
#include "engine/ptrace.h"
#include "engine/resource.h"
#include "engine/signals.h"
#include "engine/sysv.h"
#include "engine/task.h"
#include "engine/threads.h"
#include "engine/timers.h"
#include "engine/tree.h"
#include "engine/util.h"
#include "engine/vdso.h"
#include "platform/env.h"
#include "platform/posix_util.h"
#include "util/bytes.h"

namespace ckpt::engine {

namespace {

// True if `pid`, in a ptrace stop, is certainly alive: not exiting, and no
// SIGKILL queued (a kill() is visible as pending as soon as it returns).
bool AliveInTraceStop(pid_t pid, const std::vector<std::string>& stat) {
  constexpr unsigned long kPfExiting = 0x4;
  if (stat.size() <= 6 || stat[0] != "t" || (std::strtoul(stat[6].c_str(), nullptr, 10) & kPfExiting) != 0)
    return false;
  for (const char* key : {"SigPnd", "ShdPnd"}) {
    auto v = StatusField(pid, key);
    if (!v.ok() || ((std::strtoull(v->c_str(), nullptr, 16) >> (SIGKILL - 1)) & 1) != 0) return false;
  }
  return true;
}

// If the traced process died, says how ("" if it is alive). A SIGKILL
// takes a moment to be seen, so this looks a few times before answering —
// unless the process is plainly alive (a refusal after the freeze must not
// keep it stopped 0.3 s longer).
std::string DeathOf(pid_t pid) {
  for (int i = 0; i < 30; ++i) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, __WALL | WNOHANG);
    if (r == pid && !WIFSTOPPED(status)) return DescribeWaitStatus(status);
    if (::kill(pid, 0) != 0 && errno == ESRCH) return "exited";
    auto stat = ReadStat(pid);
    if (!stat.ok()) return "exited";
    if (!stat->empty() && ((*stat)[0] == "Z" || (*stat)[0] == "X")) return "exited";
    if (AliveInTraceStop(pid, *stat)) return "";
    struct timespec ts = {0, 10 * 1000 * 1000};
    ::nanosleep(&ts, nullptr);
  }
  return "";
}

Status Collect(FrozenProcess& fp, ProcessModel* m, std::vector<Blob>* blobs, std::uint64_t* gadget_out) {
  pid_t pid = fp.pid();
  // What PrecheckDump refused before the freeze, once more: the process ran
  // on in between (took a lock, created a timer, installed a filter).
  RETURN_IF_ERROR(RecheckFrozen(pid));
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
  NoteGadget(pid, gadget);
  Injector leader(pid, gadget);
  RETURN_IF_ERROR(leader.Save());
  Status st = DumpMmLayout(pid, &leader, &m->core);
  if (st.ok()) st = DumpSignals(&leader, &m->signals);
  if (st.ok() && fp.group_stopped()) RecordGroupStop(&m->signals);  // restored stopped
  if (st.ok()) st = DumpTimers(&leader, &m->core);
  if (st.ok()) st = DumpPosixTimers(pid, &leader, &m->posix_timers);
  RETURN_IF_ERROR(leader.Restore());
  RETURN_IF_ERROR(st);
  RETURN_IF_ERROR(DumpThreads(fp, gadget, m));
  RETURN_IF_ERROR(DumpCreds(fp, gadget, &m->creds));
  m->core.xsave_size = static_cast<std::uint32_t>(m->threads[0].xsave.size());
  RETURN_IF_ERROR(DumpFds(pid, &files, m, blobs));
  (void)blobs;
  RETURN_IF_ERROR(DumpVdso(pid, m->vmas, &m->vdso));
  m->files = files.files();
  return Status::Ok();
}

Status RemoveGadget(pid_t pid, std::uint64_t gadget) {
  Injector inj(pid, gadget);
  RETURN_IF_ERROR(inj.Save());
  Status st = inj.UnmapGadgetArea();
  Status rs = inj.Restore();
  if (st.ok()) NoteGadget(pid, 0);
  return st.ok() ? rs : st;
}

// Test hook: DumpOptions::fault "kill-worker-at-WHERE" makes the worker kill
// itself there (the ckpt process that started it repairs what it can).
void MaybeKillWorker(const DumpOptions& o, const char* where) {
  if (o.fault.rfind("kill-worker-at-", 0) == 0 && o.fault.compare(15, std::string::npos, where) == 0)
    ::raise(SIGKILL);
}

// Before the members are killed: a member killed while its parent lives on
// as a zombie until someone reaps it, and a zombie whose parent dies goes
// to init, which may reap it late — its PID stays taken, and a restore
// right after would wait for it. So every member that has children in the
// tree reaps its zombie children now and ignores SIGCHLD (the kernel then
// reaps its children as they die). Best effort: the image is already safe.
void PrepareReaping(const std::vector<Member>& members, const std::vector<MemberDump>& md) {
  for (const auto& d : md) {
    bool parent = false;
    for (const auto& c : members) parent = parent || c.ppid == d.pid;
    if (!parent || d.gadget == 0) continue;
    Injector inj(d.pid, d.gadget);
    if (!inj.Save().ok()) continue;
    for (const auto& c : members) {
      if (c.ppid == d.pid && c.zombie)
        (void)inj.Raw(SYS_wait4, {static_cast<std::uint64_t>(c.pid), 0, __WALL, 0});
    }
    std::uint64_t act[4] = {reinterpret_cast<std::uint64_t>(SIG_IGN), 0, 0,
                            0};  // handler, flags, restorer, mask
    auto at = inj.PutScratch(0, act, sizeof act);
    if (at.ok()) (void)inj.Raw(SYS_rt_sigaction, {SIGCHLD, *at, 0, 8});
    (void)inj.Restore();
  }
}

// The error of a dump that a signal (or the death of ckpt) stopped before
// its image was complete (or, with a handoff, before the handoff said yes):
// everything was put back. `handoff` is the handoff's own error, if it ran.
Status InterruptedError(const DumpOptions& o, const Status& release, const Status* handoff) {
  std::string msg =
      "dump of process " + std::to_string(o.pid) + " " + InterruptionText() +
      (handoff != nullptr ? " before the handoff was complete" : " before the image was complete") +
      ": everything ckpt had changed was put back and " +
      (o.tree ? "the processes run on" : "the process runs on") + " as before; ";
  if (o.stream != nullptr) {
    msg += handoff != nullptr ? "the image sent must not be used" : "the image sent is incomplete";
  } else {
    msg += "no image was written (a previous image in " + o.dir + " is unchanged)";
  }
  if (handoff != nullptr && !handoff->ok()) msg += " (the handoff: " + handoff->message() + ")";
  if (!release.ok()) msg += "; but letting them go failed: " + release.message();
  return FailedPrecondition(msg);
}

// Writes every member's model, blobs and (incremental dumps) inherited
// pages and tracker: all of them come before the first page, so that a
// restore reading the image as it arrives can set the whole tree up while
// the pages are still coming.
Status WriteMemberModels(const std::vector<MemberDump>& md, const TreeModel& t, bool incremental,
                         image::ImageWriter* w) {
  for (const auto& d : md) {
    std::string prefix = SectionPrefix(t, d.pid);
    RETURN_IF_ERROR(WriteModel(w, d.m, prefix));
    for (const auto& b : d.blobs) RETURN_IF_ERROR(w->AddSection(kSecBlob, prefix + b.name, "", b.data));
    RETURN_IF_ERROR(WriteMemberDelta(w, prefix, incremental, d.inherited, d.tracker, d.remote));
  }
  return Status::Ok();
}

// Writes every member's pages, each followed by its pagemap. `file`: the
// image file, for the in-place page copy (null with a stream: ckpt copies
// the pages).
// `po`: for every member (`all_read` only with one member).
Status WriteMemberPages(std::vector<MemberDump>& md, const TreeModel& t, image::ImageWriter* w,
                        platform::WritableFile* file, const Progress& progress, PageWriteOptions po,
                        DumpStats* stats) {
  const bool incremental = po.section_type == kSecDeltaPages;
  if (md.size() != 1) po.all_read = nullptr;
  for (auto& d : md) {
    std::string prefix = SectionPrefix(t, d.pid);
    // On request, one copy: the process writes its own pages into the
    // image. Otherwise, or where it cannot, ckpt reads them
    // (process_vm_readv) and writes them itself.
    Result<PageDumpResult> in_place = NotSupported("in-place page copy not asked for");
    if (file != nullptr && po.in_place && !incremental && !po.running) {
      Injector inj(d.pid, d.gadget);
      RETURN_IF_ERROR(inj.Save());
      in_place = WritePagesInPlace(d.pid, &inj, d.candidates, w, file, prefix, progress);
      Status back = inj.Restore();
      if (!in_place.ok() && in_place.status().code() != Code::kNotSupported) return in_place.status();
      RETURN_IF_ERROR(back);
    }
    std::string how = in_place.ok() ? "in-place" : "readv";
    stats->page_copy = stats->page_copy.empty() || stats->page_copy == how ? how : "mixed";
    if (!in_place.ok()) {
      ASSIGN_OR_RETURN(in_place, WritePages(d.pid, d.candidates, w, prefix, progress, po));
    }
    PageDumpResult pages = std::move(in_place).value();
    d.m.pagemap = std::move(pages.runs);
    stats->pages_stored += PagemapPages(d.m.pagemap);
    stats->zero_pages_skipped += pages.zero_pages;
    RETURN_IF_ERROR(w->AddSection(kSecPagemap, prefix + "pagemap", "", EncodePagemap(d.m.pagemap)));
  }
  return Status::Ok();
}

void CountMembers(const TreeModel& t, const std::vector<MemberDump>& md, DumpStats* stats) {
  stats->members = static_cast<int>(t.members.size());
  stats->shared_objects = static_cast<int>(t.objects.size());
  stats->sysv_sems = static_cast<int>(t.sems.size());
  stats->sysv_queues = static_cast<int>(t.queues.size());
  stats->threads = stats->vmas = stats->fds = 0;
  for (const auto& d : md) {
    stats->threads += static_cast<int>(d.m.threads.size());
    stats->vmas += static_cast<int>(d.m.vmas.size());
    stats->fds += static_cast<int>(d.m.fds.size());
  }
}

// Everything a dump holds between its steps.
struct DumpRun {
  const DumpOptions& o;
  DumpStats stats;
  FrozenTree tree;
  TreeModel t;
  std::vector<MemberDump> md;
  PipeCensus pipe_census;
  DumpTable resources;
  DumpContext ctx;
  std::int64_t t_frozen = 0, mark = 0;
  std::string final_path, old_image;  // old_image: a previous image, swapped out by the new one
  std::optional<ParentImage> parent;  // --parent
  ImageId id{};
  bool released = false;
  bool handoff_called = false;
  Status handoff_status;
  PageBuffers buffers;  // populated before the freeze

  explicit DumpRun(const DumpOptions& opts) : o(opts), ctx{o, t, md, &pipe_census, &stats} {}
  // Adds the time since the last mark to `phase`.
  void Lap(std::int64_t* phase) {
    std::int64_t now = NowNs();
    *phase += now - mark;
    mark = now;
  }
  Status ReleaseAll() {
    Status first;
    for (auto& f : tree.frozen) {
      if (f == nullptr) continue;
      Status s = f->Release();
      if (first.ok() && !s.ok()) first = s;
    }
    return first;
  }
};

// Reads everything of the frozen members but their pages: each member's
// core, then every resource in table order (the communication state), then
// which pages are populated.
Status CollectAll(DumpRun& r) {
  for (auto& d : r.md) {
    RETURN_IF_ERROR(CheckInterrupted());
    RETURN_IF_ERROR(
        Collect(*d.fp, &d.m, &d.blobs, &d.gadget).WithContext("process " + std::to_string(d.pid)));
  }
  RETURN_IF_ERROR(CheckInterrupted());
  MaybeKillWorker(r.o, "collect");
  r.Lap(&r.stats.phases.collect_ns);
  // Communication state (timed apart: DumpStats::comm_ns).
  std::int64_t tc = NowNs();
  RETURN_IF_ERROR(r.resources.Each([&](DumpResource& res) -> Status {
    RETURN_IF_ERROR(res.Collect(r.ctx));
    return CheckInterrupted();
  }));
  r.stats.comm_ns += NowNs() - tc;
  r.Lap(&r.stats.phases.comm_ns);
  RETURN_IF_ERROR(CheckInterrupted());
  for (auto& d : r.md) {
    ASSIGN_OR_RETURN(d.candidates, CollectPopulatedPages(d.pid, d.m.vmas, r.o.pagemap_scan));
    if (!r.parent) continue;
    // With a parent image: the pages not written since it was taken stay there.
    auto pm = r.parent->members.find(d.pid);
    std::string why_not;
    if (pm == r.parent->members.end()) {
      why_not = "process " + std::to_string(d.pid) + " is not in the parent image: every page stored";
    } else {
      RETURN_IF_ERROR(SplitAgainstParent(d.pid, pm->second, &d.candidates, &d.inherited, &why_not));
      // Rounds of one migration: its tracker goes on (ArmTrackers).
      if (why_not.empty() && r.o.precopy) {
        d.keep_tracker = true;
        d.tracker = pm->second.tracker;
      }
    }
    if (!why_not.empty()) r.stats.notes.push_back(why_not);
    r.stats.pages_inherited += PagemapPages(d.inherited);
  }
  if (r.o.postcopy) {
    // Post-copy: the pages a lazy restore can fill on the target stay
    // here (sent by the handoff); the others go into the image.
    for (auto& d : r.md) {
      d.remote = RunsIntersect(d.candidates, LazyEligibleRuns(d.m.vmas));
      // The restore itself touches a thread's rseq area (the kernel writes
      // it when rseq is registered), before the pages can come: stored.
      std::vector<PageRun> early;
      for (const ThreadState& t : d.m.threads) {
        if (t.rseq_ptr == 0 || t.rseq_len == 0) continue;
        std::uint64_t lo = t.rseq_ptr & ~(kPageSize - 1);
        std::uint64_t hi = (t.rseq_ptr + t.rseq_len + kPageSize - 1) & ~(kPageSize - 1);
        early.push_back({lo, (hi - lo) / kPageSize});
      }
      d.remote = RunsSubtract(d.remote, RunsUnion(early, {}));
      d.candidates = RunsSubtract(d.candidates, d.remote);
      for (const PageRun& run : d.remote) r.stats.remote.push_back({d.pid, run.addr, run.pages});
    }
  }
  r.Lap(&r.stats.phases.pagemap_ns);
  return CheckInterrupted();
}

// --pre: a new dirty tracker in every member, write-protecting the pages
// the image holds (stored or inherited). A member where that fails is
// dumped anyway, untracked, and said so.
void ArmTrackers(DumpRun& r) {
  // Every old tracker goes before any new one is armed (CloseTracker).
  std::vector<Status> closed;
  for (auto& d : r.md) {
    closed.push_back([&]() -> Status {
      if (d.keep_tracker) return Status::Ok();
      ASSIGN_OR_RETURN(Tracker old, FindTracker(d.pid));
      Injector inj(d.pid, d.gadget);
      RETURN_IF_ERROR(inj.Save());
      Status st = CloseTracker(&inj, old);
      RETURN_IF_ERROR(inj.Restore());
      return st;
    }());
  }
  for (std::size_t i = 0; i < r.md.size(); ++i) {
    MemberDump& d = r.md[i];
    int untracked = 0;
    Status st = !closed[i].ok() ? closed[i] : [&]() -> Status {
      if (d.keep_tracker) return RearmTracker(d.pid, d.tracker, d.m.vmas, &untracked);
      Injector inj(d.pid, d.gadget);
      RETURN_IF_ERROR(inj.Save());
      auto armed = ArmTracker(d.pid, &inj, d.m.vmas, RunsUnion(d.candidates, d.inherited), &untracked);
      RETURN_IF_ERROR(inj.Restore());
      RETURN_IF_ERROR(armed.status());
      d.tracker = *armed;
      return Status::Ok();
    }();
    std::string who = "process " + std::to_string(d.pid);
    if (!st.ok()) {
      d.tracker = Tracker{};
      r.stats.notes.push_back(who + ": dirty tracking could not be armed (" + st.message() +
                              "); a dump with --parent of this image will store every page");
      continue;
    }
    ++r.stats.trackers_armed;
    if (untracked > 0) {
      r.stats.notes.push_back(
          who + ": " + std::to_string(untracked) +
          " mappings could not be tracked (the kernel refused them); a dump with --parent "
          "of this image stores their pages in full");
    }
  }
}

// With --leave-running, once everything is read: SEM_UNDO adjustments go
// back (injected semops) before the gadgets go, then the members run on.
Status ReleaseAfterImage(DumpRun& r) {
  RETURN_IF_ERROR(r.resources.PutBack(r.ctx));
  for (auto& d : r.md) {
    RETURN_IF_ERROR(RemoveGadget(d.pid, d.gadget));
    d.gadget = 0;
  }
  RETURN_IF_ERROR(
      r.ReleaseAll().WithContext("releasing process " + std::to_string(r.o.pid) + " after the dump"));
  r.released = true;
  r.stats.frozen_ns = NowNs() - r.t_frozen;
  r.Lap(&r.stats.phases.end_ns);
  return Status::Ok();
}

// The image is complete in the stream: the handoff decides its fate. An
// interruption before it undoes the dump without asking.
Status Handoff(DumpRun& r) {
  r.Lap(&r.stats.phases.finish_ns);
  RETURN_IF_ERROR(CheckInterrupted());
  MaybeKillWorker(r.o, "handoff");
  if (!r.released) r.stats.frozen_ns = NowNs() - r.t_frozen;  // so far (a pre-copy round ran on)
  r.handoff_called = true;
  r.handoff_status = r.o.handoff(r.stats);
  r.Lap(&r.stats.phases.handoff_ns);
  RETURN_IF_ERROR(r.handoff_status);
  // Decided: the members end as asked, whatever arrives from here on (if
  // this worker dies now, the ckpt process that started it kills them).
  NoteImageInPlace();
  if (!r.o.leave_running) NoteKilling();
  return Status::Ok();
}

// Writes the image (into a new file in DIR, or the stream), hands it off or
// makes it durable and gives it its name; with --leave-running the members
// run on meanwhile.
Status WriteAndCommit(DumpRun& r, const Progress& progress) {
  const DumpOptions& o = r.o;
  platform::Env* env = platform::Env::Default();
  RETURN_IF_ERROR(CollectAll(r));
  if (o.pre || o.precopy) ArmTrackers(r);
  // Written without a name (O_TMPFILE) or under an exclusive random one,
  // never an existing file or a symlink; removed unless committed.
  std::unique_ptr<platform::TempFile> file;
  if (o.stream == nullptr) {
    ASSIGN_OR_RETURN(file, env->NewTempFile(o.dir, kImageFileName, o.image_mode));
  }
  image::Sink* sink = o.stream != nullptr ? o.stream : file.get();
  image::WriterOptions wo;
  wo.frame_size = kImageFrameSize;  // one frame per dump chunk: written without a copy
  image::ImageWriter w(sink, image::ImageKind::kProcess, wo);
  // What a restore needs first comes first (docs/image-format.md): the
  // shared objects' pages (the tree model lists their runs), the tree
  // model, the blobs, every member's model, then the members' pages.
  RETURN_IF_ERROR(w.Begin());
  RETURN_IF_ERROR(WriteIdentity(&w, r.id, r.parent ? &*r.parent : nullptr, o.dir));
  if (o.precopy) RETURN_IF_ERROR(w.AddSection(kSecPrecopy, "precopy", "", ""));
  std::int64_t tc = NowNs();
  RETURN_IF_ERROR(r.resources.Each([&](DumpResource& res) { return res.WriteBeforeTree(r.ctx, &w); }));
  std::uint64_t before_tree = sink->Position();
  RETURN_IF_ERROR(WriteTreeModel(&w, r.t));
  r.stats.tree_meta_bytes = sink->Position() - before_tree;
  RETURN_IF_ERROR(r.resources.Each([&](DumpResource& res) { return res.WriteAfterTree(r.ctx, &w); }));
  const bool incremental = r.parent.has_value() || o.postcopy;
  RETURN_IF_ERROR(WriteMemberModels(r.md, r.t, incremental, &w));
  r.stats.comm_ns += NowNs() - tc;
  r.Lap(&r.stats.phases.comm_ns);
  RETURN_IF_ERROR(CheckInterrupted());
  // A pre-copy round: the processes run on while their pages are copied.
  if (o.precopy) RETURN_IF_ERROR(ReleaseAfterImage(r));
  PageWriteOptions po;
  po.section_type = incremental ? kSecDeltaPages : kSecPageRecords;
  po.running = o.precopy;
  po.in_place = o.in_place_copy;
  po.buffers = &r.buffers;
  // --leave-running to a file, a small process: it runs on once its pages
  // are in memory, not once they are in the image.
  if (o.leave_running && !o.precopy && o.stream == nullptr)
    po.all_read = [&r] { return ReleaseAfterImage(r); };
  RETURN_IF_ERROR(WriteMemberPages(r.md, r.t, &w, file.get(), progress, po, &r.stats));
  r.Lap(&r.stats.phases.pages_ns);
  RETURN_IF_ERROR(CheckInterrupted());
  RETURN_IF_ERROR(w.Finish());
  r.stats.image_bytes = sink->Position();
  CountMembers(r.t, r.md, &r.stats);
  if (o.stream != nullptr) {
    if (o.handoff) RETURN_IF_ERROR(Handoff(r));
    if (!o.handoff) NoteImageInPlace();
    r.Lap(&r.stats.phases.finish_ns);
    return o.leave_running && !r.released ? ReleaseAfterImage(r) : Status::Ok();
  }
  if (o.leave_running && !r.released) {
    r.Lap(&r.stats.phases.finish_ns);
    // Everything is read: the processes may run on while the image is made
    // durable (it is renamed into place only after that).
    RETURN_IF_ERROR(ReleaseAfterImage(r));
  }
  if (o.sync) RETURN_IF_ERROR(file->Sync());
  // The last moment a signal undoes the dump: once the image is in place
  // the dump is finished whatever arrives (docs/engine.md).
  RETURN_IF_ERROR(CheckInterrupted());
  // A previous image is swapped with the new one in one step and removed
  // only once the processes are gone: a plain rename over it makes ext4
  // write the whole new image back first (auto_da_alloc) and free the old
  // one on the spot, both while the processes are stopped.
  ASSIGN_OR_RETURN(bool exchanged, file->CommitExchange(r.final_path));
  if (exchanged) r.old_image = file->TempPath();
  NoteImageInPlace();
  MaybeKillWorker(r.o, "commit");
  // Without --sync nothing is promised to survive a crash: no waiting for
  // the directory (on ext4 that waits for the image's data to be written).
  if (o.sync) RETURN_IF_ERROR(env->SyncDir(o.dir));
  r.Lap(&r.stats.phases.finish_ns);
  return Status::Ok();
}

// A dump that failed (or was interrupted, or whose handoff said no): puts
// everything back and lets the members run on; returns the error to report.
Status Undo(DumpRun& r, const Status& st) {
  const DumpOptions& o = r.o;
  platform::Env* env = platform::Env::Default();
  // The new image's remains went with its TempFile; a previous image the
  // new one replaced goes too.
  if (!r.old_image.empty()) env->RemoveFile(r.old_image).IgnoreError();
  // Everything back as it was: the resources (they may inject, so before
  // the gadgets go), the gadgets, then the members run on.
  if (!r.released) r.resources.PutBack(r.ctx).IgnoreError();
  for (auto& d : r.md) {
    if (d.gadget != 0) RemoveGadget(d.pid, d.gadget).IgnoreError();
  }
  if (Interruption() != 0)
    return InterruptedError(o, r.ReleaseAll(), r.handoff_called ? &r.handoff_status : nullptr);
  if (!r.released) {
    for (const auto& d : r.md) {
      std::string death = DeathOf(d.pid);
      if (!death.empty()) {
        r.ReleaseAll().IgnoreError();
        return FailedPrecondition(
            "process " + std::to_string(d.pid) + " " + death + " during the dump; " +
            (o.stream != nullptr ? std::string("the image sent must not be used")
                                 : "no image was written (a previous image in " + o.dir + " is unchanged)"));
      }
    }
  }
  Status release = r.ReleaseAll();
  if (r.handoff_called && !r.handoff_status.ok()) {
    std::string msg = "dump of process " + std::to_string(o.pid) + ": " + r.handoff_status.message() +
                      "; the dump was undone: " + (o.tree ? "the processes run on" : "the process runs on") +
                      " as before";
    if (!release.ok()) msg += ", but letting them go failed: " + release.message();
    return Status(r.handoff_status.code(), msg);
  }
  return st.WithContext("dump of process " + std::to_string(o.pid));
}

// The image is complete (durable and in place, or handed off): the members
// are killed, children before parents, and the System V objects they used
// move into the image with them.
Status EndMembers(DumpRun& r) {
  // Decided: what must end silently with the members is readied first (a
  // failure is reported, but the image is in place and they go anyway).
  Status end = r.resources.Each([&](DumpResource& res) { return res.BeforeKill(r.ctx); });
  if (r.tree.frozen.size() == 1 && r.tree.frozen[0] != nullptr && r.t.objects.empty() && r.t.sems.empty() &&
      r.t.queues.empty()) {
    // One process sharing nothing: SIGKILL, and no waiting for the kernel
    // to free its memory (~0.1 s/GiB); it runs none of its code again.
    Status s = r.tree.frozen[0]->KillNoWait();
    if (end.ok()) end = s;
  } else {
    NoteKilling();  // if the worker dies from here on, the processes are killed
    MaybeKillWorker(r.o, "end");
    PrepareReaping(r.t.members, r.md);
    // Children before their parents (members are listed parents first).
    for (auto f = r.tree.frozen.rbegin(); f != r.tree.frozen.rend(); ++f) {
      if (*f == nullptr) continue;
      Status s = (*f)->Kill();
      if (end.ok() && !s.ok()) end = s;
    }
  }
  r.stats.frozen_ns = NowNs() - r.t_frozen;
  r.Lap(&r.stats.phases.end_ns);
  return end;
}

// What a dump with this image as its parent needs (DumpStats::delta_state).
ParentImage ImageState(const DumpRun& r) {
  ParentImage p;
  p.id = r.id;
  for (const auto& d : r.md) {
    ParentMember& pm = p.members[d.pid];
    pm.view = RunsUnion(d.m.pagemap, d.inherited);
    pm.tracker = d.tracker;
  }
  return p;
}

Result<DumpStats> DumpHere(const DumpOptions& o) {
  DumpRun r(o);
  DumpStats& stats = r.stats;
  std::int64_t t0 = NowNs();
  platform::Env* env = platform::Env::Default();
  if (o.handoff && o.stream == nullptr) return InvalidArgument("a dump handoff needs a stream to write to");
  if ((o.pre || o.precopy) && !o.leave_running)
    return InvalidArgument("--pre leaves the processes running (--leave-running)");
  if (o.postcopy && (!o.handoff || o.leave_running || o.precopy))
    return InvalidArgument("a post-copy dump keeps its processes frozen for its handoff");
  if (!o.parent.empty() && o.stream != nullptr)
    return InvalidArgument("an incremental dump into a stream takes its parent as parent_state");
  ASSIGN_OR_RETURN(r.id, NewImageId());
  if (!o.parent.empty()) {
    ASSIGN_OR_RETURN(r.parent, LoadParent(o.parent));
  } else if (!o.parent_state.empty()) {
    ASSIGN_OR_RETURN(r.parent, DecodeParentState(o.parent_state));
    r.parent->dir = o.parent_path;
    r.parent->literal = true;
  }
  if (Interruption() != 0) return InterruptedError(o, Status::Ok(), nullptr);
  // Every refusal /proc can decide, before anything is stopped.
  ASSIGN_OR_RETURN(r.pipe_census, PrecheckDump(o.pid, o.tree, o.external_pipes, o.external_unix));
  stats.notes = r.pipe_census.notes;
  std::int64_t t_checked = NowNs();
  stats.phases.precheck_ns = t_checked - t0;
  if (o.stream == nullptr) {
    RETURN_IF_ERROR(env->CreateDirs(o.dir));
    RETURN_IF_ERROR(platform::CheckImageMode(o.image_mode));
    r.final_path = platform::JoinPath(o.dir, kImageFileName);
    stats.image_path = r.final_path;
    env->RemoveStaleTempFiles(o.dir, kImageFileName);
  }

  // The page buffers cost a fault per page to populate: paid now, while
  // the processes still run, not while they are frozen.
  if (!o.in_place_copy && !o.precopy)
    r.buffers.ReserveFor(o.pid, o.leave_running && o.stream == nullptr && !o.tree);
  auto frozen = FreezeTree(o.pid, o.tree);
  if (!frozen.ok() && Interruption() != 0) return InterruptedError(o, Status::Ok(), nullptr);
  if (!frozen.ok()) return frozen.status();
  r.tree = std::move(frozen).value();
  MaybeKillWorker(o, "freeze");
  r.t_frozen = r.mark = NowNs();
  stats.phases.freeze_ns = r.t_frozen - t_checked;
  r.t.members = r.tree.members;
  for (std::size_t i = 0; i < r.tree.members.size(); ++i) {
    if (r.tree.frozen[i] == nullptr) continue;
    MemberDump d;
    d.pid = r.tree.members[i].pid;
    d.fp = r.tree.frozen[i].get();
    r.md.push_back(std::move(d));
  }
  Progress progress = o.progress;
  if (o.fault == "kill-worker-at-pages") {
    progress = [&o](std::uint64_t done, std::uint64_t total) {
      MaybeKillWorker(o, "pages");
      if (o.progress) o.progress(done, total);
    };
  }
  if (o.fault == "kill-during-dump") {
    // Test hook: the process dies while its memory is being read.
    progress = [pid = o.pid, &o](std::uint64_t done, std::uint64_t total) {
      ::kill(pid, SIGKILL);
      if (o.progress) o.progress(done, total);
    };
  }
  IpcNamespace ipc;
  Status st = [&]() -> Status {
    std::vector<pid_t> pids;
    for (const auto& d : r.md) pids.push_back(d.pid);
    RETURN_IF_ERROR(ipc.EnterOf(pids));
    return WriteAndCommit(r, progress);
  }();
  if (!st.ok()) return Undo(r, st);
  Status end;
  // The image is durable and in place: only now may the processes go.
  if (!r.released) end = EndMembers(r);
  // The previous image goes only now: freeing a GiB of it takes the kernel
  // a third of a second or more, which the processes need not wait for.
  if (!r.old_image.empty()) env->RemoveFile(r.old_image).IgnoreError();
  if (!r.released) {
    RETURN_IF_ERROR(end.WithContext("killing process " + std::to_string(o.pid) + " after the dump"));
    RETURN_IF_ERROR(r.resources.Each([&](DumpResource& res) { return res.AfterKill(r.ctx); }));
  }
  stats.total_ns = NowNs() - t0;
  stats.late_interruption = InterruptionText();
  stats.delta_state = EncodeParentState(ImageState(r));
  return stats;
}

std::string EncodeStats(const DumpStats& s) {
  std::string o;
  PutString(&o, s.image_path);
  for (std::int64_t v : {std::int64_t{s.threads},
                         std::int64_t{s.vmas},
                         std::int64_t{s.fds},
                         std::int64_t{s.members},
                         std::int64_t{s.shared_objects},
                         std::int64_t{s.sysv_sems},
                         std::int64_t{s.sysv_queues},
                         s.comm_ns,
                         s.shared_write_ns,
                         s.frozen_ns,
                         s.total_ns,
                         s.phases.precheck_ns,
                         s.phases.freeze_ns,
                         s.phases.collect_ns,
                         s.phases.comm_ns,
                         s.phases.pagemap_ns,
                         s.phases.pages_ns,
                         s.phases.finish_ns,
                         s.phases.handoff_ns,
                         s.phases.end_ns}) {
    PutU64(&o, static_cast<std::uint64_t>(v));
  }
  for (std::uint64_t v : {s.pages_stored, s.zero_pages_skipped, s.image_bytes, s.shared_bytes,
                          s.tree_meta_bytes, s.pages_inherited, static_cast<std::uint64_t>(s.trackers_armed)})
    PutU64(&o, v);
  PutString(&o, s.page_copy);
  PutString(&o, s.late_interruption);
  PutString(&o, s.delta_state);
  PutU64(&o, s.notes.size());
  for (const std::string& n : s.notes) PutString(&o, n);
  return o;
}

Result<DumpStats> DecodeStats(const std::string& in) {
  ByteReader r(in);
  DumpStats s;
  s.image_path = std::string(r.String());
  std::int64_t v[20];
  for (auto& x : v) x = static_cast<std::int64_t>(r.U64());
  s.threads = static_cast<int>(v[0]);
  s.vmas = static_cast<int>(v[1]);
  s.fds = static_cast<int>(v[2]);
  s.members = static_cast<int>(v[3]);
  s.shared_objects = static_cast<int>(v[4]);
  s.sysv_sems = static_cast<int>(v[5]);
  s.sysv_queues = static_cast<int>(v[6]);
  s.comm_ns = v[7];
  s.shared_write_ns = v[8];
  s.frozen_ns = v[9];
  s.total_ns = v[10];
  s.phases = {v[11], v[12], v[13], v[14], v[15], v[16], v[17], v[18], v[19]};
  for (std::uint64_t* p : {&s.pages_stored, &s.zero_pages_skipped, &s.image_bytes, &s.shared_bytes,
                           &s.tree_meta_bytes, &s.pages_inherited})
    *p = r.U64();
  s.trackers_armed = static_cast<int>(r.U64());
  s.page_copy = std::string(r.String());
  s.late_interruption = std::string(r.String());
  s.delta_state = std::string(r.String());
  std::uint64_t notes = r.U64();
  for (std::uint64_t i = 0; i < notes && r.ok(); ++i) s.notes.emplace_back(r.String());
  if (!r.ok() || !r.empty()) return Internal("malformed dump statistics from the dump's worker process");
  return s;
}

}  // namespace

Result<DumpStats> Dump(const DumpOptions& o) {
  auto work = [&o](const Progress& progress) -> Result<std::string> {
    DumpOptions here = o;
    here.progress = progress;
    ASSIGN_OR_RETURN(DumpStats s, DumpHere(here));
    return EncodeStats(s);
  };
  int late = 0;
  auto bytes = RunInWorker(work, o.progress, &late);
  // A worker killed beyond help leaves its temporary image: nothing holds it.
  if (!bytes.ok() && o.stream == nullptr)
    platform::Env::Default()->RemoveStaleTempFiles(o.dir, kImageFileName);
  RETURN_IF_ERROR(bytes.status());
  ASSIGN_OR_RETURN(DumpStats s, DecodeStats(*bytes));
  if (s.late_interruption.empty()) s.late_interruption = SignalText(late);
  return s;
}

}  // namespace ckpt::engine
