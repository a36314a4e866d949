// Incremental dumps (docs/engine.md "Incremental dumps"). A dump with --pre
// arms dirty-page tracking in each process it leaves running: a userfaultfd
// of the process's own in write-protect-async mode (UFFD_FEATURE_WP_ASYNC),
// whose only effect is that the kernel clears a page's write-protect bit at
// its first write; no write ever waits for ckpt, and a tracker left behind
// by a killed ckpt costs nothing. A later dump with --parent DIR asks
// PAGEMAP_SCAN which populated pages are still write-protected: those it
// does not store but lists as inherited from DIR's image; a restore takes
// them from the chain of parents. Linux only.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/engine.h"
#include "engine/image_chain.h"
#include "engine/model.h"
#include "engine/tree_model.h"
#include "image/reader.h"
#include "image/writer.h"
#include "util/status.h"

namespace ckpt::engine {

class Injector;

// ckpt's dirty tracker in a process: its descriptor there and the inode of
// that userfaultfd (a new one per arming, so it names the dump that armed it).
struct Tracker {
  int fd = -1;
  std::uint64_t ino = 0;
  bool armed() const { return fd >= 0; }
};

// Whether the descriptor with /proc/PID/fd link `link` and fdinfo text
// `fdinfo` is a dirty tracker (a userfaultfd in write-protect-async mode).
// Dumps leave trackers out: a restored process is not tracked.
bool IsDirtyTracker(const std::string& link, const std::string& fdinfo);
// The tracker in process `pid` (not armed if it has none).
Result<Tracker> FindTracker(pid_t pid);

// Closes tracker `old` in the stopped process whose injector is `inj`. A
// mapping registers with one userfaultfd at a time: every member of a dump
// closes the old tracker it holds (a process forked since holds its
// parent's) before any new one is armed, so that the old one is gone.
Status CloseTracker(Injector* inj, const Tracker& old);
// Arms a new tracker in the stopped process `pid` through `inj` (saved
// registers): registers every mapping whose pages dumps store and
// write-protects `runs` (the pages the image holds now); `*untracked`
// counts the mappings the kernel refused. Its descriptor sits high in the
// table, close-on-exec.
Result<Tracker> ArmTracker(pid_t pid, Injector* inj, const std::vector<Vma>& vmas,
                           const std::vector<PageRun>& runs, int* untracked);

// A live migration's pre-copy round after the first (the process frozen,
// `t` verified to be the tracker its parent round armed): keeps that
// tracker, registers mappings made since and write-protects again the
// pages written since (the ones this round stores). Costs what was
// written, not the whole memory as a new tracker does. Safe only because
// rounds follow one another in one migration and a round image is never
// the --parent of a dump (LoadParent refuses it): a round that fails
// after this ends the migration, and no dump trusts bits it cleared.
Status RearmTracker(pid_t pid, const Tracker& t, const std::vector<Vma>& vmas, int* untracked);

// What a dump with --parent needs of the parent image, per member.
struct ParentMember {
  std::vector<PageRun> view;  // the pages it holds, stored or inherited
  Tracker tracker;            // armed by the dump that wrote it
};
struct ParentImage {
  std::string dir;       // as given
  bool literal = false;  // record `dir` as it is (relative to the child's own directory)
  std::string path;      // dir's image file
  ImageId id{};
  std::map<std::int32_t, ParentMember> members;  // by PID
};
Result<ParentImage> LoadParent(const std::string& dir);
// The parts of a ParentImage a dump reads (id, members), as bytes.
std::string EncodeParentState(const ParentImage& p);
Result<ParentImage> DecodeParentState(std::string_view in);

// Moves the pages of `*store` that `parent` holds and that process `pid`
// has not written since it was dumped (the tracker armed then is still the
// process's, the page's mapping is tracked and its write-protect bit set)
// into `*inherited`. `*why_not` explains a process that inherits nothing.
Status SplitAgainstParent(pid_t pid, const ParentMember& parent, std::vector<PageRun>* store,
                          std::vector<PageRun>* inherited, std::string* why_not);

// Whether dirty tracking works here (ckpt check): a userfaultfd in async
// write-protect mode on a page of ckpt's own, read back with PAGEMAP_SCAN.
Status ProbeDirtyTracking();

// Sections (docs/image-format.md).
Status WriteIdentity(image::ImageWriter* w, const ImageId& id, const ParentImage* parent,
                     const std::string& dir);
// `remote`: a post-copy dump's pages the source sends later (section
// `remote`; in `inherited` too).
Status WriteMemberDelta(image::ImageWriter* w, const std::string& prefix, bool incremental,
                        const std::vector<PageRun>& inherited, const Tracker& tracker,
                        const std::vector<PageRun>& remote);

// The parents of an image, opened and checked, for its restore.
class LazyFill;

class ImageChain {
 public:
  // The ancestors of the image read by `r` in `dir` (tree model `t`), each
  // checked to be the image the child was dumped against and to hold every
  // page the child inherits; nullptr if the image has no parent.
  // A post-copy image (section `remote`) takes its first link from
  // `remote` (an error without it).
  static Result<std::unique_ptr<ImageChain>> Open(const std::string& dir, const image::ImageReader& r,
                                                  const TreeModel& t, bool trust, RemotePages* remote);
  ~ImageChain();
  // Fills member `dumped_pid`'s inherited pages into process `pid`, which
  // has its mappings (vmas) already; adds their number to `*pages`. With
  // `lazy`, those it can take are left to it (filled once the tree runs).
  Status RestoreInherited(std::int32_t dumped_pid, const std::vector<Vma>& vmas, pid_t pid, Injector* inj,
                          LazyFill* lazy, std::uint64_t* pages);
  // Lets `lazy` plan, in the background while the restore builds the
  // processes, what each member (its mappings in `vmas`) takes from each
  // image of the chain.
  void PrepareLazy(LazyFill* lazy, const std::map<std::int32_t, const std::vector<Vma>*>& vmas) const;

 private:
  struct Link;
  ImageChain() = default;
  std::vector<std::unique_ptr<Link>> links_;
  std::map<std::int32_t, std::vector<PageRun>> wanted_;  // per member: inherited runs
};

}  // namespace ckpt::engine
