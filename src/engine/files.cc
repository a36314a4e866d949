#include "engine/files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "engine/eventfds.h"
#include "engine/incremental.h"
#include "engine/inet_sockets.h"
#include "engine/locks.h"
#include "engine/pipes.h"
#include "engine/proc.h"
#include "engine/shared_mem.h"
#include "engine/tcp_repair.h"
#include "engine/tree_model.h"
#include "engine/unix_sockets.h"
#include "platform/posix_util.h"

namespace ckpt::engine {

using platform::PosixError;

namespace {

constexpr std::uint32_t kOpenStrip = O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC;

Status WriteAll(int fd, const std::string& data, const std::string& what) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return PosixError("write", what, errno);
    }
    off += static_cast<std::size_t>(n);
  }
  return Status::Ok();
}

Result<std::vector<int>> ListFds(pid_t pid) {
  std::string path = ProcPath(pid, "fd");
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return PosixError("opendir", path, errno);
  std::vector<int> out;
  while (struct dirent* de = ::readdir(d)) {
    if (de->d_name[0] >= '0' && de->d_name[0] <= '9') out.push_back(std::atoi(de->d_name));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

Status DumpFds(pid_t pid, FileTable* files, ProcessModel* m, std::vector<Blob>* blobs) {
  ASSIGN_OR_RETURN(std::vector<int> fds, ListFds(pid));
  std::optional<std::map<std::uint32_t, UnixDiag>> unix_sockets;  // read at the first socket
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::vector<int>> by_inode;
  for (int n : fds) {
    std::string link_path = ProcPath(pid, "fd/" + std::to_string(n));
    auto link = ReadLink(link_path);
    struct stat st;
    if (!link.ok() || ::stat(link_path.c_str(), &st) != 0) {
      continue;  // closed meanwhile (the process is stopped: only by another process sharing the table)
    }
    ASSIGN_OR_RETURN(FdInfo fi, ReadFdInfo(pid, n));
    if (IsDirtyTracker(*link, fi.text)) continue;  // ckpt's own (--pre): a restored process is not tracked
    Fd f;
    f.fd = n;
    f.flags = fi.flags;
    f.pos = fi.pos;
    auto key = std::make_pair(static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino));
    for (int other : by_inode[key]) {
      if (::syscall(SYS_kcmp, pid, pid, KCMP_FILE, other, n) == 0) {
        f.dup_of = other;
        break;
      }
    }
    by_inode[key].push_back(n);
    const std::string& l = *link;
    EventKind event_kind;
    if (EventFileKind(l, &event_kind)) {
      f.kind = FdKind::kEvent;
      if (f.dup_of < 0) {
        ASSIGN_OR_RETURN(EventFile e, DumpEventFile(pid, n, event_kind));
        m->events.push_back(std::move(e));
      }
    } else if (l.compare(0, 8, "socket:[") == 0 && IsInetSocket(pid, n)) {
      f.kind = FdKind::kInet;
      f.pipe_ino = st.st_ino;
      if (f.dup_of < 0) {
        ASSIGN_OR_RETURN(InetSocket u, DumpInetSocket(pid, n, st.st_ino));
        if (!u.peer.empty()) f.kind = FdKind::kInetConnected;
        m->inet_sockets.push_back(std::move(u));
      } else {
        for (const auto& o : m->fds) f.kind = o.fd == f.dup_of ? o.kind : f.kind;
      }
    } else if (l.compare(0, 8, "socket:[") == 0) {
      f.kind = FdKind::kSocket;
      f.pipe_ino = st.st_ino;
      if (f.dup_of < 0) {
        if (!unix_sockets) {
          ASSIGN_OR_RETURN(unix_sockets, ListUnixSockets());
        }
        const auto& all = *unix_sockets;
        auto ino = static_cast<std::uint32_t>(st.st_ino);
        auto it = all.find(ino);
        // Whether the dumped set holds the peer is checked for the whole
        // tree (the sockets dump resource); here, everything else.
        // So is whether a peer outside may be connected to again (its name
        // given to --external-unix): any named peer is accepted here.
        std::set<std::uint32_t> peer_assumed = {it != all.end() ? it->second.peer : 0u};
        auto peer = it != all.end() ? all.find(it->second.peer) : all.end();
        std::vector<std::string> named;
        if (peer != all.end() && !peer->second.name.empty()) named.push_back(peer->second.name);
        std::string problem = SocketProblem(pid, n, ino, all, peer_assumed, named);
        if (!problem.empty()) return NotSupported(problem + " (process " + std::to_string(pid) + ")");
        if (it->second.peer == 0) {  // listening (SocketProblem refuses the rest)
          f.kind = FdKind::kUnixListener;
          ASSIGN_OR_RETURN(UnixListener l, DumpUnixListener(pid, n, it->second));
          m->unix_listeners.push_back(std::move(l));
        } else {
          ASSIGN_OR_RETURN(UnixSocket u, DumpUnixSocket(pid, n, ino, it->second));
          m->sockets.push_back(u);
        }
      } else {
        for (const auto& o : m->fds) f.kind = o.fd == f.dup_of ? o.kind : f.kind;
      }
    } else if (l.compare(0, 5, "pipe:") == 0) {
      f.kind = FdKind::kPipe;
      f.pipe_ino = st.st_ino;
      int acc = static_cast<int>(fi.flags & O_ACCMODE);
      f.pipe_write_end = acc == O_WRONLY;  // internal or not: pipes.cc decides for the whole tree
    } else if (l.empty() || l[0] != '/') {
      return NotSupported("fd " + std::to_string(n) + " of process " + std::to_string(pid) + " is " + l +
                          "; sockets, inotify, io_uring and anonymous inodes other than eventfd, epoll, "
                          "timerfd and signalfd are not supported by this engine version");
    } else if (S_ISREG(st.st_mode) && (st.st_nlink == 0 || StripDeleted(l, nullptr) != l)) {
      f.kind = FdKind::kDeleted;
      f.file = files->Add(l, st, false);
      files->files()[f.file].deleted = true;
      std::string name = "file." + std::to_string(f.file);
      bool have = std::any_of(blobs->begin(), blobs->end(), [&](const Blob& b) { return b.name == name; });
      if (!have) {
        int in = ::open(link_path.c_str(), O_RDONLY | O_CLOEXEC);
        if (in < 0) return PosixError("open deleted file behind", link_path, errno);
        auto data = ReadAllFd(in, link_path);
        ::close(in);
        if (!data.ok()) return data.status();
        blobs->push_back({name, std::move(*data)});
      }
    } else if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
      f.kind = FdKind::kRegular;
      f.file = files->Add(l, st, false);
    } else if (S_ISCHR(st.st_mode)) {
      f.kind = FdKind::kDevice;
      f.file = files->Add(l, st, false);
    } else if (S_ISFIFO(st.st_mode)) {
      f.kind = FdKind::kFifo;
      f.file = files->Add(l, st, false);
    } else {
      return NotSupported("fd " + std::to_string(n) + " (" + l + ") is a block device or socket file");
    }
    if (f.dup_of < 0 && f.kind != FdKind::kEvent && f.kind != FdKind::kPipe && f.kind != FdKind::kSocket &&
        f.kind != FdKind::kInet && f.kind != FdKind::kInetConnected && f.kind != FdKind::kUnixListener &&
        f.kind != FdKind::kUnixExternal) {
      RETURN_IF_ERROR(DumpFdLocks(pid, n, fi.text, &m->locks));
    }
    m->fds.push_back(f);
  }
  return Status::Ok();
}

FdPlan::~FdPlan() {
  CloseAll();
}

int FdPlan::Own(int fd) {
  owned_.push_back(fd);
  return fd;
}

void FdPlan::CloseAll() {
  for (int fd : owned_) ::close(fd);
  owned_.clear();
}

namespace {

// Finds a live process holding pipe `ino` and opens that pipe through it.
Result<int> ReattachPipe(std::uint64_t ino, bool write_end, int fd_number) {
  std::string want = "pipe:[" + std::to_string(ino) + "]";
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return PosixError("opendir", "/proc", errno);
  int result = -1;
  while (struct dirent* de = ::readdir(proc)) {
    if (de->d_name[0] < '0' || de->d_name[0] > '9' || std::atoi(de->d_name) == ::getpid()) continue;
    std::string dir = std::string("/proc/") + de->d_name + "/fd";
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) continue;
    while (struct dirent* fe = ::readdir(d)) {
      std::string p = dir + "/" + fe->d_name;
      char buf[64];
      ssize_t n = ::readlink(p.c_str(), buf, sizeof buf);
      if (n <= 0 || want.compare(0, std::string::npos, buf, static_cast<std::size_t>(n)) != 0) continue;
      result = ::open(p.c_str(), (write_end ? O_WRONLY : O_RDONLY) | O_NONBLOCK | O_CLOEXEC);
      if (result >= 0) break;
    }
    ::closedir(d);
    if (result >= 0) break;
  }
  ::closedir(proc);
  if (result < 0) {
    return FailedPrecondition("fd " + std::to_string(fd_number) + " is the " +
                              (write_end ? "write" : "read") + " end of " + want +
                              " whose other end was in another process; no live process "
                              "holds that pipe any more (the dump accepted it with --external-pipes: restore "
                              "while a process holding that pipe still runs)");
  }
  return result;
}

Status SetStatusFlags(int fd, std::uint32_t flags, const std::string& what) {
  int want = static_cast<int>(flags & (O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME));
  if (::fcntl(fd, F_SETFL, want) != 0) return PosixError("fcntl(F_SETFL)", what, errno);
  return Status::Ok();
}

}  // namespace

namespace {

// Writes the bytes a FIFO held at the dump back into it, once per FIFO,
// while ckpt holds `fd` (so the FIFO has an opener and keeps them).
Status RefillFifo(const FileRef& fr, int fd, std::uint32_t flags, const image::ImageReader& r,
                  SharedFds* shared) {
  std::string name = FifoBlobName(fr);
  const auto* b = r.Find(kSecBlob, name);
  if (b == nullptr || !shared->fifos_filled.insert(name).second) return Status::Ok();
  ASSIGN_OR_RETURN(std::string data, r.ReadSection(*b));
  int w = fd;
  if ((flags & O_ACCMODE) == O_RDONLY) {
    w = ::open(fr.path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);  // `fd` is a reader: this cannot block
    if (w < 0) return PosixError("open for refilling", fr.path, errno);
  }
  Status st = WriteAll(w, data, "FIFO " + fr.path);
  if (w != fd) ::close(w);
  return st;
}

// The record of descriptor `fd` in one of a model's per-descriptor lists
// (events, sockets, inet_sockets), or nullptr.
template <typename T>
const T* RecordOf(const std::vector<T>& records, int fd) {
  for (const auto& x : records) {
    if (x.fd == fd) return &x;
  }
  return nullptr;
}

// A descriptor for the child of the object `key` that members share: made
// once by `make` (and kept in `made`), then duplicated for each holder.
template <typename K, typename F>
Result<int> DupShared(std::map<K, int>* made, K key, F make, FdPlan* plan, const std::string& what) {
  auto it = made->find(key);
  if (it == made->end()) {
    ASSIGN_OR_RETURN(int created, make());
    it = made->emplace(key, created).first;
  }
  int fd = ::fcntl(it->second, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return PosixError("dup", what, errno);
  return plan->Own(fd);
}

}  // namespace

SharedFds::~SharedFds() {
  for (const auto& [k, fd] : deleted) ::close(fd);
  CloseCreated();
  for (const auto& c : connections_) ::close(c.first);
}

Result<int> SharedFds::KeepConnection(int s, const InetSocket* u) {
  int copy = ::fcntl(s, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    int e = errno;
    ::close(s);
    return PosixError("dup", "a TCP connection", e);
  }
  connections_.emplace_back(copy, *u);
  return s;
}

Status SharedFds::FinishConnections() {
  Status first;
  for (auto& [s, u] : connections_) {
    Status st = FinishConnection(s, u);
    if (first.ok() && !st.ok()) first = st;
    ::close(s);
  }
  connections_.clear();
  return first;
}

void SharedFds::CloseCreated() {
  for (const auto& [k, fd] : events) ::close(fd);
  events.clear();
  for (const auto& [k, fd] : inet) ::close(fd);
  inet.clear();
}

Status PrepareFds(const ProcessModel& m, const image::ImageReader& r, const std::string& prefix,
                  SharedFds* shared, FdPlan* plan) {
  std::map<int, int> opened;  // image fd -> ckpt fd
  for (const auto& f : m.fds) {
    std::string what = "fd " + std::to_string(f.fd);
    int fd = -1;
    int shm_object = -1;
    if (shared->tree != nullptr) {
      for (const auto& l : shared->tree->fds) {
        if (l.pid == m.core.pid && l.fd == f.fd) shm_object = static_cast<int>(l.object);
      }
    }
    if (f.dup_of >= 0 && opened.count(f.dup_of) != 0) {
      fd = plan->Own(::fcntl(opened[f.dup_of], F_DUPFD_CLOEXEC, 0));
      if (fd < 0) return PosixError("dup", what, errno);
    } else if (shm_object >= 0) {
      // A memfd or /dev/shm file: the object ckpt recreated for the whole tree.
      std::string self =
          "/proc/self/fd/" + std::to_string(shared->shm->FdOf(static_cast<std::uint32_t>(shm_object)));
      fd =
          ::open(self.c_str(), static_cast<int>(f.flags & ~kOpenStrip & ~O_APPEND & ~O_NOFOLLOW) | O_CLOEXEC);
      if (fd < 0) return PosixError("reopen shared memory object for", what, errno);
      plan->Own(fd);
    } else if (f.kind == FdKind::kEvent) {
      // Created once per open file description of the tree.
      const EventFile* e = RecordOf(m.events, f.fd);
      if (e == nullptr) return Corruption("no event file for " + what);
      ASSIGN_OR_RETURN(fd, DupShared(
                               &shared->events, e->object, [e] { return CreateEventFile(*e); }, plan, what));
    } else if (f.kind == FdKind::kInet || f.kind == FdKind::kInetConnected) {
      // Created once per open file description of the tree (pre-forked
      // servers share one listening socket).
      const InetSocket* u = RecordOf(m.inet_sockets, f.fd);
      if (u == nullptr) return Corruption("no socket for " + what);
      auto create = [u, shared]() -> Result<int> {
        if (u->peer.empty()) return CreateInetSocket(*u);
        ASSIGN_OR_RETURN(int s, CreateConnectedSocket(*u));
        return shared->KeepConnection(s, u);
      };
      ASSIGN_OR_RETURN(fd, DupShared(&shared->inet, u->ino, create, plan, what));
    } else if (f.kind == FdKind::kUnixExternal) {
      const UnixSocket* u = RecordOf(m.unix_external, f.fd);
      if (u == nullptr) return Corruption("no external Unix socket for " + what);
      ASSIGN_OR_RETURN(fd, DupShared(
                               &shared->inet, std::uint64_t{u->ino},
                               [u] { return ReconnectExternalUnix(*u); }, plan, what));
    } else if (f.kind == FdKind::kUnixListener) {
      const UnixListener* l = RecordOf(m.unix_listeners, f.fd);
      if (l == nullptr) return Corruption("no listening socket for " + what);
      ASSIGN_OR_RETURN(fd, DupShared(
                               &shared->inet, l->ino, [l] { return CreateUnixListener(*l); }, plan, what));
    } else if (f.kind == FdKind::kSocket) {
      const UnixSocket* u = RecordOf(m.sockets, f.fd);
      if (u == nullptr || shared->sockets == nullptr) return Corruption("no socket for " + what);
      ASSIGN_OR_RETURN(int end, shared->sockets->End(*u, r));
      fd = plan->Own(::fcntl(end, F_DUPFD_CLOEXEC, 0));
      if (fd < 0) return PosixError("dup socket", what, errno);
    } else if (f.kind == FdKind::kPipe && f.pipe_internal) {
      ASSIGN_OR_RETURN(int end, shared->pipes->End(f, r));
      fd = plan->Own(::fcntl(end, F_DUPFD_CLOEXEC, 0));
      if (fd < 0) return PosixError("dup pipe", what, errno);
    } else if (f.kind == FdKind::kPipe) {
      ASSIGN_OR_RETURN(fd, ReattachPipe(f.pipe_ino, f.pipe_write_end, f.fd));
      plan->Own(fd);
    } else if (f.kind == FdKind::kDeleted) {
      const FileRef& fr = m.files.at(f.file);
      auto& deleted = shared->deleted;
      auto it = deleted.find({fr.dev, fr.ino});
      if (it == deleted.end()) {
        int tmp;
        if (fr.path.compare(0, 7, "/memfd:") == 0) {
          tmp = static_cast<int>(::syscall(SYS_memfd_create, fr.path.substr(7).c_str(), MFD_CLOEXEC));
          if (tmp < 0) return PosixError("memfd_create", fr.path, errno);
        } else {
          std::string p = fr.path + ".ckpt-restore-" + std::to_string(::getpid());
          tmp = ::open(p.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, fr.mode & 07777);
          if (tmp < 0) return PosixError("recreate deleted file", p, errno);
          ::unlink(p.c_str());
        }
        it = deleted.emplace(std::make_pair(fr.dev, fr.ino), tmp).first;
        const auto* b = r.Find(kSecBlob, prefix + "file." + std::to_string(f.file));
        if (b == nullptr) return Corruption("process image lacks the contents of deleted file " + fr.path);
        ASSIGN_OR_RETURN(std::string data, r.ReadSection(*b));
        RETURN_IF_ERROR(WriteAll(tmp, data, "recreated " + fr.path));
      }
      std::string self = "/proc/self/fd/" + std::to_string(it->second);
      fd =
          ::open(self.c_str(), static_cast<int>(f.flags & ~kOpenStrip & ~O_APPEND & ~O_NOFOLLOW) | O_CLOEXEC);
      if (fd < 0) return PosixError("reopen recreated", fr.path, errno);
      plan->Own(fd);
    } else {
      const FileRef& fr = m.files.at(f.file);
      int flags = static_cast<int>(f.flags & ~kOpenStrip) | O_CLOEXEC;
      if (f.kind == FdKind::kFifo) flags |= O_NONBLOCK;
      fd = ::open(fr.path.c_str(), flags);
      if (fd < 0 && f.kind == FdKind::kFifo && errno == ENXIO) {
        fd = ::open(fr.path.c_str(), (flags & ~O_ACCMODE) | O_RDWR);  // no reader yet
      }
      if (fd < 0) return PosixError("open", fr.path + " (" + what + ")", errno);
      plan->Own(fd);
      if (f.kind == FdKind::kFifo) RETURN_IF_ERROR(RefillFifo(fr, fd, f.flags, r, shared));
    }
    if (f.dup_of < 0 || opened.count(f.dup_of) == 0) {
      RETURN_IF_ERROR(SetStatusFlags(fd, f.flags, what));
      if (f.kind == FdKind::kRegular || f.kind == FdKind::kDeleted) {
        struct stat st;
        if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
            ::lseek(fd, static_cast<off_t>(f.pos), SEEK_SET) < 0) {
          return PosixError("lseek", what, errno);
        }
      }
    }
    opened[f.fd] = fd;
    plan->moves.push_back({fd, f.fd, (f.flags & O_CLOEXEC) != 0});
  }
  return Status::Ok();
}

Status PrepareMapFiles(const ProcessModel& m, int base, FdPlan* plan, std::vector<int>* file_fds,
                       int* exe_fd) {
  file_fds->assign(m.files.size(), -1);
  std::vector<bool> rw(m.files.size(), false), used(m.files.size(), false);
  for (const auto& v : m.vmas) {
    if (v.kind != VmaKind::kFile) continue;
    used[v.file] = true;
    if ((v.flags & kVmaShared) != 0 && (v.flags & kVmaMayWrite) != 0) rw[v.file] = true;
  }
  if (m.core.exe_file >= 0) used[m.core.exe_file] = true;
  int next = base;
  for (std::size_t i = 0; i < m.files.size(); ++i) {
    if (!used[i]) continue;
    const FileRef& f = m.files[i];
    if (f.deleted) {
      if (static_cast<int>(i) == m.core.exe_file) continue;  // no exe link then
      return NotSupported("mapped file " + f.path + " was deleted before the dump");
    }
    RETURN_IF_ERROR(VerifyFile(f));
    int fd = ::open(f.path.c_str(), (rw[i] ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return PosixError("open mapped file", f.path, errno);
    plan->Own(fd);
    plan->moves.push_back({fd, next, true});
    (*file_fds)[i] = next++;
  }
  *exe_fd = m.core.exe_file >= 0 ? (*file_fds)[m.core.exe_file] : -1;
  return Status::Ok();
}

int ChildApplyFds(const std::vector<FdMove>& moves, int* keep, const char** what) {
  int top = *keep;
  for (const auto& mv : moves) top = std::max({top, mv.src, mv.target});
  int base = top + 1;
  // The kept descriptor goes first, above everything.
  int k = ::fcntl(*keep, F_DUPFD_CLOEXEC, base);
  if (k < 0) return *what = "move status pipe", errno;
  *keep = k;
  std::vector<int> tmp;
  for (const auto& mv : moves) {
    int t = ::fcntl(mv.src, F_DUPFD_CLOEXEC, base);
    if (t < 0) return *what = "duplicate descriptor", errno;
    tmp.push_back(t);
  }
  // Close everything below base: ckpt's own descriptors and the sources.
  if (::syscall(SYS_close_range, 0u, static_cast<unsigned>(base - 1), 0u) != 0) {
    return *what = "close_range", errno;
  }
  for (std::size_t i = 0; i < moves.size(); ++i) {
    if (::dup3(tmp[i], moves[i].target, moves[i].cloexec ? O_CLOEXEC : 0) < 0) {
      return *what = "place descriptor", errno;
    }
  }
  // Nothing else may leak into the restored process (ckpt's own descriptors
  // can sit above every target).
  if (*keep > base)
    ::syscall(SYS_close_range, static_cast<unsigned>(base), static_cast<unsigned>(*keep - 1), 0u);
  ::syscall(SYS_close_range, static_cast<unsigned>(*keep + 1), ~0u, 0u);
  return 0;
}

}  // namespace ckpt::engine
