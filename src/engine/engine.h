// The transparent Linux engine's entry points: dump a running, unmodified
// process into a directory, restore it from there, and probe the kernel.
// Linux x86-64 only. Each call is self-contained; run one at a time per
// target process.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "util/status.h"

namespace ckpt::image {
class Sink;
}

namespace ckpt::engine {

struct DumpStats;

// Called with bytes done and bytes total during long work.
using Progress = std::function<void(std::uint64_t done, std::uint64_t total)>;

// A System V object named on the command line to dump with the tree.
struct IpcObjectId {
  char kind = 's';  // 's' shm (segment), 'e' semaphore set, 'q' message queue
  int id = 0;
};

struct DumpOptions {
  pid_t pid = 0;
  bool tree = false;                 // the process and all its descendants
  std::vector<IpcObjectId> ipc_ids;  // System V objects to include besides those found
  std::string dir;
  // Accept pipes whose other end (or another holder) is a process outside
  // the dumped set; otherwise the dump refuses them.
  bool external_pipes = false;
  // Unix sockets connected to a peer outside the dumped set that is bound to
  // one of these names (a path, or "@" and an abstract name): saved as "connect
  // to NAME again" (--external-unix); any other peer outside is refused.
  std::vector<std::string> external_unix;
  bool leave_running = false;
  // Incremental dumps (docs/engine.md): `pre` arms dirty-page tracking in
  // the processes, which must be left running; `parent` names the directory
  // of an earlier image of the same processes: pages not written since
  // that image was taken (it armed tracking) are not stored but inherited.
  bool pre = false;
  std::string parent;
  // Instead of `parent`, with a stream (a live migration's rounds): the
  // parent image's DumpStats::delta_state, and its directory as the image
  // records it (relative to where the receiver puts this image).
  std::string parent_state, parent_path;
  // A live migration's pre-copy round (implies `pre`, `leave_running`):
  // once the state is read and tracking armed the processes run on, and
  // their pages are copied while they run; what they write meanwhile is
  // caught by the tracking and sent by the next round. The image is only a
  // parent (section `precopy`): a restore refuses it.
  bool precopy = false;
  // A post-copy migration's image (`ckpt migrate --lazy`; with a stream and
  // a handoff): the pages of private anonymous mappings are listed (section
  // `remote`, DumpStats::remote) but not stored; the handoff sends them
  // from the still frozen processes once the target's copy runs.
  bool postcopy = false;
  bool sync = true;                 // fsync the image before renaming it into place
  std::uint32_t image_mode = 0600;  // permission bits of the image file (at least 0600)
  Progress progress;
  // Write the image to this sink instead of a file in `dir` (no temporary
  // file, no sync, no rename; `dir` is ignored). The in-place page copy is
  // not used. The sink is used from the dump worker (a fork): an fd-backed
  // sink works, a sink that accumulates in memory does not come back.
  image::Sink* stream = nullptr;
  // Called in the worker once the image is complete, every member still
  // frozen: Ok -> the members end as in a normal dump (killed; with
  // leave_running, released); an error -> the dump is undone: everything is
  // put back, the members run on exactly where they were (as a failed dump
  // leaves them), and Dump returns that error. It may block (the members
  // stay frozen meanwhile); a SIGINT, SIGTERM or SIGHUP to ckpt (or its
  // death) makes DumpInterruptFd() readable: the handoff should then fail
  // unless it is past its point of no return. An interruption that arrives
  // before the handoff is called undoes the dump without calling it.
  std::function<Status(const DumpStats&)> handoff;
  // Knobs (docs/engine.md, "Knobs and test hooks"; the CLI takes them from
  // CKPT_ENGINE_* variables). in_place_copy: the processes write their own
  // pages into the image file where they can (less CPU, not faster on every
  // machine). pagemap_scan false: every page's pagemap entry is read even
  // where the kernel has PAGEMAP_SCAN.
  bool in_place_copy = false;
  bool pagemap_scan = true;
  // Test hook: "kill-worker-at-WHERE" (freeze, collect, pages, handoff,
  // commit, end): the dump's worker kills itself there; "kill-during-dump":
  // the dumped process is killed while its memory is read. Empty: none.
  std::string fault;
};

// In a DumpOptions::handoff (in the dump worker): a descriptor that becomes
// readable once the dump is asked to stop (SIGINT, SIGTERM or SIGHUP to
// ckpt, or ckpt's death); -1 outside a dump worker. Poll it beside the
// network; never read from it or close it.
int DumpInterruptFd();

struct DumpStats {
  std::string image_path;  // "" with DumpOptions::stream
  int threads = 0;
  int vmas = 0;
  int fds = 0;
  std::uint64_t pages_stored = 0;  // pages whose contents are in the image
  std::uint64_t zero_pages_skipped = 0;
  std::uint64_t pages_inherited = 0;  // pages left to the parent image (DumpOptions::parent)
  int trackers_armed = 0;             // processes whose dirty tracking the dump armed (DumpOptions::pre)
  // What a dump with this image as its parent needs (its identity, each
  // member's pages and tracker): DumpOptions::parent_state of the next round.
  std::string delta_state;
  // DumpOptions::postcopy: the pages listed but not stored, per member PID.
  struct RemoteRun {
    std::int32_t pid = 0;
    std::uint64_t addr = 0, pages = 0;
  };
  std::vector<RemoteRun> remote;
  std::uint64_t image_bytes = 0;  // the image's size (with a stream: bytes written to it)
  int members = 0;                // processes (zombies included)
  int shared_objects = 0;         // shared memory objects, each stored once
  int sysv_sems = 0, sysv_queues = 0;
  std::uint64_t shared_bytes = 0;     // pages of shared objects stored
  std::uint64_t tree_meta_bytes = 0;  // the tree, objects and System V sections
  // Time spent on communication state (pipes, shared objects, System V
  // IPC), the shared objects' pages included; and writing those pages alone.
  std::int64_t comm_ns = 0, shared_write_ns = 0;
  // How private pages were copied: "in-place" (each process wrote its own
  // pages into the image), "readv" (ckpt read and wrote them), or "mixed".
  std::string page_copy;
  // Things the user accepted that the restore depends on (external pipes).
  std::vector<std::string> notes;
  std::int64_t frozen_ns = 0;  // from the first thread stopped to the process released or killed
  std::int64_t total_ns = 0;
  // Where the time went, in order (`ckpt dump --json` "phases_ms"): stopping
  // every thread; reading /proc and asking the process (registers, signals,
  // descriptors); the communication state (as comm_ns); finding the
  // populated pages; copying them into the image; finishing the image (index,
  // fsync, rename); the handoff (DumpOptions::handoff, 0 without one);
  // killing or releasing the processes. Before them, precheck_ns: the
  // checks from /proc before anything is stopped.
  struct Phases {
    std::int64_t precheck_ns = 0, freeze_ns = 0, collect_ns = 0, comm_ns = 0, pagemap_ns = 0, pages_ns = 0,
                 finish_ns = 0, handoff_ns = 0, end_ns = 0;
  } phases;
  // A SIGINT, SIGTERM or SIGHUP (or the death of ckpt) that arrived after
  // the image was complete: the dump was finished anyway. "" if none.
  std::string late_interruption;
};

// Runs in a worker process (guard.h): a fork of the caller, which must
// have one thread. SIGINT, SIGTERM or SIGHUP to the caller, or its death,
// before the image is complete roll the dump back: the processes run on as
// if nothing had happened and no image is written.
Result<DumpStats> Dump(const DumpOptions& o);

struct RestoreStats;

// Where restored System V objects go.
enum class IpcNsMode {
  kHost,  // this IPC namespace; fail if an id or key is taken
  kNew,   // a fresh IPC namespace for the restored tree
  kAuto,  // this namespace if every id and key is free, else a fresh one
};

// Where a post-copy migration's pages come from on its target: the
// migration's source, which holds them frozen (RestoreOptions::remote_pages).
class RemotePages {
 public:
  virtual ~RemotePages() = default;
  // Pages [addr, addr + size) of member `pid` (its PID when dumped), as a
  // run the image lists in its `remote` section or a piece of one: waits
  // until they came; an error if they cannot come (the link is gone).
  virtual Status Read(std::int32_t pid, std::uint64_t addr, std::size_t size, void* dst) = 0;
  // "the source (ssh://host)": for messages.
  virtual std::string Describe() const = 0;
  // Every page is in (called before the restore completes): an error undoes
  // the restore, as a failed fill does.
  virtual Status AllIn() { return Status::Ok(); }
};

struct RestoreOptions {
  std::string dir;
  IpcNsMode ipc_ns = IpcNsMode::kHost;
  bool detach = false;     // return once the process runs; otherwise wait for it
  bool new_pidns = false;  // restore into a new PID namespace
  // Restore an image that belongs to another user (or that others may
  // write) anyway: its code would run with the caller's privileges.
  bool trust_image = false;
  // Pages an incremental image takes from its parents (complete files
  // here) are filled after the processes run: on first touch and in the
  // background (docs/engine.md, "Lazy restore"). Restore returns once all
  // are in; on_running is called when the processes run.
  bool lazy = false;
  // A post-copy image (DumpOptions::postcopy): where the pages it lists as
  // remote come from, lazily (needs `lazy`). Without it such an image is
  // refused.
  RemotePages* remote_pages = nullptr;
  Progress progress;
  // Called once the process runs (before waiting for it).
  std::function<void(const RestoreStats&)> on_running;
  // Called once everything is rebuilt, before any restored thread runs
  // (before the final detach), while the restored tasks are still traced
  // with PTRACE_O_EXITKILL and the restore guard is active: Ok -> the
  // restore completes (processes let go); an error -> the restore fails
  // as any late failure does (tree killed, objects it created removed),
  // and Restore returns that error. `stats.pid` is set. If the process
  // that runs Restore dies meanwhile (even by SIGKILL), nothing restored
  // is left running and the objects it created are removed.
  std::function<Status(const RestoreStats&)> hold;
  // Restore the image while another process still writes it (a migration's
  // receiver): reads wait for their bytes, and the image is done once this
  // file exists. The tree is set up as soon as every model has come; each
  // member's pages are restored as they arrive, and its table and trailer
  // are checked before `hold`. Empty: the image is whole. The image's owner
  // is not checked (the caller writes it).
  std::string follow_complete_marker;
  std::int64_t follow_writer_pid = 0;  // reads fail once it is gone
  std::uint64_t follow_limit = 0;      // the most bytes the image can have
  // Knob: map a proxy for the old vDSO even where the kernel's is the same
  // (tests of the proxy; CKPT_ENGINE_FORCE_VDSO_PROXY=1 in the CLI).
  bool force_vdso_proxy = false;
  // Test hook: "fail-restore-late" fails the restore once everything is
  // built, before anything runs. Empty: none.
  std::string fault;
};

struct RestoreStats {
  pid_t pid = 0;  // the root, as seen from ckpt's PID namespace
  int members = 0;
  bool new_ipc_ns = false;  // System V objects were recreated in a fresh IPC namespace
  int threads = 0;
  std::uint64_t pages = 0;
  std::int64_t total_ns = 0;
  int exit_status = -1;     // wait status once it ended (not with detach)
  bool vdso_proxy = false;  // the kernel vDSO differed: a proxy redirects the old one
  // A lazy restore: pages filled after the processes ran, faults served
  // (first touches that waited), and the time the fill took.
  bool lazy = false;
  std::uint64_t lazy_pages = 0, lazy_faults = 0, lazy_forks = 0;
  std::int64_t fill_ns = 0;
};

// Forks the new process from the caller and runs set-up code in the fork
// (allocating memory): call it while the calling process has one thread, as
// the CLI and a migration's receiver (in a process of its own) do.
Result<RestoreStats> Restore(const RestoreOptions& o);

// One kernel feature and whether it works here.
struct CheckItem {
  std::string name;
  bool ok = false;
  bool required = false;  // without it dump or restore cannot work at all
  std::string detail;
};

std::vector<CheckItem> Check();

}  // namespace ckpt::engine
