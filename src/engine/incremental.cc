#include "engine/incremental.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "engine/image_file.h"
#include "engine/inject.h"
#include "engine/lazy.h"
#include "engine/mm.h"
#include "engine/pagemap.h"
#include "engine/proc.h"
#include "engine/tree_model.h"
#include "engine/util.h"
#include "platform/env.h"
#include "platform/posix_util.h"
#include "util/bytes.h"

// Debian 12's headers predate the asynchronous write-protect mode (Linux 6.7).
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

namespace ckpt::engine {

using platform::PosixError;

namespace {

constexpr std::uint64_t kPage = kPageSize;

// Mappings whose pages dumps store (CollectPopulatedPages): the ones tracked.
bool Trackable(const Vma& v) {
  if (!IsRestorableVma(v) || (v.flags & kVmaSharedObject) != 0) return false;
  return !(v.kind == VmaKind::kFile && (v.flags & kVmaShared) != 0);
}

std::string Pid(pid_t pid) {
  return "process " + std::to_string(pid);
}

Result<std::vector<PageRun>> ReadRuns(const image::ImageReader& r, std::uint32_t type,
                                      const std::string& name) {
  const image::SectionInfo* s = r.Find(type, name);
  if (s == nullptr) return std::vector<PageRun>{};
  ASSIGN_OR_RETURN(std::string data, r.ReadSection(*s));
  auto runs = DecodePagemapSection(data);
  if (!runs.ok()) return Corruption(r.source().Name() + ": malformed section '" + name + "'");
  return runs;
}

Result<Tracker> ReadTracker(const image::ImageReader& r, const std::string& prefix) {
  Tracker t;
  const image::SectionInfo* s = r.Find(kSecTracking, prefix + "tracking");
  if (s == nullptr) return t;
  ASSIGN_OR_RETURN(std::string data, r.ReadSection(*s));
  ByteReader b(data);
  std::uint8_t version = b.U8();
  std::int32_t fd = static_cast<std::int32_t>(b.U32());
  std::uint64_t ino = b.U64();
  if (!b.ok() || version != kChainVersion || fd < 0) return t;  // not usable: as if not armed
  t.fd = fd;
  t.ino = ino;
  return t;
}

Result<std::unique_ptr<image::ImageReader>> OpenProcessImage(const std::string& path, bool trust) {
  ASSIGN_OR_RETURN(auto src, OpenImageForRestore(path, trust));
  ASSIGN_OR_RETURN(auto r, image::ImageReader::Open(std::move(src)));
  if (r->header().kind != image::ImageKind::kProcess)
    return InvalidArgument(path + " is a " + image::ImageKindName(r->header().kind) +
                           " image, not a process image");
  return r;
}

// The mappings whose pages dumps store, registered with tracker `uf`;
// returns those the kernel took.
std::vector<PageRun> RegisterTrackable(int uf, const std::vector<Vma>& vmas, int* untracked) {
  std::vector<PageRun> registered;
  for (const auto& v : vmas) {
    if (!Trackable(v)) continue;
    struct uffdio_register reg = {{v.start, v.size()}, UFFDIO_REGISTER_MODE_WP, 0};
    // A mapping the kernel refuses (EBUSY: an old tracker that a process
    // outside the dump still holds owns it) stays untracked: its pages count
    // as written.
    if (::ioctl(uf, UFFDIO_REGISTER, &reg) == 0) {
      registered.push_back({v.start, v.size() / kPage});
    } else {
      ++*untracked;
    }
  }
  return registered;
}

}  // namespace

bool IsDirtyTracker(const std::string& link, const std::string& fdinfo) {
  if (link != "anon_inode:[userfaultfd]") return false;
  // "API:\t<api>:<features>:<ioctls>", in hex.
  std::string api = TextField(fdinfo, "API");
  std::size_t colon = api.find(':');
  if (colon == std::string::npos) return false;
  std::uint64_t features = std::strtoull(api.c_str() + colon + 1, nullptr, 16);
  return (features & UFFD_FEATURE_WP_ASYNC) != 0;
}

Result<Tracker> FindTracker(pid_t pid) {
  Tracker t;
  for (int n : ListNumbered(ProcPath(pid, "fd"))) {
    std::string link_path = ProcPath(pid, "fd/" + std::to_string(n));
    auto link = ReadLink(link_path);
    if (!link.ok() || *link != "anon_inode:[userfaultfd]") continue;
    auto info = ReadProcFile(pid, "fdinfo/" + std::to_string(n));
    struct stat st;
    if (!info.ok() || !IsDirtyTracker(*link, *info) || ::stat(link_path.c_str(), &st) != 0) continue;
    if (t.armed())
      return FailedPrecondition(Pid(pid) + " holds two dirty trackers (fds " + std::to_string(t.fd) +
                                " and " + std::to_string(n) + ")");
    t.fd = n;
    t.ino = st.st_ino;
  }
  return t;
}

Status CloseTracker(Injector* inj, const Tracker& old) {
  if (!old.armed()) return Status::Ok();
  return inj->Call("close(old dirty tracker)", SYS_close, {static_cast<std::uint64_t>(old.fd)}).status();
}

Result<Tracker> ArmTracker(pid_t pid, Injector* inj, const std::vector<Vma>& vmas,
                           const std::vector<PageRun>& runs, int* untracked) {
  ASSIGN_OR_RETURN(std::uint64_t made,
                   inj->Call("userfaultfd", SYS_userfaultfd, {O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY}));
  long fd = static_cast<long>(made);
  // High in the table, out of the way of the descriptors the program opens.
  struct rlimit lim {};
  if (::syscall(SYS_prlimit64, pid, RLIMIT_NOFILE, nullptr, &lim) == 0) {
    long high = static_cast<long>(std::min<rlim_t>(lim.rlim_cur, 1024)) - 24;
    if (high > fd) {
      auto moved = inj->Raw(
          SYS_fcntl, {static_cast<std::uint64_t>(fd), F_DUPFD_CLOEXEC, static_cast<std::uint64_t>(high)});
      if (moved.ok() && *moved >= 0) {
        (void)inj->Raw(SYS_close, {static_cast<std::uint64_t>(fd)});
        fd = *moved;
      }
    }
  }
  auto fail = [&](Status st) -> Result<Tracker> {
    (void)inj->Raw(SYS_close, {static_cast<std::uint64_t>(fd)});
    return st;
  };
  auto copy = CopyFdOf(pid, static_cast<int>(fd));
  if (!copy.ok()) return fail(copy.status());
  ScopedFd uf(*copy);
  struct uffdio_api api = {UFFD_API, UFFD_FEATURE_WP_ASYNC, 0};
  if (::ioctl(uf.get(), UFFDIO_API, &api) != 0)
    return fail(NotSupported("this kernel's userfaultfd has no asynchronous write-protect mode (Linux 6.7)"));
  std::vector<PageRun> registered = RegisterTrackable(uf.get(), vmas, untracked);
  Status wp = WriteProtectPages(pid, RunsIntersect(runs, registered));
  if (!wp.ok()) return fail(wp);
  struct stat st;
  if (::fstat(uf.get(), &st) != 0) return fail(PosixError("fstat", "dirty tracker of " + Pid(pid), errno));
  Tracker t;
  t.fd = static_cast<int>(fd);
  t.ino = st.st_ino;
  return t;
}

Status RearmTracker(pid_t pid, const Tracker& t, const std::vector<Vma>& vmas, int* untracked) {
  ASSIGN_OR_RETURN(int copy, CopyFdOf(pid, t.fd));
  ScopedFd uf(copy);
  // Mappings registered already are taken again as they are.
  std::vector<PageRun> registered = RegisterTrackable(uf.get(), vmas, untracked);
  // Whole mappings in one walk each: only written pages change (the ones
  // not written are protected still), and they are the pages this round
  // stores (every populated page that is not clean). Scattered runs one by
  // one would cost a TLB flush each.
  return WriteProtectPages(pid, registered);
}

Status ProbeDirtyTracking() {
  constexpr std::size_t kLen = 2 * kPage;
  void* area = ::mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (area == MAP_FAILED) return PosixError("mmap", "a probe page", errno);
  auto* p = static_cast<volatile char*>(area);
  p[0] = 1;
  p[kPage] = 1;
  auto addr = reinterpret_cast<std::uint64_t>(area);
  Status st = [&]() -> Status {
    ScopedFd uf(static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY)));
    if (uf.get() < 0) return PosixError("userfaultfd", "ckpt", errno);
    struct uffdio_api api = {UFFD_API, UFFD_FEATURE_WP_ASYNC, 0};
    if (::ioctl(uf.get(), UFFDIO_API, &api) != 0)
      return NotSupported("userfaultfd has no asynchronous write-protect mode (Linux 6.7)");
    struct uffdio_register reg = {{addr, kLen}, UFFDIO_REGISTER_MODE_WP, 0};
    if (::ioctl(uf.get(), UFFDIO_REGISTER, &reg) != 0) return PosixError("UFFDIO_REGISTER", "ckpt", errno);
    struct uffdio_writeprotect wp = {{addr, kLen}, UFFDIO_WRITEPROTECT_MODE_WP};
    if (::ioctl(uf.get(), UFFDIO_WRITEPROTECT, &wp) != 0)
      return PosixError("UFFDIO_WRITEPROTECT", "ckpt", errno);
    p[kPage] = 2;  // the second page is written, the first is not
    ASSIGN_OR_RETURN(auto clean, CleanTrackedPages(::getpid(), {{addr, 2}}));
    if (clean.size() != 1 || clean[0].addr != addr || clean[0].pages != 1)
      return NotSupported("PAGEMAP_SCAN does not report written pages (Linux 6.7)");
    return Status::Ok();
  }();
  ::munmap(area, kLen);
  return st;
}

Result<ParentImage> LoadParent(const std::string& dir) {
  ParentImage p;
  p.dir = dir;
  p.path = platform::JoinPath(dir, kImageFileName);
  if (!platform::Env::Default()->FileExists(p.path))
    return NotFound("--parent " + dir + ": no process image " + p.path);
  ASSIGN_OR_RETURN(auto r, OpenProcessImage(p.path, true));
  if (r->Find(kSecPrecopy) != nullptr)
    return FailedPrecondition("--parent " + dir + ": " + p.path +
                              " is a pre-copy round of a live migration; it cannot be the parent of a dump");
  ASSIGN_OR_RETURN(bool has_id, ReadIdentity(*r, &p.id));
  if (!has_id)
    return FailedPrecondition("--parent " + dir + ": " + p.path +
                              " was written by an older ckpt and cannot be a parent; dump without --parent");
  bool is_tree = false;
  ASSIGN_OR_RETURN(TreeModel t, ReadTreeModel(*r, &is_tree));
  for (const auto& mem : t.members) {
    if (mem.zombie) continue;
    std::string prefix = SectionPrefix(t, mem.pid);
    ParentMember pm;
    ASSIGN_OR_RETURN(std::vector<PageRun> stored, ReadRuns(*r, kSecPagemap, prefix + "pagemap"));
    ASSIGN_OR_RETURN(std::vector<PageRun> inherited, ReadRuns(*r, kSecInherited, prefix + "inherited"));
    pm.view = RunsUnion(stored, inherited);
    ASSIGN_OR_RETURN(pm.tracker, ReadTracker(*r, prefix));
    p.members[mem.pid] = std::move(pm);
  }
  return p;
}

std::string EncodeParentState(const ParentImage& p) {
  std::string o(reinterpret_cast<const char*>(p.id.data()), p.id.size());
  PutVarint(&o, p.members.size());
  for (const auto& [pid, m] : p.members) {
    PutU32(&o, static_cast<std::uint32_t>(pid));
    PutU32(&o, static_cast<std::uint32_t>(m.tracker.fd));
    PutU64(&o, m.tracker.ino);
    PutString(&o, EncodePagemap(m.view));
  }
  return o;
}

Result<ParentImage> DecodeParentState(std::string_view in) {
  ParentImage p;
  ByteReader b(in);
  std::string_view id = b.Bytes(p.id.size());
  std::copy(id.begin(), id.end(), p.id.begin());
  std::uint64_t n = b.Varint();
  for (std::uint64_t i = 0; i < n && b.ok(); ++i) {
    auto pid = static_cast<std::int32_t>(b.U32());
    ParentMember& m = p.members[pid];
    m.tracker.fd = static_cast<std::int32_t>(b.U32());
    m.tracker.ino = b.U64();
    auto view = DecodePagemapSection(b.String());
    if (!view.ok()) b.Fail();
    if (view.ok()) m.view = std::move(view).value();
  }
  if (!b.ok() || !b.empty()) return Internal("malformed parent state");
  return p;
}

Status SplitAgainstParent(pid_t pid, const ParentMember& parent, std::vector<PageRun>* store,
                          std::vector<PageRun>* inherited, std::string* why_not) {
  inherited->clear();
  if (!parent.tracker.armed()) {
    *why_not =
        Pid(pid) + ": its parent image was not dumped with --pre (no dirty tracking): every page stored";
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(Tracker now, FindTracker(pid));
  if (now.fd != parent.tracker.fd || now.ino != parent.tracker.ino) {
    *why_not = Pid(pid) + ": the dirty tracker armed by the parent dump is gone (" +
               (now.armed() ? "a later dump armed another one" : "the process closed it or exec'd") +
               "): every page stored";
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(std::vector<PageRun> clean, CleanTrackedPages(pid, *store));
  *inherited = RunsIntersect(clean, parent.view);
  for (auto& r : *inherited) r.cow_shared = false;
  *store = RunsSubtract(*store, *inherited);
  return Status::Ok();
}

Status WriteIdentity(image::ImageWriter* w, const ImageId& id, const ParentImage* parent,
                     const std::string& dir) {
  RETURN_IF_ERROR(w->AddSection(kSecIdentity, "identity", "",
                                std::string_view(reinterpret_cast<const char*>(id.data()), id.size()), 0));
  if (parent == nullptr) return Status::Ok();
  // Relative to this image's directory, so that the chain can move as a whole.
  std::string rel = parent->dir;
  if (!parent->literal) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path from = fs::weakly_canonical(fs::absolute(dir), ec);
    fs::path to = fs::weakly_canonical(fs::absolute(parent->dir), ec);
    rel = ec ? fs::absolute(parent->dir).string() : to.lexically_relative(from).string();
    if (rel.empty()) rel = to.string();
  }
  std::string o;
  o.push_back(static_cast<char>(kChainVersion));
  o.append(reinterpret_cast<const char*>(parent->id.data()), parent->id.size());
  PutString(&o, rel);
  return w->AddSection(kSecParent, "parent", "", o);
}

Status WriteMemberDelta(image::ImageWriter* w, const std::string& prefix, bool incremental,
                        const std::vector<PageRun>& inherited, const Tracker& tracker,
                        const std::vector<PageRun>& remote) {
  if (incremental) {
    RETURN_IF_ERROR(
        w->AddSection(kSecInherited, prefix + "inherited", "", EncodePagemap(RunsUnion(inherited, remote))));
  }
  if (!remote.empty())
    RETURN_IF_ERROR(w->AddSection(kSecRemote, prefix + "remote", "", EncodePagemap(remote)));
  if (!tracker.armed()) return Status::Ok();
  std::string o;
  o.push_back(static_cast<char>(kChainVersion));
  PutU32(&o, static_cast<std::uint32_t>(tracker.fd));
  PutU64(&o, tracker.ino);
  return w->AddSection(kSecTracking, prefix + "tracking", "", o, 0);
}

// One ancestor: its reader and, per member PID, its section prefix, the
// pages it stores and those it inherits itself.
struct ImageChain::Link {
  std::string path;
  std::unique_ptr<image::ImageReader> reader;  // null for a post-copy source
  RemotePages* remote = nullptr;               // a post-copy source: the pages it holds
  struct Member {
    std::string prefix;
    std::vector<PageRun> stored, inherited;
  };
  std::map<std::int32_t, Member> members;
};

ImageChain::~ImageChain() = default;

Result<std::unique_ptr<ImageChain>> ImageChain::Open(const std::string& dir, const image::ImageReader& r,
                                                     const TreeModel& t, bool trust, RemotePages* remote) {
  ImageId id;
  std::string rel;
  ASSIGN_OR_RETURN(bool has, ReadParentLink(r, &id, &rel));
  // A post-copy image lists, per member, the pages its source still holds.
  std::map<std::int32_t, std::vector<PageRun>> held;
  bool postcopy = false;
  for (const auto& mem : t.members) {
    if (mem.zombie) continue;
    ASSIGN_OR_RETURN(held[mem.pid], ReadRuns(r, kSecRemote, SectionPrefix(t, mem.pid) + "remote"));
    postcopy = postcopy || !held[mem.pid].empty();
  }
  if (!has && !postcopy) return std::unique_ptr<ImageChain>();
  const std::string child = r.source().Name();
  if (postcopy && remote == nullptr) {
    return FailedPrecondition(child +
                              " is the image of a post-copy migration (--lazy): the pages it lists as "
                              "remote stayed with the migration's source, so only that migration's "
                              "receiver can restore it");
  }
  // A streamed image (a live migration's last round) has its members'
  // models and inherited pages before any pages: known by now.
  std::unique_ptr<ImageChain> chain(new ImageChain());
  for (const auto& mem : t.members) {
    if (mem.zombie) continue;
    std::string name = SectionPrefix(t, mem.pid) + "inherited";
    if (r.Find(kSecInherited, name) == nullptr)
      return Corruption(child + ": incremental image without '" + name + "'");
    ASSIGN_OR_RETURN(chain->wanted_[mem.pid], ReadRuns(r, kSecInherited, name));
  }
  if (postcopy) {
    // The first link: the source's frozen processes, sending what they hold.
    auto link = std::make_unique<Link>();
    link->path = remote->Describe();
    link->remote = remote;
    for (auto& [pid, runs] : held) {
      Link::Member m;
      m.prefix = SectionPrefix(t, pid);
      m.inherited = RunsSubtract(chain->wanted_[pid], runs);
      m.stored = std::move(runs);
      link->members[pid] = std::move(m);
    }
    chain->links_.push_back(std::move(link));
  }
  std::string cur_dir = dir, named_by = child;
  std::set<std::string> seen = {ImageIdText(id)};
  while (has) {
    std::string pdir = ParentDir(cur_dir, rel);
    auto link = std::make_unique<Link>();
    link->path = platform::JoinPath(pdir, kImageFileName);
    if (!platform::Env::Default()->FileExists(link->path))
      return NotFound("the parent image " + link->path + " (named by " + named_by +
                      ") is missing: an incremental image is restored with every image of its chain");
    ASSIGN_OR_RETURN(link->reader, OpenProcessImage(link->path, trust));
    ImageId got{};
    ASSIGN_OR_RETURN(bool has_id, ReadIdentity(*link->reader, &got));
    if (!has_id || got != id)
      return FailedPrecondition(link->path + " is not the parent image " + named_by +
                                " was dumped against (another dump replaced it); the chain is broken");
    bool is_tree = false;
    ASSIGN_OR_RETURN(TreeModel lt, ReadTreeModel(*link->reader, &is_tree));
    for (const auto& mem : lt.members) {
      if (mem.zombie || chain->wanted_.count(mem.pid) == 0) continue;
      Link::Member m;
      m.prefix = SectionPrefix(lt, mem.pid);
      ASSIGN_OR_RETURN(m.stored, ReadRuns(*link->reader, kSecPagemap, m.prefix + "pagemap"));
      ASSIGN_OR_RETURN(m.inherited, ReadRuns(*link->reader, kSecInherited, m.prefix + "inherited"));
      link->members[mem.pid] = std::move(m);
    }
    named_by = link->path;
    cur_dir = pdir;
    ASSIGN_OR_RETURN(has, ReadParentLink(*link->reader, &id, &rel));
    chain->links_.push_back(std::move(link));
    if (has && !seen.insert(ImageIdText(id)).second)
      return Corruption(named_by + ": the chain of parents loops");
  }
  // Every inherited page is held by some image of the chain: checked now,
  // before anything is started.
  for (const auto& [pid, want] : chain->wanted_) {
    std::vector<PageRun> rest = want;
    for (const auto& l : chain->links_) {
      if (rest.empty()) break;
      auto m = l->members.find(pid);
      if (m == l->members.end())
        return Corruption(l->path + " holds no " + Pid(pid) + ", whose pages its child image takes from it");
      rest = RunsSubtract(rest, m->second.stored);
      if (!RunsSubtract(rest, m->second.inherited).empty())
        return Corruption(l->path + " lacks pages of " + Pid(pid) + " that its child image takes from it");
    }
    if (!rest.empty()) return Corruption("the chain of " + child + " lacks pages of " + Pid(pid));
  }
  return chain;
}

void ImageChain::PrepareLazy(LazyFill* lazy,
                             const std::map<std::int32_t, const std::vector<Vma>*>& vmas) const {
  for (const auto& [pid, want] : wanted_) {
    auto v = vmas.find(pid);
    if (v == vmas.end() || want.empty()) continue;
    std::vector<PageRun> rest = want;
    for (std::size_t i = 0; i < links_.size() && !rest.empty(); ++i) {
      const Link::Member& m = links_[i]->members.at(pid);
      std::vector<PageRun> take = RunsIntersect(rest, m.stored);
      if (take.empty()) continue;
      rest = RunsSubtract(rest, take);
      if (links_[i]->remote != nullptr) {
        lazy->PlanRemote(pid, static_cast<int>(i), links_[i]->remote, m.stored, take, *v->second);
      } else {
        lazy->Plan(pid, static_cast<int>(i), *links_[i]->reader, m.prefix, take, *v->second);
      }
    }
  }
}

Status ImageChain::RestoreInherited(std::int32_t dumped_pid, const std::vector<Vma>& vmas, pid_t pid,
                                    Injector* inj, LazyFill* lazy, std::uint64_t* pages) {
  auto it = wanted_.find(dumped_pid);
  if (it == wanted_.end() || it->second.empty()) return Status::Ok();
  RETURN_IF_ERROR(CheckRuns(vmas, it->second, "inherited pages of " + Pid(dumped_pid)));
  std::vector<PageRun> rest = it->second;
  for (std::size_t i = 0; i < links_.size(); ++i) {
    const auto& l = links_[i];
    if (rest.empty()) break;
    const Link::Member& m = l->members.at(dumped_pid);
    std::vector<PageRun> take = RunsIntersect(rest, m.stored);
    if (take.empty()) continue;
    rest = RunsSubtract(rest, take);
    if (lazy != nullptr) {
      std::uint64_t before = PagemapPages(take);
      ASSIGN_OR_RETURN(take, lazy->Apply(dumped_pid, static_cast<int>(i), pid));
      *pages += before - PagemapPages(take);
      if (take.empty()) continue;
    }
    if (l->remote != nullptr) {
      return NotSupported(std::to_string(PagemapPages(take)) + " pages of " + Pid(dumped_pid) +
                          " stayed with the migration's source and cannot be filled lazily here" +
                          (lazy == nullptr ? " (no userfaultfd)" : ""));
    }
    RETURN_IF_ERROR(RestorePageSubset(l->reader.get(), m.prefix, take, pid, inj, pages));
  }
  return Status::Ok();
}

}  // namespace ckpt::engine
