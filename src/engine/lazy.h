// Lazy restore (post-copy from local images): pages of an image chain's
// complete files are not copied before the processes run. Each member gets
// a userfaultfd (created in it while it still has ckpt's privileges, then
// held only by ckpt) registered over its private anonymous mappings; once
// the tree runs, a filler thread pushes the pages in, frame by frame, and
// serves a page fault first by filling the frame that holds the page.
// Forks, mremap, munmap and MADV_DONTNEED of the processes reach the filler
// as userfaultfd events, so a page is never filled where the process has
// dropped or moved it. The restore guard stays armed until every page is
// in: if ckpt dies meanwhile its restored processes are killed rather than
// left with pages that would read as zeros (docs/engine.md).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/model.h"
#include "image/reader.h"
#include "util/status.h"

namespace ckpt::engine {

class Injector;

struct LazyStats {
  std::uint64_t pages = 0;        // filled after the processes ran
  std::uint64_t faults = 0;       // page faults served (first touches waited for)
  std::uint64_t zero_faults = 0;  // faults on pages no image holds (zero pages)
  std::uint64_t forks = 0;        // processes forked while pages were missing
  std::uint64_t present = 0;      // pages found present already (not filled again)
  std::int64_t fill_ns = 0;       // from the processes running to the last page in
};

class LazyFill {
 public:
  LazyFill();
  // Stops the filler and closes the userfaultfds: pages not filled by then
  // would read as zeros, so the restore kills its processes first.
  ~LazyFill();
  LazyFill(const LazyFill&) = delete;
  LazyFill& operator=(const LazyFill&) = delete;

  // Plans, in a thread of its own, what member `dumped_pid` takes from
  // image number `link` of the chain: the pages `wanted` (sorted runs) of
  // its section `prefix`pages in `r` (a complete file; the reader must
  // outlive this object), those in private anonymous mappings of `vmas`
  // to be filled lazily. Called before the processes are built, so that
  // the planning happens meanwhile.
  void Plan(std::int32_t dumped_pid, int link, const image::ImageReader& r, const std::string& prefix,
            const std::vector<PageRun>& wanted, const std::vector<Vma>& vmas);
  // The same for what member `dumped_pid` takes from a post-copy source
  // (link `link` of the chain): `held`, the runs it lists for the member.
  // Planned at once (nothing to read).
  void PlanRemote(std::int32_t dumped_pid, int link, RemotePages* remote, const std::vector<PageRun>& held,
                  const std::vector<PageRun>& wanted, const std::vector<Vma>& vmas);
  // The member is rebuilt as `pid` up to its mappings: waits for that
  // plan, writes the pages it takes now (a private file mapping's changed
  // pages) and keeps the rest for Arm. Returns the runs it could not take
  // (a compressed section, pages the section lacks): the caller fills
  // them as usual.
  Result<std::vector<PageRun>> Apply(std::int32_t dumped_pid, int link, pid_t pid);
  // Member `dumped_pid`, rebuilt as `pid` up to its mappings' final
  // protections and still with ckpt's credentials: its userfaultfd is made
  // and registered, and its faults are served from now on. Nothing to do
  // if no page of it was taken.
  Status Arm(std::int32_t dumped_pid, pid_t pid, Injector* inj, const std::vector<Vma>& vmas);
  // Called with each userfaultfd made (a member's at Arm, a forked child's
  // from the filler), and (from the filler) after a member forked while
  // pages were missing.
  void OnUffd(std::function<void(int)> f);
  void OnFork(std::function<void()> f);
  // The processes run: pushes every page in; returns once all are.
  Result<LazyStats> Finish(const std::function<void(std::uint64_t, std::uint64_t)>& progress);
  bool empty() const;
  // The filler's error, if it failed already (the restore asks before it
  // lets the processes run).
  Status Failed() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// The private anonymous mappings of `vmas` (what a lazy restore fills
// through userfaultfd), as runs.
std::vector<PageRun> LazyEligibleRuns(const std::vector<Vma>& vmas);

// A post-copy source sends, and its target asks for, pages in frames: the
// runs a dump listed (merged where adjacent), cut every kRemoteFramePages.
inline constexpr std::uint64_t kRemoteFramePages = 256;
std::vector<PageRun> RemoteFrames(const std::vector<PageRun>& held);

// Whether a lazy restore can work here (`ckpt check`): userfaultfd with
// the events the filler needs. Empty if so, else why not.
std::string LazyUnavailable();

}  // namespace ckpt::engine
