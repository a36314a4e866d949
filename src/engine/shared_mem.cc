#include "engine/shared_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "engine/filetable.h"
#include "engine/guard.h"
#include "engine/util.h"
#include "platform/posix_util.h"

namespace ckpt::engine {

using platform::PosixError;

namespace {

constexpr std::uint64_t kPage = kPageSize;

std::uint64_t PageUp(std::uint64_t v) {
  return (v + kPage - 1) & ~(kPage - 1);
}

bool OnTmpfs(const std::string& path) {
  struct statfs sf;
  return ::statfs(path.c_str(), &sf) == 0 && sf.f_type == TMPFS_MAGIC;
}

std::string MapFilesPath(pid_t pid, std::uint64_t start, std::uint64_t end) {
  return ProcPath(pid, "map_files/" + HexAddr(start) + "-" + HexAddr(end));
}

// The kind of the object behind descriptor path `link` (target `target`), if any.
bool ClassifyFdTarget(const std::string& link, const std::string& target, ShmKind* kind) {
  bool deleted = false;
  std::string path = StripDeleted(target, &deleted);
  if (path.compare(0, 7, "/memfd:") == 0) {
    *kind = ShmKind::kMemfd;
    return true;
  }
  if (!OnTmpfs(link)) return false;
  if (deleted) {
    *kind = ShmKind::kDeleted;
    return true;
  }
  if (path.compare(0, 9, "/dev/shm/") == 0) {
    *kind = ShmKind::kPosixShm;
    return true;
  }
  return false;
}

}  // namespace

bool ClassifySharedMapping(pid_t pid, const MapsEntry& e, ShmKind* kind) {
  if (!e.shared) return false;
  bool deleted = false;
  std::string path = StripDeleted(e.path, &deleted);
  if (path.compare(0, 5, "/SYSV") == 0) {
    *kind = ShmKind::kSysv;
    return true;
  }
  if (path.empty() || (path == "/dev/zero" && deleted)) {
    *kind = ShmKind::kSharedAnon;
    return true;
  }
  if (path[0] == '[') return false;
  return ClassifyFdTarget(MapFilesPath(pid, e.start, e.end), e.path, kind);
}

SharedMemDump::~SharedMemDump() {
  for (int fd : fds_) {
    if (fd >= 0) ::close(fd);
  }
}

Status SharedMemDump::AddMember(pid_t pid, ProcessModel* m, std::vector<Blob>* blobs, TreeModel* t) {
  // Opens `src` (a map_files or fd link of the member) as object of kind `kind`.
  auto add_object = [&](std::uint64_t dev, std::uint64_t ino, ShmKind kind, const std::string& shown,
                        const std::string& src) -> Result<std::uint32_t> {
    auto it = by_inode_.find({dev, ino});
    if (it != by_inode_.end()) return it->second;
    ShmObject o;
    o.id = static_cast<std::uint32_t>(t->objects.size());
    o.kind = kind;
    o.dev = dev;
    o.ino = ino;
    std::string path = StripDeleted(shown, nullptr);
    if (kind == ShmKind::kMemfd) {
      o.name = path.substr(7);
    } else if (kind == ShmKind::kPosixShm || kind == ShmKind::kDeleted) {
      o.name = path;
    }
    int fd = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return PosixError("open shared memory object", src + " (" + shown + ")", errno);
    fds_.push_back(fd);
    if (kind == ShmKind::kSysv) {
      o.sysv_id = static_cast<std::int32_t>(ino);
      o.sysv_key = static_cast<std::int32_t>(std::strtoul(path.c_str() + 5, nullptr, 16));
      struct shmid_ds ds;
      if (::shmctl(o.sysv_id, IPC_STAT, &ds) != 0) {
        return PosixError("shmctl(IPC_STAT)", "System V segment " + std::to_string(o.sysv_id), errno);
      }
      o.size = ds.shm_segsz;
      o.mode = ds.shm_perm.mode;
      o.uid = ds.shm_perm.uid;
      o.gid = ds.shm_perm.gid;
    } else {
      struct stat st;
      if (::fstat(fd, &st) != 0) return PosixError("fstat", src, errno);
      o.size = static_cast<std::uint64_t>(st.st_size);
      o.mode = st.st_mode & 07777;
      o.uid = st.st_uid;
      o.gid = st.st_gid;
    }
    t->objects.push_back(std::move(o));
    by_inode_[{dev, ino}] = t->objects.back().id;
    return t->objects.back().id;
  };

  ASSIGN_OR_RETURN(auto maps, ReadMaps(pid, false));
  for (const auto& v : m->vmas) {
    if ((v.flags & kVmaSharedObject) == 0) continue;
    auto e = std::find_if(maps.begin(), maps.end(), [&](const MapsEntry& x) { return x.start == v.start; });
    ShmKind kind;
    if (e == maps.end() || !ClassifySharedMapping(pid, *e, &kind)) {
      return Internal("mapping " + HexAddr(v.start) + " of process " + std::to_string(pid) + " changed");
    }
    ASSIGN_OR_RETURN(std::uint32_t id, add_object(makedev(e->dev_major, e->dev_minor), e->ino, kind, e->path,
                                                  MapFilesPath(pid, e->start, e->end)));
    t->attaches.push_back({pid, v.start, v.end, v.pgoff, id});
  }
  for (const auto& f : m->fds) {
    if (f.kind != FdKind::kDeleted && f.kind != FdKind::kRegular) continue;
    if (f.dup_of >= 0) continue;  // the lower descriptor carries the link
    const FileRef& fr = m->files[f.file];
    std::string link = ProcPath(pid, "fd/" + std::to_string(f.fd));
    ShmKind kind;
    if (!S_ISREG(fr.mode)) continue;
    std::string shown = fr.deleted ? fr.path + " (deleted)" : fr.path;
    if (by_inode_.count({fr.dev, fr.ino}) == 0 && !ClassifyFdTarget(link, shown, &kind)) continue;
    if (by_inode_.count({fr.dev, fr.ino}) != 0) kind = t->objects[by_inode_[{fr.dev, fr.ino}]].kind;
    ASSIGN_OR_RETURN(std::uint32_t id, add_object(fr.dev, fr.ino, kind, shown, link));
    t->fds.push_back({pid, f.fd, id});
    std::string blob = "file." + std::to_string(f.file);
    blobs->erase(std::remove_if(blobs->begin(), blobs->end(), [&](const Blob& b) { return b.name == blob; }),
                 blobs->end());
  }
  return Status::Ok();
}

Status SharedMemDump::WritePages(image::ImageWriter* w, TreeModel* t, std::uint64_t* bytes) {
  for (auto& o : t->objects) {
    RETURN_IF_ERROR(CheckInterrupted());
    int fd = fds_[o.id];
    RETURN_IF_ERROR(w->BeginSection(kSecShmPages, ShmPagesName(o.id), ""));
    std::uint64_t end = PageUp(o.size);
    if (end == 0) {
      RETURN_IF_ERROR(w->EndSection());
      continue;
    }
    // Read through a mapping of the object: pages go from it straight into
    // the image writer, runs of non-zero pages at a time. Holes (pages never
    // touched) are skipped without being faulted in.
    void* map = ::mmap(nullptr, end, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
      return PosixError("map shared memory object", std::string(ShmKindName(o.kind)) + " " + o.name, errno);
    }
    const auto* base = static_cast<const unsigned char*>(map);
    Status st = [&]() -> Status {
      std::uint64_t off = 0;
      while (off < end) {
        off_t data = ::lseek(fd, static_cast<off_t>(off), SEEK_DATA);
        if (data < 0 && errno == ENXIO) break;  // only holes left
        std::uint64_t lo = data < 0 ? off : static_cast<std::uint64_t>(data) & ~(kPage - 1);
        off_t hole = data < 0 ? -1 : ::lseek(fd, data, SEEK_HOLE);
        std::uint64_t hi = hole < 0 ? end : std::min(end, PageUp(static_cast<std::uint64_t>(hole)));
        if (lo >= hi) break;
        // Map the data range in one go rather than one fault per page.
        (void)::madvise(const_cast<unsigned char*>(base) + lo, hi - lo, MADV_POPULATE_READ);
        std::uint64_t run = lo;  // start of the pending run of non-zero pages
        auto flush = [&](std::uint64_t upto) -> Status {
          if (upto == run) return Status::Ok();
          RETURN_IF_ERROR(w->Write(base + run, upto - run));
          *bytes += upto - run;
          if (!o.runs.empty() && o.runs.back().addr + o.runs.back().pages * kPage == run) {
            o.runs.back().pages += (upto - run) / kPage;
          } else {
            o.runs.push_back({run, (upto - run) / kPage});
          }
          return Status::Ok();
        };
        for (std::uint64_t at = lo; at < hi; at += kPage) {
          if (!IsZeroPage(base + at)) continue;
          RETURN_IF_ERROR(flush(at));
          run = at + kPage;
        }
        RETURN_IF_ERROR(flush(hi));
        off = hi;
      }
      return Status::Ok();
    }();
    ::munmap(map, end);
    RETURN_IF_ERROR(st);
    RETURN_IF_ERROR(w->EndSection());
  }
  return Status::Ok();
}

SharedMemRestore::~SharedMemRestore() {
  for (int fd : fds_) {
    if (fd >= 0) ::close(fd);
  }
  if (!committed_) {
    for (const auto& p : created_paths_) ::unlink(p.c_str());
  }
}

Status SharedMemRestore::Create(const TreeModel& t, const image::ImageReader& r) {
  (void)r;
  fds_.assign(t.objects.size(), -1);
  for (const auto& o : t.objects) {
    std::string what = std::string(ShmKindName(o.kind)) + " object " + std::to_string(o.id) + " " + o.name;
    int fd = -1;
    switch (o.kind) {
      case ShmKind::kSysv:
        continue;
      case ShmKind::kSharedAnon: {
        std::uint64_t len = std::max<std::uint64_t>(PageUp(o.size), kPage);
        void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return PosixError("mmap shared anonymous", what, errno);
        auto a = reinterpret_cast<std::uint64_t>(p);
        std::string mf = "/proc/self/map_files/" + HexAddr(a) + "-" + HexAddr(a + len);
        fd = ::open(mf.c_str(), O_RDWR | O_CLOEXEC);
        int e = errno;
        ::munmap(p, len);
        if (fd < 0) return PosixError("open", mf + " for " + what, e);
        break;
      }
      case ShmKind::kMemfd:
        fd = static_cast<int>(::syscall(SYS_memfd_create, o.name.c_str(), MFD_CLOEXEC));
        if (fd < 0) return PosixError("memfd_create", what, errno);
        break;
      case ShmKind::kPosixShm: {
        fd = ::open(o.name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, o.mode & 07777);
        if (fd >= 0) {
          created_paths_.push_back(o.name);
          if (guard_ != nullptr) guard_->FileCreated(o.name);
        } else if (errno == EEXIST) {
          // The object outlived the dumped processes (or was recreated):
          // its contents become the image's.
          fd = ::open(o.name.c_str(), O_RDWR | O_CLOEXEC);
          if (fd >= 0 && ::ftruncate(fd, 0) != 0) return PosixError("truncate", what, errno);
        }
        if (fd < 0) return PosixError("create", what, errno);
        if (::fchown(fd, o.uid, o.gid) != 0 || ::fchmod(fd, o.mode & 07777) != 0) {
          return PosixError("set owner and mode of", what, errno);
        }
        break;
      }
      case ShmKind::kDeleted: {
        std::string dir = o.name.substr(0, o.name.rfind('/') + 1);
        fd = ::open(dir.empty() ? "/dev/shm" : dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, o.mode & 07777);
        if (fd < 0) {
          // No O_TMPFILE (or the directory is gone): an unlinked memfd holds the same bytes.
          fd = static_cast<int>(::syscall(SYS_memfd_create, "ckpt-deleted-shm", MFD_CLOEXEC));
        }
        if (fd < 0) return PosixError("recreate", what, errno);
        break;
      }
    }
    fds_[o.id] = fd;
    if (::ftruncate(fd, static_cast<off_t>(o.size)) != 0) return PosixError("ftruncate", what, errno);
  }
  return Status::Ok();
}

namespace {

// Copies the stored runs from `stream` into the object mapped at `base`.
// Allocating shared memory pages costs more than copying into them, so
// helper threads allocate (MADV_POPULATE_WRITE, in 8 MiB chunks, in order)
// ahead of the copy, which this thread does chunk by chunk. The helpers are
// joined before returning: the caller forks afterwards.
Status FillRuns(unsigned char* base, const std::vector<PageRun>& runs, image::SectionStream* stream) {
  constexpr std::uint64_t kChunk = 8u << 20;
  struct Chunk {
    unsigned char* p;
    std::size_t n;
  };
  std::vector<Chunk> chunks;
  for (const auto& run : runs) {
    for (std::uint64_t at = 0; at < run.pages * kPage; at += kChunk) {
      chunks.push_back(
          {base + run.addr + at, static_cast<std::size_t>(std::min(kChunk, run.pages * kPage - at))});
    }
  }
  std::mutex mu;
  std::condition_variable cv;
  std::vector<bool> ready(chunks.size(), false);
  std::size_t next = 0;
  bool stop = false;
  auto helper = [&] {
    while (true) {
      std::size_t k;
      {
        std::lock_guard<std::mutex> l(mu);
        if (stop || next >= chunks.size()) return;
        k = next++;
      }
      (void)::madvise(chunks[k].p, chunks[k].n, MADV_POPULATE_WRITE);
      std::lock_guard<std::mutex> l(mu);
      ready[k] = true;
      cv.notify_all();
    }
  };
  std::vector<std::thread> helpers;
  if (chunks.size() > 1) {
    unsigned n = std::max(1u, std::min(2u, std::thread::hardware_concurrency()));
    for (unsigned i = 0; i < n; ++i) helpers.emplace_back(helper);
  }
  Status st;
  for (std::size_t k = 0; k < chunks.size() && st.ok(); ++k) {
    if (!helpers.empty()) {
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [&] { return ready[k]; });
    }
    st = stream->Read(chunks[k].p, chunks[k].n);
  }
  {
    std::lock_guard<std::mutex> l(mu);
    stop = true;
  }
  for (auto& h : helpers) h.join();
  RETURN_IF_ERROR(st);
  return stream->Drain();
}

}  // namespace

Status SharedMemRestore::Fill(const TreeModel& t, const image::ImageReader& r) {
  for (const auto& o : t.objects) {
    if (o.runs.empty()) continue;
    std::string what = std::string(ShmKindName(o.kind)) + " object " + std::to_string(o.id) + " " + o.name;
    const image::SectionInfo* s = r.Find(kSecShmPages, ShmPagesName(o.id));
    if (s == nullptr) return Corruption(r.source().Name() + ": no pages for " + what);
    std::uint64_t want = PagemapPages(o.runs) * kPage;
    if (s->raw_size != want) return Corruption(r.source().Name() + ": wrong page count for " + what);
    std::uint64_t len = PageUp(o.size);
    void* p;
    if (o.kind == ShmKind::kSysv) {
      auto it = sysv_ids_.find(o.id);
      if (it == sysv_ids_.end()) return Internal(what + " was not created");
      p = ::shmat(it->second, nullptr, 0);
      if (p == reinterpret_cast<void*>(-1)) return PosixError("shmat", what, errno);
    } else {
      p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fds_[o.id], 0);
      if (p == MAP_FAILED) return PosixError("mmap", what, errno);
    }
    auto* base = static_cast<unsigned char*>(p);
    Status st = [&]() -> Status {
      for (const auto& run : o.runs) {
        if (run.addr + run.pages * kPage > len)
          return Corruption(r.source().Name() + ": run outside " + what);
      }
      ASSIGN_OR_RETURN(auto stream, r.OpenSection(*s));
      return FillRuns(base, o.runs, stream.get());
    }();
    if (o.kind == ShmKind::kSysv) {
      ::shmdt(p);
    } else {
      ::munmap(p, len);
    }
    RETURN_IF_ERROR(st);
  }
  return Status::Ok();
}

void SharedMemRestore::PlanMember(const TreeModel& t, std::int32_t pid, FdPlan* plan, int* next) {
  for (const auto& a : t.attaches) {
    if (a.pid != pid || t.objects[a.object].kind == ShmKind::kSysv) continue;
    if (member_fd_.count({pid, a.object}) != 0) continue;
    plan->moves.push_back({fds_[a.object], *next, true});
    member_fd_[{pid, a.object}] = (*next)++;
  }
}

Status SharedMemRestore::AttachMember(const TreeModel& t, std::int32_t pid, const ProcessModel& m,
                                      Injector* inj) {
  // System V attachments by base address: one shmat each, then the parts
  // the process had unmapped are unmapped again.
  std::map<std::pair<std::uint32_t, std::uint64_t>, std::vector<const ShmAttach*>> sysv;
  for (const auto& a : t.attaches) {
    if (a.pid != pid) continue;
    const ShmObject& o = t.objects[a.object];
    auto v = std::find_if(m.vmas.begin(), m.vmas.end(), [&](const Vma& x) { return x.start == a.start; });
    if (v == m.vmas.end())
      return Corruption("shared mapping " + HexAddr(a.start) + " is not in the memory map");
    std::string what =
        "attach " + std::string(ShmKindName(o.kind)) + " " + o.name + " at " + HexAddr(a.start);
    if (o.kind == ShmKind::kSysv) {
      sysv[{a.object, a.start - a.pgoff}].push_back(&a);
      continue;
    }
    std::uint64_t prot = v->prot | PROT_READ | PROT_WRITE;
    ASSIGN_OR_RETURN(std::uint64_t got,
                     inj->Call(what, SYS_mmap,
                               {a.start, a.end - a.start, prot, MAP_SHARED | MAP_FIXED,
                                static_cast<std::uint64_t>(member_fd_.at({pid, a.object})), a.pgoff}));
    if (got != a.start) return Internal(what + ": mmap returned " + HexAddr(got));
  }
  for (const auto& [key, list] : sysv) {
    const ShmObject& o = t.objects[key.first];
    std::uint64_t base = key.second;
    bool writable = false;
    for (const ShmAttach* a : list) {
      auto v = std::find_if(m.vmas.begin(), m.vmas.end(), [&](const Vma& x) { return x.start == a->start; });
      writable = writable || (v->flags & kVmaMayWrite) != 0;
    }
    std::string what =
        "shmat System V segment " + std::to_string(sysv_ids_.at(o.id)) + " at " + HexAddr(base);
    ASSIGN_OR_RETURN(std::uint64_t got, inj->Call(what, SYS_shmat,
                                                  {static_cast<std::uint64_t>(sysv_ids_.at(o.id)), base,
                                                   static_cast<std::uint64_t>(writable ? 0 : SHM_RDONLY)}));
    if (got != base) return Internal(what + ": attached at " + HexAddr(got));
    std::uint64_t at = base, end = base + PageUp(o.size);
    std::vector<std::pair<std::uint64_t, std::uint64_t>> covered;
    for (const ShmAttach* a : list) covered.push_back({a->start, a->end});
    std::sort(covered.begin(), covered.end());
    for (const auto& [lo, hi] : covered) {
      if (lo > at) RETURN_IF_ERROR(inj->Call("munmap part of " + what, SYS_munmap, {at, lo - at}).status());
      at = std::max(at, hi);
    }
    if (at < end) RETURN_IF_ERROR(inj->Call("munmap part of " + what, SYS_munmap, {at, end - at}).status());
  }
  for (const auto& [k, fd] : member_fd_) {
    if (k.first != pid) continue;
    RETURN_IF_ERROR(inj->Call("close", SYS_close, {static_cast<std::uint64_t>(fd)}).status());
  }
  return Status::Ok();
}

}  // namespace ckpt::engine
