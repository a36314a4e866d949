// The shape every resource of the engine has, and the ordered tables that
// Dump() and Restore() run (docs/engine.md, "Resources").
//
// A member's own core — its address space, threads, registers, credentials,
// descriptors' places — is the frame the dump and the restore build; a
// resource is a kind of state on top of it (System V objects, shared memory,
// pipes, pending signals, timers). Each resource keeps its own state between
// the phases of one dump or one restore, like CRIU's per-file-type
// operations or DMTCP's plugin events. The tables list the resources in the
// order their phases must run; that order is where the ordering rules live:
//
//   dump:    pipes, event files, Unix sockets, shared memory, System V
//   restore: System V, files, shared memory, signals, timers, file locks
//
// - System V objects are created first: they may move ckpt into a fresh IPC
//   namespace, which every later object and the forked members inherit, and
//   they create the segments whose ids the shared memory objects use.
// - Files plan before shared memory: shared memory takes the descriptor
//   numbers after the map files'.
// - File locks are taken back after the files closed the map-file
//   descriptors (kMemoryComplete): closing any descriptor of a file drops
//   the process's POSIX locks on it.
// Not thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/files.h"
#include "engine/incremental.h"
#include "engine/model.h"
#include "engine/tree_model.h"
#include "image/reader.h"
#include "image/writer.h"
#include "util/status.h"

namespace ckpt::engine {

class FrozenProcess;
class Injector;
class RestoreGuard;
class LazyFill;
struct PipeCensus;

// One alive member while it is dumped.
struct MemberDump {
  pid_t pid = 0;
  FrozenProcess* fp = nullptr;
  ProcessModel m;
  std::vector<Blob> blobs;
  std::uint64_t gadget = 0;
  std::vector<PageRun> candidates;
  std::vector<PageRun> inherited;  // with a parent image: pages it holds, not written since
  Tracker tracker;                 // the dirty tracker armed (--pre)
  bool keep_tracker = false;       // a pre-copy round's: the parent round's tracker, kept (RearmTracker)
  std::vector<PageRun> remote;     // DumpOptions::postcopy: pages listed, sent after the handoff
};

// What the resources of one dump share.
struct DumpContext {
  const DumpOptions& o;
  TreeModel& t;
  std::vector<MemberDump>& md;
  PipeCensus* pipe_census;
  DumpStats* stats;
};

class DumpResource {
 public:
  virtual ~DumpResource() = default;
  virtual const char* name() const = 0;
  // While frozen, once every member's core is read: the resource's state,
  // into the tree model, the members' models or the resource itself.
  virtual Status Collect(DumpContext& c) = 0;
  // Sections a restore needs before the tree model (shared pages).
  virtual Status WriteBeforeTree(DumpContext&, image::ImageWriter*) { return Status::Ok(); }
  // Sections that follow the tree model (tree-level blobs).
  virtual Status WriteAfterTree(DumpContext&, image::ImageWriter*) { return Status::Ok(); }
  // The members run on — after the image (--leave-running) or after a
  // failed dump: puts back what Collect changed in them. Runs while the
  // members still have their gadgets (it may inject); at most once.
  virtual Status PutBack(DumpContext&) { return Status::Ok(); }
  // The image is in place and the members are about to be killed (the dump
  // is decided): readies what must end silently with them.
  virtual Status BeforeKill(DumpContext&) { return Status::Ok(); }
  // The members were killed after the image: ends what went into the image
  // with them (System V objects leave the host).
  virtual Status AfterKill(DumpContext&) { return Status::Ok(); }
};

// An ordered table of resources: phases run first to last; the resources
// are destroyed last to first.
template <typename R>
class ResourceTable {
 public:
  ResourceTable() = default;
  ResourceTable(const ResourceTable&) = delete;
  ResourceTable& operator=(const ResourceTable&) = delete;
  ~ResourceTable() {
    while (!resources_.empty()) resources_.pop_back();
  }
  // Runs `phase` on every resource in order, up to the first error.
  template <typename F>
  Status Each(F phase) {
    for (auto& r : resources_) {
      Status s = phase(*r);
      if (!s.ok()) return s;
    }
    return Status::Ok();
  }

 protected:
  std::vector<std::unique_ptr<R>> resources_;
};

// The dump table, in order.
class DumpTable : public ResourceTable<DumpResource> {
 public:
  DumpTable();
  // Puts back every resource once (later calls do nothing); the first error.
  Status PutBack(DumpContext& c);

 private:
  bool put_back_ = false;
};

// One member while it is restored: what ckpt prepares before the tree forks.
struct MemberRestore {
  ProcessModel m;
  std::string prefix;         // its sections' names start with this
  FdPlan plan;                // the descriptors its set-up child takes
  int next_fd = 0;            // the next number free for ckpt's descriptors in the child
  std::vector<int> file_fds;  // per file of m.files: its descriptor in the child, or -1
  int exe_fd = -1;
};

// Where in the rebuild of a stopped member a resource does its part.
enum class RebuildPoint {
  kVmasCreated,     // every mapping exists, no page is filled yet
  kMemoryComplete,  // pages, protections, mm layout and exe are back
  kBeforeThreads,   // only the main thread exists
  kThreadsCreated,  // every thread exists; no register is loaded yet
};

// What the resources of one restore share.
struct RestoreContext {
  const RestoreOptions& o;
  const TreeModel& t;
  image::ImageReader* reader;
  RestoreGuard* guard;
  RestoreStats* stats;
  // System V segment objects: the id each got (from System V to shared memory).
  std::map<std::uint32_t, int> sysv_shm_ids;
  // An incremental image's parents (nullptr if it has none).
  ImageChain* chain = nullptr;
  // RestoreOptions::lazy: the pages filled once the tree runs.
  LazyFill* lazy = nullptr;
};

class RestoreResource {
 public:
  // Removes what it created unless Commit() was called.
  virtual ~RestoreResource() = default;
  virtual const char* name() const = 0;
  // In ckpt, before the tree forks: the objects several members share.
  virtual Status Create(RestoreContext&) { return Status::Ok(); }
  // The descriptors member `p`'s set-up child takes (into p.plan).
  virtual Status PlanMember(RestoreContext&, MemberRestore&) { return Status::Ok(); }
  // Every member's child holds its descriptors: ckpt's copies may go.
  virtual void MembersHoldFds(RestoreContext&) {}
  // In the stopped member `p` (ckpt's PID `pid`), by injection.
  virtual Status Rebuild(RestoreContext&, const MemberRestore&, pid_t, RebuildPoint, Injector*) {
    return Status::Ok();
  }
  // Every member is rebuilt, none runs yet.
  virtual Status Finish(RestoreContext&) { return Status::Ok(); }
  // The restore succeeded: what was created stays.
  virtual void Commit() {}
};

// The restore table, in order.
class RestoreTable : public ResourceTable<RestoreResource> {
 public:
  RestoreTable();
  Status Rebuild(RestoreContext& c, const MemberRestore& p, pid_t pid, RebuildPoint at, Injector* inj) {
    return Each([&](RestoreResource& r) { return r.Rebuild(c, p, pid, at, inj); });
  }
  void Commit() {
    for (auto& r : resources_) r->Commit();
  }
};

}  // namespace ckpt::engine
