// ckpt restore: a fresh process (a fork of ckpt, with the image's PID) sets
// up its descriptors, cwd, limits and handlers itself, then stops; ckpt
// replaces its address space by injected system calls, fills memory,
// recreates threads, loads registers and lets it run. Any failure kills it.
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <thread>

#include "engine/creds.h"
#include "engine/engine.h"
#include "engine/eventfds.h"
#include "engine/files.h"
#include "engine/guard.h"
#include "engine/image_file.h"
#include "engine/lazy.h"
#include "engine/mm.h"
#include "engine/pagemap.h"
#include "engine/proc.h"
#include "engine/ptrace.h"
#include "engine/resource.h"
#include "engine/signals.h"
#include "engine/task.h"
#include "engine/threads.h"
#include "engine/tree.h"
#include "engine/util.h"
#include "engine/vdso.h"
#include "platform/env.h"
#include "platform/posix_util.h"

namespace ckpt::engine {

using platform::PosixError;

namespace {

// In the restore child of one member: descriptors, task attributes and
// handlers, then a report on the status pipe, then a pause until ckpt
// rebuilds it.
[[noreturn]] void ChildMain(const ProcessModel& m, const FdPlan& plan, int status_fd) {
  const char* what = nullptr;
  int keep = status_fd;
  std::string pid = std::to_string(m.core.pid);
  auto fail = [&](const std::string& step, int e) {
    std::string line = "E " + pid + " " + step + ": " + std::strerror(e) + "\n";
    ssize_t n = ::write(keep, line.data(), line.size());
    (void)n;
    ::_exit(1);
  };
  if (int e = ChildApplyFds(plan.moves, &keep, &what); e != 0) fail(what, e);
  if (int e = ChildAddEpollWatches(m.events, &what); e != 0) fail(what, e);
  std::string step, warnings;
  if (int e = ChildSetupTask(m.core, &step, &warnings); e != 0) fail(step, e);
  int bad_sig = 0;
  if (int e = ChildInstallSigactions(m.signals, &bad_sig); e != 0)
    fail("rt_sigaction(" + std::to_string(bad_sig) + ")", e);
  for (char& c : warnings) {
    if (c == '\n') c = ';';
  }
  // ckpt may stop this process before the close below runs: it closes the
  // reported descriptor itself once it has seized the process.
  std::string ok = "O " + pid + " " + std::to_string(keep) + " " + warnings + "\n";
  ssize_t n = ::write(keep, ok.data(), ok.size());
  (void)n;
  ::close(keep);
  for (;;) ::pause();
}

// Picks an address for the gadget area: free in the image and in the child.
std::uint64_t PickGadgetArea(const ProcessModel& m, const std::vector<MapsEntry>& child) {
  for (std::uint64_t cand = 0x100000000ull; cand < 0x7f0000000000ull; cand += 0x10000000ull) {
    std::uint64_t end = cand + kGadgetAreaSize;
    bool clash = false;
    for (const auto& v : m.vmas) clash = clash || (cand < v.end + 0x100000 && v.start < end + 0x100000);
    for (const auto& e : child) clash = clash || (cand < e.end && e.start < end);
    if (!clash) return cand;
  }
  return 0;
}

// Reads member reports until each of `n` members said "O" (or one failed);
// `status_fds` gets, per member PID, the number of its status descriptor.
Status ReadMemberReports(int fd, std::size_t n, std::string* warnings,
                         std::map<std::int32_t, int>* status_fds) {
  std::string buf;
  std::size_t ok = 0;
  char tmp[4096];
  while (ok < n) {
    ssize_t r = ::read(fd, tmp, sizeof tmp);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return FailedPrecondition("restore process set-up failed: a process of the tree died");
    buf.append(tmp, static_cast<std::size_t>(r));
    std::size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      if (line.compare(0, 2, "E ") == 0)
        return FailedPrecondition("restore set-up of process " + line.substr(2));
      if (line.compare(0, 2, "W ") == 0) *warnings += line.substr(2) + "\n";
      if (line.compare(0, 2, "O ") == 0) {
        ++ok;
        std::int32_t who = std::atoi(line.c_str() + 2);
        std::size_t sp = line.find(' ', 2);
        if (sp == std::string::npos) continue;
        (*status_fds)[who] = std::atoi(line.c_str() + sp + 1);
        sp = line.find(' ', sp + 1);
        if (sp != std::string::npos && sp + 1 < line.size()) *warnings += line.substr(sp + 1) + "\n";
      }
    }
  }
  return Status::Ok();
}

// Seizes the stopped set-up child `pid` and readies injection: its status
// pipe closed, a gadget area mapped, rseq unregistered. Returns the gadget
// area's address in *area.
Status SeizeForRebuild(const ProcessModel& m, pid_t pid, int status_fd, Injector* inj,
                       std::vector<MapsEntry>* child_maps, std::uint64_t* area) {
  RETURN_IF_ERROR(Seize(pid, PTRACE_O_EXITKILL | PTRACE_O_TRACECLONE));
  RETURN_IF_ERROR(Interrupt(pid));
  while (true) {
    ASSIGN_OR_RETURN(StopInfo s, WaitStop(pid));
    if (s.event == PTRACE_EVENT_STOP) break;
    RETURN_IF_ERROR(Cont(pid, 0));
  }
  ASSIGN_OR_RETURN(std::string xs, GetXstate(pid));
  if (m.core.xsave_size != 0 && xs.size() != m.core.xsave_size) {
    return NotSupported("the image's FPU state is " + std::to_string(m.core.xsave_size) +
                        " bytes of xsave, this CPU uses " + std::to_string(xs.size()));
  }
  RETURN_IF_ERROR(inj->Save());
  if (status_fd >= 0) {
    // The set-up code may have been stopped before it closed its status pipe.
    (void)inj->Call("close status pipe", SYS_close, {static_cast<std::uint64_t>(status_fd)});
  }
  ASSIGN_OR_RETURN(*child_maps, ReadMaps(pid, false));
  *area = PickGadgetArea(m, *child_maps);
  if (*area == 0) return Internal("no free address for the gadget area");
  RETURN_IF_ERROR(
      inj->Call("mmap gadget area", SYS_mmap,
                {*area, kGadgetAreaSize, PROT_READ | PROT_WRITE | PROT_EXEC,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, static_cast<std::uint64_t>(-1), 0})
          .status());
  RETURN_IF_ERROR(WriteMemory(pid, *area, arch::kGadget, arch::kGadgetSize));
  inj->set_gadget(*area);
  // The set-up guard: the restored process must outlive ckpt.
  RETURN_IF_ERROR(inj->Call("prctl(PR_SET_PDEATHSIG)", SYS_prctl, {PR_SET_PDEATHSIG, 0}).status());
  // ckpt's libc registered rseq for this thread; its area is about to go.
  auto rseq = GetRseq(pid);
  if (rseq.ok() && rseq->ptr != 0) {
    RETURN_IF_ERROR(inj->Call("rseq unregister", SYS_rseq, {rseq->ptr, rseq->len, 1, rseq->sig}).status());
  }
  // So is the signal stack ckpt's thread had (a sanitizer build sets one
  // up): left in place, a handler with SA_ONSTACK would get a frame on
  // memory that is gone, and the process a SIGSEGV at its first signal.
  // The process's own stack, if it had one, comes back with its threads.
  stack_t off{};
  off.ss_flags = SS_DISABLE;
  ASSIGN_OR_RETURN(std::uint64_t ss, inj->PutScratch(0, &off, sizeof off));
  return inj->Call("sigaltstack(SS_DISABLE)", SYS_sigaltstack, {ss, 0}).status();
}

// Rebuilds one stopped member `pid` (ckpt's view) from its model; leaves
// it stopped with its final registers, still traced. The resources do their
// parts at the rebuild points (resource.h).
Status RebuildMember(RestoreContext& c, RestoreTable& resources, const MemberRestore& p, pid_t pid,
                     int status_fd, std::vector<pid_t>* threads_out) {
  const ProcessModel& m = p.m;
  Injector inj(pid, arch::BuiltinGadget());
  std::vector<MapsEntry> child_maps;
  std::uint64_t area = 0;
  RETURN_IF_ERROR(SeizeForRebuild(m, pid, status_fd, &inj, &child_maps, &area));
  RETURN_IF_ERROR(ClearAddressSpace(&inj, child_maps, area, area + kGadgetAreaSize));
  ASSIGN_OR_RETURN(auto left, ReadMaps(pid, false));
  ASSIGN_OR_RETURN(VdsoPlan vp, RestoreVdso(m, &inj, pid, left, c.o.force_vdso_proxy));
  c.stats->vdso_proxy = c.stats->vdso_proxy || vp.proxy;
  RETURN_IF_ERROR(CreateVmas(m, &inj, p.file_fds));
  RETURN_IF_ERROR(resources.Rebuild(c, p, pid, RebuildPoint::kVmasCreated, &inj));
  std::uint64_t pages = 0;
  // The pages it takes from parent images first: a streamed image's own
  // are still arriving meanwhile (the two sets are disjoint).
  if (c.chain != nullptr)
    RETURN_IF_ERROR(c.chain->RestoreInherited(m.core.pid, m.vmas, pid, &inj, c.lazy, &pages));
  RETURN_IF_ERROR(RestorePages(m, c.reader, p.prefix, pid, &inj, c.o.progress, &pages));
  c.stats->pages += pages;
  RETURN_IF_ERROR(FinishVmas(m, &inj));
  // Lazy pages: from here on a touch of one waits for the filler.
  if (c.lazy != nullptr) RETURN_IF_ERROR(c.lazy->Arm(m.core.pid, pid, &inj, m.vmas));
  // The kernel refuses to replace the exe link while the old executable is
  // mapped; when the restore child already runs the image's executable
  // (the dumped program was ckpt itself, or a fork of the restoring
  // program) there is nothing to replace.
  int set_exe = p.exe_fd;
  struct stat cur;
  if (m.core.exe_file >= 0 && ::stat(ProcPath(pid, "exe").c_str(), &cur) == 0 &&
      cur.st_ino == m.files[m.core.exe_file].ino && cur.st_dev == m.files[m.core.exe_file].dev) {
    set_exe = -1;
  }
  RETURN_IF_ERROR(RestoreMmLayout(m, &inj, set_exe));
  RETURN_IF_ERROR(resources.Rebuild(c, p, pid, RebuildPoint::kMemoryComplete, &inj));
  RETURN_IF_ERROR(resources.Rebuild(c, p, pid, RebuildPoint::kBeforeThreads, &inj));
  std::vector<pid_t> created;
  Status st = RestoreThreads(m, &inj, &created);
  threads_out->insert(threads_out->end(), created.begin(), created.end());
  RETURN_IF_ERROR(st);
  RETURN_IF_ERROR(resources.Rebuild(c, p, pid, RebuildPoint::kThreadsCreated, &inj));
  // Last of all, once nothing needs ckpt's privileges any more: the
  // credentials the process had (another user's, fewer capabilities).
  std::vector<pid_t> tids = {pid};
  tids.insert(tids.end(), created.begin(), created.end());
  std::string lost;
  RETURN_IF_ERROR(RestoreCreds(m, pid, tids, inj.gadget(), &lost));
  if (!lost.empty()) std::fprintf(stderr, "ckpt: warning: %s", lost.c_str());
  for (std::size_t i = 1; i < m.threads.size(); ++i) {
    RETURN_IF_ERROR(LoadThreadState(created[i - 1], m.threads[i], m.core.xsave_size));
  }
  RETURN_IF_ERROR(inj.UnmapGadgetArea());
  return LoadThreadState(pid, m.threads[0], m.core.xsave_size);
}

// Every member and every shared object is back: all may run now. A member
// that was stopped gets its SIGSTOP first (nothing is injected any more):
// it stops before running an instruction of its own.
Status LetGo(const std::vector<std::unique_ptr<MemberRestore>>& plans, const std::vector<pid_t>& pids,
             const std::vector<pid_t>& threads) {
  for (std::size_t i = 0; i < plans.size(); ++i) {
    if (plans[i] != nullptr && StopsAfterRestore(plans[i]->m) && ::kill(pids[i], SIGSTOP) != 0)
      return PosixError("kill(SIGSTOP)", "process " + std::to_string(pids[i]), errno);
  }
  for (pid_t th : threads) RETURN_IF_ERROR(Detach(th, 0));
  for (std::size_t i = 0; i < plans.size(); ++i) {
    if (plans[i] != nullptr) RETURN_IF_ERROR(Detach(pids[i], 0));
  }
  return Status::Ok();
}

// The image at `path`: whole, or (o.follow_complete_marker) streamed, read
// on until the first member's pages so that every model and blob is known.
Result<std::unique_ptr<image::ImageReader>> OpenImage(const RestoreOptions& o, const std::string& path) {
  if (o.follow_complete_marker.empty()) {
    ASSIGN_OR_RETURN(auto src, OpenImageForRestore(path, o.trust_image));
    return image::ImageReader::Open(std::move(src));
  }
  platform::FollowSpec spec;
  spec.complete_marker = o.follow_complete_marker;
  spec.writer_pid = o.follow_writer_pid;
  ASSIGN_OR_RETURN(auto src, platform::OpenFollowedFile(path, spec));
  ASSIGN_OR_RETURN(auto reader, image::ImageReader::OpenStreamed(std::move(src), o.follow_limit));
  RETURN_IF_ERROR(SeekPages(reader.get(), std::nullopt).status());
  // An image written before the models came first (an older ckpt): whole.
  if (reader->Find(kSecTree) == nullptr) RETURN_IF_ERROR(reader->Finish());
  return reader;
}

// With --pidns: a PID 1 for a fresh PID namespace, which ckpt then enters
// (its next children are created in it). Returns the PID 1.
Result<pid_t> EnterNewPidNamespace(RestoreGuard* guard) {
  struct clone_args ca;
  std::memset(&ca, 0, sizeof ca);
  ca.flags = CLONE_NEWPID;
  ca.exit_signal = 0;
  long r = ::syscall(SYS_clone3, &ca, sizeof ca);
  if (r < 0) return PosixError("clone3(CLONE_NEWPID)", "", errno);
  if (r == 0) {
    // PID 1 of the new namespace: reap, and leave once alone.
    ::syscall(SYS_close_range, 0u, ~0u, 0u);
    ::signal(SIGCHLD, SIG_DFL);
    for (int idle = 0;;) {
      while (::waitpid(-1, nullptr, WNOHANG) > 0) {
      }
      ::sleep(1);
      if (::kill(-1, 0) != 0 && errno == ESRCH) {
        if (++idle > 2) ::_exit(0);
      } else {
        idle = 0;
      }
    }
  }
  pid_t init_pid = static_cast<pid_t>(r);
  guard->KillOnDeath({init_pid});
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, init_pid, 0));
  if (pidfd < 0 || ::setns(pidfd, CLONE_NEWPID) != 0) {
    int e = errno;
    ::kill(init_pid, SIGKILL);
    return PosixError("enter the new PID namespace", "", e);
  }
  ::close(pidfd);
  return init_pid;
}

// Forks the tree (in a fresh PID namespace with o.new_pidns); each member's
// child sets its descriptors and task attributes up and stops. On success
// every member holds its descriptors and *status_fds says, per member, the
// number of its status descriptor.
Status SpawnMembers(const RestoreOptions& o, const TreeModel& t,
                    std::vector<std::unique_ptr<MemberRestore>>& plans, RestoreGuard* guard,
                    SpawnedTree* tree, pid_t* init_pid, std::string* warnings,
                    std::map<std::int32_t, int>* status_fds) {
  int sp[2];
  if (::pipe2(sp, O_CLOEXEC) != 0) return PosixError("pipe2", "", errno);
  if (o.new_pidns) {
    auto init = EnterNewPidNamespace(guard);
    if (!init.ok()) {
      ::close(sp[0]);
      ::close(sp[1]);
      return init.status();
    }
    *init_pid = *init;
  }
  int own_ns = o.new_pidns ? ::open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC) : -1;
  SpawnPlan spawn;
  spawn.members = t.members;
  int status_fd = sp[1];
  spawn.member_main = [&plans, status_fd](std::size_t i) {
    ChildMain(plans[i]->m, plans[i]->plan, status_fd);
  };
  Status spawned = SpawnTree(spawn, sp[1], sp[0], tree);
  // Not yet running, but parts of a tree let go must not run on alone.
  guard->KillOnDeath(tree->pids);
  if (own_ns >= 0) {
    // Back to creating children (and threads: clone refuses CLONE_THREAD
    // across namespaces) in ckpt's own PID namespace.
    if (::setns(own_ns, CLONE_NEWPID) != 0) std::perror("ckpt: setns back to own PID namespace");
    ::close(own_ns);
  }
  std::size_t alive = 0;
  for (const auto& p : plans) alive += p != nullptr ? 1 : 0;
  Status cs = spawned.ok() ? ReadMemberReports(sp[0], alive, warnings, status_fds) : spawned;
  ::close(sp[0]);
  for (auto& p : plans) {
    if (p != nullptr) p->plan.CloseAll();
  }
  return cs;
}

// Reads the tree model and every alive member's model (nullptr for zombies).
Result<std::vector<std::unique_ptr<MemberRestore>>> ReadMembers(const TreeModel& t,
                                                                const image::ImageReader& r,
                                                                RestoreStats* stats) {
  std::vector<std::unique_ptr<MemberRestore>> plans(t.members.size());
  for (std::size_t i = 0; i < t.members.size(); ++i) {
    if (t.members[i].zombie) continue;
    plans[i] = std::make_unique<MemberRestore>();
    plans[i]->prefix = SectionPrefix(t, t.members[i].pid);
    ASSIGN_OR_RETURN(plans[i]->m, ReadModel(r, plans[i]->prefix));
    stats->threads += static_cast<int>(plans[i]->m.threads.size());
  }
  stats->members = static_cast<int>(t.members.size());
  return plans;
}

// Rebuilds every member, then lets the tree run once every resource is
// finished and the caller's hold agreed.
Status RebuildAndRun(RestoreContext& c, RestoreTable& resources,
                     std::vector<std::unique_ptr<MemberRestore>>& plans, const SpawnedTree& tree,
                     std::map<std::int32_t, int>& status_fds) {
  std::vector<pid_t> threads;
  for (std::size_t i = 0; i < plans.size(); ++i) {
    if (plans[i] == nullptr) continue;
    const MemberRestore& p = *plans[i];
    int status_fd = status_fds.count(p.m.core.pid) != 0 ? status_fds[p.m.core.pid] : -1;
    RETURN_IF_ERROR(RebuildMember(c, resources, p, tree.pids[i], status_fd, &threads)
                        .WithContext("process " + std::to_string(p.m.core.pid)));
  }
  // A streamed image: the rest, its table and trailer (checked against
  // what was read) before anything runs.
  RETURN_IF_ERROR(c.reader->Finish());
  RETURN_IF_ERROR(resources.Each([&](RestoreResource& r) { return r.Finish(c); }));
  if (c.o.fault == "fail-restore-late") {
    // Test hook: everything is built, nothing runs yet.
    return Internal("failing the restore at its last step, as the fail-restore-late test hook asks");
  }
  // A lazy fill that failed while the processes were rebuilt: they never run.
  if (c.lazy != nullptr) RETURN_IF_ERROR(c.lazy->Failed());
  // Everything is built, nothing has run: the caller's last word (a
  // migration waits here for the source's go-ahead).
  if (c.o.hold) RETURN_IF_ERROR(c.o.hold(*c.stats));
  return LetGo(plans, tree.pids, threads);
}

// The tree runs: its lazy pages go in (the restore guard still armed: if
// ckpt dies meanwhile the processes are killed, never left with pages
// that would read as zeros).
Status FinishLazy(const RestoreOptions& o, LazyFill* lazy, std::int64_t t0, RestoreStats* stats) {
  stats->lazy = true;
  stats->total_ns = NowNs() - t0;
  if (o.on_running) o.on_running(*stats);
  ASSIGN_OR_RETURN(LazyStats ls, lazy->Finish(o.progress));
  stats->lazy_pages = ls.pages;
  stats->lazy_faults = ls.faults;
  stats->lazy_forks = ls.forks;
  stats->fill_ns = ls.fill_ns;
  // Post-copy: the source's last word, before the copy here is kept.
  if (o.remote_pages != nullptr) return o.remote_pages->AllIn();
  return Status::Ok();
}

}  // namespace

Result<RestoreStats> Restore(const RestoreOptions& o) {
  RestoreStats stats;
  std::int64_t t0 = NowNs();
  platform::Env* env = platform::Env::Default();
  std::string path = platform::JoinPath(o.dir, kImageFileName);
  if (!env->FileExists(path)) return NotFound("no process image " + path);
  // If ckpt dies before the restore is complete, its guardian removes what
  // would outlive it (declared first: it leaves last, once the resources
  // cleaned up after a failure themselves). Started before a streamed
  // image's models arrive: off the migration's critical path.
  RestoreGuard guard;
  RETURN_IF_ERROR(guard.Start());
  ASSIGN_OR_RETURN(auto reader, OpenImage(o, path));
  bool is_tree = false;
  ASSIGN_OR_RETURN(TreeModel t, ReadTreeModel(*reader, &is_tree));
  ASSIGN_OR_RETURN(auto plans, ReadMembers(t, *reader, &stats));
  if (reader->Find(kSecPrecopy) != nullptr) {
    return FailedPrecondition(path +
                              " is a pre-copy round of a live migration (its pages were copied while "
                              "the process ran): it can only be the parent of a later image");
  }
  // An incremental image: its parents, checked before anything starts.
  ASSIGN_OR_RETURN(std::unique_ptr<ImageChain> chain,
                   ImageChain::Open(o.dir, *reader, t, o.trust_image, o.remote_pages));
  if (o.new_pidns && t.members[0].pid == 1)
    return NotSupported("the dumped process was PID 1 of its namespace");

  std::unique_ptr<LazyFill> lazy;
  if (o.lazy && chain != nullptr) {
    std::string why = LazyUnavailable();
    if (why.empty()) {
      lazy = std::make_unique<LazyFill>();
    } else {
      std::fprintf(stderr, "ckpt: warning: no lazy restore here (%s): every page is filled first\n",
                   why.c_str());
    }
  }
  if (lazy != nullptr) {
    std::map<std::int32_t, const std::vector<Vma>*> vmas;
    for (const auto& p : plans) {
      if (p != nullptr) vmas[p->m.core.pid] = &p->m.vmas;
    }
    chain->PrepareLazy(lazy.get(), vmas);
  }
  RestoreContext c{o, t, reader.get(), &guard, &stats, {}, chain.get(), lazy.get()};
  RestoreTable resources;
  // The objects members share, then every member's descriptors.
  RETURN_IF_ERROR(resources.Each([&](RestoreResource& r) { return r.Create(c); }));
  for (auto& p : plans) {
    if (p == nullptr) continue;
    RETURN_IF_ERROR(resources.Each([&](RestoreResource& r) { return r.PlanMember(c, *p); }));
  }
  SpawnedTree tree;
  pid_t init_pid = -1;
  std::string warnings;
  std::map<std::int32_t, int> status_fds;
  Status cs = SpawnMembers(o, t, plans, &guard, &tree, &init_pid, &warnings, &status_fds);
  if (!cs.ok()) {
    tree.KillAll();
    if (init_pid > 0) ::kill(init_pid, SIGKILL);
    return cs.WithContext("restore from " + path);
  }
  (void)resources.Each([&](RestoreResource& r) {
    r.MembersHoldFds(c);
    return Status::Ok();
  });
  for (const auto& p : plans) {
    if (p != nullptr && !p->m.creds.recorded) {
      warnings += "the image records no credentials (an older ckpt wrote it): process " +
                  std::to_string(p->m.core.pid) + " runs with ckpt's own\n";
    }
  }
  if (!warnings.empty()) std::fprintf(stderr, "ckpt: warning: %s", warnings.c_str());
  stats.pid = tree.pids[0];
  // A process forked while pages are missing dies with the tree too.
  // The guardian holds every userfaultfd too: if ckpt dies mid-fill, the
  // processes die waiting for a page, not reading zeros.
  if (lazy != nullptr) {
    lazy->OnFork([&guard, &tree] { guard.KillOnDeath(WithDescendants(tree.pids)); });
    lazy->OnUffd([&guard](int fd) { guard.HoldUntilKilled(fd); });
  }
  Status st = RebuildAndRun(c, resources, plans, tree, status_fds);
  if (!st.ok()) {
    tree.KillAll();
    if (init_pid > 0) ::kill(init_pid, SIGKILL);
    return st.WithContext("restore of process " + std::to_string(t.members[0].pid) + " from " + path);
  }
  if (lazy != nullptr && !lazy->empty()) {
    st = FinishLazy(o, lazy.get(), t0, &stats);
    if (!st.ok()) {
      tree.KillAll();
      if (init_pid > 0) ::kill(init_pid, SIGKILL);
      return st.WithContext("lazy restore of process " + std::to_string(t.members[0].pid) + " from " + path);
    }
  }
  guard.Commit();
  tree.Release();
  resources.Commit();
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
  pid_t pid = tree.pids[0];
  if (!stats.lazy) stats.total_ns = NowNs() - t0;
  if (o.on_running && !stats.lazy) o.on_running(stats);
  if (!o.detach) {
    int status = 0;
    while (::waitpid(pid, &status, 0) == -1 && errno == EINTR) {
    }
    stats.exit_status = status;
  }
  return stats;
}

}  // namespace ckpt::engine
