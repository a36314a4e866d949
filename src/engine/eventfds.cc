#include "engine/eventfds.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "engine/proc.h"
#include "platform/posix_util.h"

// linux/timerfd.h, whose other definitions clash with sys/timerfd.h.
#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, std::uint64_t)
#endif

namespace ckpt::engine {

using platform::PosixError;

namespace {

constexpr std::int64_t kNs = 1000000000;

// One "tfd:" line of an epoll file's fdinfo.
struct WatchLine {
  EpollWatch w;
  std::uint64_t ino = 0;
  unsigned sdev = 0;  // the kernel's encoding: major << 20 | minor
};

std::vector<WatchLine> ParseWatches(const std::string& info) {
  std::vector<WatchLine> out;
  std::size_t p = 0;
  while ((p = info.find("tfd:", p)) != std::string::npos) {
    std::size_t e = info.find('\n', p);
    std::string line = info.substr(p, e == std::string::npos ? std::string::npos : e - p);
    p = e == std::string::npos ? info.size() : e;
    WatchLine wl;
    unsigned long long data = 0, ino = 0;
    long long pos = 0;
    int tfd = 0;
    unsigned events = 0, sdev = 0;
    if (std::sscanf(line.c_str(), "tfd: %d events: %x data: %llx pos:%lld ino:%llx sdev:%x", &tfd, &events,
                    &data, &pos, &ino, &sdev) != 6)
      continue;
    wl.w = {tfd, events, data};
    wl.ino = ino;
    wl.sdev = sdev;
    out.push_back(wl);
  }
  return out;
}

// "(sec, nsec)" as nanoseconds.
std::int64_t ParsePair(const std::string& v) {
  unsigned long long s = 0, ns = 0;
  if (std::sscanf(v.c_str(), "(%llu, %llu)", &s, &ns) != 2) return -1;
  return static_cast<std::int64_t>(s) * kNs + static_cast<std::int64_t>(ns);
}

struct timespec ToTimespec(std::int64_t ns) {
  struct timespec t;
  t.tv_sec = static_cast<time_t>(ns / kNs);
  t.tv_nsec = static_cast<long>(ns % kNs);
  return t;
}

// Does descriptor `tfd` of `pid` still refer to what `epfd` watches under
// that number? From /proc: its inode and device; frozen, kcmp says exactly.
bool WatchTargetMatches(pid_t pid, int epfd, const WatchLine& wl, bool exact) {
  struct stat st;
  std::string path = ProcPath(pid, "fd/" + std::to_string(wl.w.tfd));
  if (::stat(path.c_str(), &st) != 0) return false;
  dev_t dev = makedev(wl.sdev >> 20, wl.sdev & 0xfffff);
  if (st.st_ino != wl.ino || st.st_dev != dev) return false;
  if (!exact) return true;
  struct kcmp_epoll_slot slot = {static_cast<__u32>(epfd), static_cast<__u32>(wl.w.tfd), 0};
  return ::syscall(SYS_kcmp, pid, pid, KCMP_EPOLL_TFD, wl.w.tfd, &slot) == 0;
}

// One "inotify wd:..." line of an inotify file's fdinfo.
struct InotifyLine {
  int wd = 0;
  unsigned mask = 0, sdev = 0, bytes = 0;
  int type = 0;
  std::string handle;  // hex
};

std::vector<InotifyLine> ParseInotify(const std::string& info) {
  std::vector<InotifyLine> out;
  std::size_t p = 0;
  while ((p = info.find("inotify wd:", p)) != std::string::npos) {
    std::size_t e = info.find('\n', p);
    std::string line = info.substr(p, e == std::string::npos ? std::string::npos : e - p);
    p = e == std::string::npos ? info.size() : e;
    InotifyLine l;
    unsigned long long ino = 0;
    unsigned ignored = 0;
    char hex[260] = {};
    if (std::sscanf(line.c_str(),
                    "inotify wd:%x ino:%llx sdev:%x mask:%x ignored_mask:%x fhandle-bytes:%x fhandle-type:%x "
                    "f_handle:%258s",
                    &l.wd, &ino, &l.sdev, &l.mask, &ignored, &l.bytes, &l.type, hex) != 8)
      continue;
    l.handle = hex;
    out.push_back(l);
  }
  return out;
}

// The path of a watched file, from its file handle: opened through a mount
// of its file system (/proc/self/mountinfo), then read back from
// /proc/self/fd. Empty if it has none any more.
std::string WatchedPath(const InotifyLine& l) {
  unsigned major = l.sdev >> 20, minor = l.sdev & 0xfffff;
  std::ifstream mi("/proc/self/mountinfo");
  std::string mount, line;
  char want[32];
  std::snprintf(want, sizeof want, "%u:%u", major, minor);
  while (std::getline(mi, line)) {
    std::istringstream ls(line);
    std::string id, parent, dev, root, point;
    ls >> id >> parent >> dev >> root >> point;
    if (dev != want) continue;
    if (mount.empty() || root == "/") mount = point;
    if (root == "/") break;
  }
  if (mount.empty() || l.bytes > 128 || l.handle.size() != 2 * l.bytes) return "";
  int mfd = ::open(mount.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);  // (an O_PATH one is refused)
  if (mfd < 0) return "";
  std::vector<unsigned char> buf(sizeof(struct file_handle) + l.bytes);
  auto* fh = reinterpret_cast<struct file_handle*>(buf.data());
  fh->handle_bytes = l.bytes;
  fh->handle_type = l.type;
  for (unsigned i = 0; i < l.bytes; ++i)
    fh->f_handle[i] = static_cast<unsigned char>(std::stoul(l.handle.substr(2 * i, 2), nullptr, 16));
  int fd = ::open_by_handle_at(mfd, fh, O_PATH | O_CLOEXEC);
  ::close(mfd);
  if (fd < 0) return "";
  auto path = ReadLink("/proc/self/fd/" + std::to_string(fd));
  ::close(fd);
  if (!path.ok() || path->empty() || (*path)[0] != '/' || path->find(" (deleted)") != std::string::npos)
    return "";
  return *path;
}

}  // namespace

bool EventFileKind(const std::string& link, EventKind* kind) {
  if (link == "anon_inode:[eventfd]")
    *kind = EventKind::kEventfd;
  else if (link == "anon_inode:[signalfd]")
    *kind = EventKind::kSignalfd;
  else if (link == "anon_inode:[timerfd]")
    *kind = EventKind::kTimerfd;
  else if (link == "anon_inode:[eventpoll]")
    *kind = EventKind::kEpoll;
  else if (link == "anon_inode:inotify")
    *kind = EventKind::kInotify;
  else
    return false;
  return true;
}

std::string EventFileProblem(pid_t pid, int fd, EventKind kind, const std::string& info) {
  if (kind == EventKind::kInotify) {
    for (const auto& l : ParseInotify(info)) {
      if (WatchedPath(l).empty()) {
        return "inotify fd " + std::to_string(fd) + " watches (wd " + std::to_string(l.wd) +
               ") a file that has no path any more (deleted, or on a file system ckpt cannot open by handle)";
      }
    }
    return "";
  }
  if (kind != EventKind::kEpoll) return "";
  std::set<int> seen;
  for (const auto& wl : ParseWatches(info)) {
    if (!seen.insert(wl.w.tfd).second || !WatchTargetMatches(pid, fd, wl, false)) {
      return "epoll fd " + std::to_string(fd) + " watches a file the process no longer holds as fd " +
             std::to_string(wl.w.tfd) + " (closed or replaced after it was added)";
    }
  }
  return "";
}

// A periodic timerfd that expired is re-armed only when its owner reads it
// or asks for its time; until then fdinfo shows no time left and one
// expiration, however many periods passed. timerfd_gettime on the same file
// (through pidfd_getfd) counts them and re-arms it, as the owner's next
// read would.
Status ForwardTimerfd(pid_t pid, int fd) {
  ASSIGN_OR_RETURN(int mine, CopyFdOf(pid, fd));
  struct itimerspec its;
  int r = ::timerfd_gettime(mine, &its);
  int err = errno;
  ::close(mine);
  if (r != 0) return PosixError("timerfd_gettime", "timerfd " + std::to_string(fd), err);
  return Status::Ok();
}

Result<EventFile> DumpEventFile(pid_t pid, int fd, EventKind kind) {
  if (kind == EventKind::kTimerfd) RETURN_IF_ERROR(ForwardTimerfd(pid, fd));
  ASSIGN_OR_RETURN(std::string info, ReadProcFile(pid, "fdinfo/" + std::to_string(fd)));
  EventFile e;
  e.fd = fd;
  e.kind = kind;
  std::string what =
      std::string(EventKindName(kind)) + " fd " + std::to_string(fd) + " of process " + std::to_string(pid);
  auto bad = [&](const char* field) { return Corruption(what + ": unreadable fdinfo field " + field); };
  switch (kind) {
    case EventKind::kEventfd: {
      std::string c = TextField(info, "eventfd-count");
      if (c.empty()) return bad("eventfd-count");
      e.count = std::strtoull(c.c_str(), nullptr, 16);
      e.semaphore = TextField(info, "eventfd-semaphore") == "1";
      break;
    }
    case EventKind::kSignalfd: {
      std::string m = TextField(info, "sigmask");
      if (m.empty()) return bad("sigmask");
      e.sigmask = std::strtoull(m.c_str(), nullptr, 16);
      break;
    }
    case EventKind::kTimerfd: {
      std::string clock = TextField(info, "clockid"), ticks = TextField(info, "ticks");
      std::string flags = TextField(info, "settime flags");
      e.value_ns = ParsePair(TextField(info, "it_value"));
      e.interval_ns = ParsePair(TextField(info, "it_interval"));
      if (clock.empty() || ticks.empty() || flags.empty() || e.value_ns < 0 || e.interval_ns < 0)
        return bad("clockid/ticks/settime flags/it_value/it_interval");
      e.clockid = std::atoi(clock.c_str());
      e.count = std::strtoull(ticks.c_str(), nullptr, 10);
      e.settime_flags = static_cast<std::uint32_t>(std::strtoul(flags.c_str(), nullptr, 8));
      bool realtime = e.clockid == CLOCK_REALTIME || e.clockid == CLOCK_REALTIME_ALARM;
      if ((e.settime_flags & TFD_TIMER_ABSTIME) != 0 && realtime && e.value_ns > 0) {
        // A wall-clock deadline stays one: the restore sets it again as such.
        struct timespec now;
        ::clock_gettime(CLOCK_REALTIME, &now);
        e.wall_ns = static_cast<std::int64_t>(now.tv_sec) * kNs + now.tv_nsec + e.value_ns;
      }
      break;
    }
    case EventKind::kInotify: {
      for (const auto& l : ParseInotify(info)) {
        std::string path = WatchedPath(l);
        if (path.empty()) {
          return NotSupported(what + " watches (wd " + std::to_string(l.wd) +
                              ") a file that has no path any more");
        }
        e.inotify.push_back({l.wd, l.mask, path});
      }
      std::sort(e.inotify.begin(), e.inotify.end(),
                [](const InotifyWatch& a, const InotifyWatch& b) { return a.wd < b.wd; });
      ASSIGN_OR_RETURN(int mine, CopyFdOf(pid, fd));
      int queued = 0;
      if (::ioctl(mine, FIONREAD, &queued) == 0 && queued > 0) e.count = static_cast<std::uint64_t>(queued);
      ::close(mine);
      break;
    }
    case EventKind::kEpoll: {
      std::set<int> seen;
      for (const auto& wl : ParseWatches(info)) {
        if (!seen.insert(wl.w.tfd).second || !WatchTargetMatches(pid, fd, wl, true)) {
          return NotSupported(what + " watches a file the process no longer holds as fd " +
                              std::to_string(wl.w.tfd) + " (closed or replaced after it was added)");
        }
        e.watches.push_back(wl.w);
      }
      break;
    }
  }
  return e;
}

Status NumberEventFiles(const std::vector<pid_t>& pids, const std::vector<ProcessModel*>& models) {
  std::uint32_t next = 0;
  for (std::size_t i = 0; i < models.size(); ++i) {
    for (auto& e : models[i]->events) {
      bool shared = false;
      for (std::size_t j = 0; j < i && !shared; ++j) {
        for (const auto& o : models[j]->events) {
          if (o.kind != e.kind || ::syscall(SYS_kcmp, pids[j], pids[i], KCMP_FILE, o.fd, e.fd) != 0) continue;
          // An epoll file shared by members (as after fork): its watches
          // are one set, which the first holder adds at the restore. Each
          // holder's dump proved (kcmp) that it holds every watched file
          // under the watch's number, so the first one can add them all.
          if (e.kind == EventKind::kEpoll) e.watches.clear();
          e.object = o.object;
          shared = true;
          break;
        }
      }
      if (!shared) e.object = next++;
    }
  }
  return Status::Ok();
}

namespace {

// An inotify file with e's watches, each under its old number: the kernel
// numbers watches one after another, so a number is reached by adding (and
// removing) the watch until it gets it. The IN_IGNORED events those
// removals queue are read away before the process gets the file.
Result<int> CreateInotify(const EventFile& e, const std::string& what) {
  int fd = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (fd < 0) return PosixError("inotify_init1", what, errno);
  Status st;
  for (const auto& w : e.inotify) {
    int got = -1;
    for (int tries = 0; tries <= w.wd && st.ok(); ++tries) {
      got = ::inotify_add_watch(fd, w.path.c_str(), w.mask);
      if (got < 0) st = PosixError("inotify_add_watch", w.path + " (" + what + ")", errno);
      if (got < 0 || got >= w.wd) break;
      (void)::inotify_rm_watch(fd, got);
    }
    if (st.ok() && got != w.wd) {
      st = Internal(what + ": the watch of " + w.path + " got number " + std::to_string(got) + ", not " +
                    std::to_string(w.wd));
    }
    if (!st.ok()) break;
  }
  char buf[4096];
  while (st.ok() && ::read(fd, buf, sizeof buf) > 0) {
  }
  if (st.ok() && ::fcntl(fd, F_SETFL, 0) != 0) st = PosixError("fcntl(F_SETFL)", what, errno);
  if (!st.ok()) {
    ::close(fd);
    return st;
  }
  return fd;
}

}  // namespace

Result<int> CreateEventFile(const EventFile& e) {
  std::string what = std::string(EventKindName(e.kind)) + " fd " + std::to_string(e.fd);
  int fd = -1;
  switch (e.kind) {
    case EventKind::kEventfd: {
      fd = ::eventfd(0, EFD_CLOEXEC | (e.semaphore ? EFD_SEMAPHORE : 0));
      if (fd < 0) return PosixError("eventfd", what, errno);
      if (e.count != 0 && ::write(fd, &e.count, sizeof e.count) != sizeof e.count) {
        int err = errno;
        ::close(fd);
        return PosixError("write the counter of", what, err);
      }
      return fd;
    }
    case EventKind::kSignalfd: {
      sigset_t set;
      sigemptyset(&set);
      for (int s = 1; s <= 64; ++s) {
        if ((e.sigmask >> (s - 1)) & 1) sigaddset(&set, s);
      }
      fd = ::signalfd(-1, &set, SFD_CLOEXEC);
      if (fd < 0) return PosixError("signalfd", what, errno);
      return fd;
    }
    case EventKind::kTimerfd: {
      fd = ::timerfd_create(e.clockid, TFD_CLOEXEC);
      if (fd < 0) return PosixError("timerfd_create", what, errno);
      struct itimerspec its;
      its.it_interval = ToTimespec(e.interval_ns);
      its.it_value = ToTimespec(e.wall_ns != 0 ? e.wall_ns : e.value_ns);
      int flags = e.wall_ns != 0 ? static_cast<int>(e.settime_flags) : 0;
      Status st;
      if (e.value_ns != 0 && ::timerfd_settime(fd, flags, &its, nullptr) != 0)
        st = PosixError("timerfd_settime", what, errno);
      // Settime cleared the expirations; those not yet read come back now.
      if (st.ok() && e.count != 0 && ::ioctl(fd, TFD_IOC_SET_TICKS, &e.count) != 0)
        st = PosixError("ioctl(TFD_IOC_SET_TICKS)", what, errno);
      if (!st.ok()) {
        ::close(fd);
        return st;
      }
      return fd;
    }
    case EventKind::kEpoll:
      fd = ::epoll_create1(EPOLL_CLOEXEC);
      if (fd < 0) return PosixError("epoll_create1", what, errno);
      return fd;
    case EventKind::kInotify:
      return CreateInotify(e, what);
  }
  return Internal("unknown event file kind");
}

int ChildAddEpollWatches(const std::vector<EventFile>& events, const char** what) {
  for (const auto& e : events) {
    if (e.kind != EventKind::kEpoll) continue;
    for (const auto& w : e.watches) {
      struct epoll_event ev;
      std::memset(&ev, 0, sizeof ev);
      ev.events = w.events;
      ev.data.u64 = w.data;
      if (::epoll_ctl(e.fd, EPOLL_CTL_ADD, w.tfd, &ev) != 0) return *what = "epoll_ctl(EPOLL_CTL_ADD)", errno;
    }
  }
  return 0;
}

std::string ProbeEventFiles() {
  std::string failed;
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  int tfd = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0));
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  std::uint64_t ticks = 2;
  if (ep < 0 || tfd < 0 || ::epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) != 0) {
    failed = std::string("epoll/timerfd: ") + std::strerror(errno);
  } else if (::ioctl(tfd, TFD_IOC_SET_TICKS, &ticks) != 0) {
    failed = std::string("TFD_IOC_SET_TICKS: ") + std::strerror(errno);
  } else {
    struct kcmp_epoll_slot slot = {static_cast<__u32>(ep), static_cast<__u32>(tfd), 0};
    if (::syscall(SYS_kcmp, ::getpid(), ::getpid(), KCMP_EPOLL_TFD, tfd, &slot) != 0) {
      failed = std::string("kcmp(KCMP_EPOLL_TFD): ") + std::strerror(errno);
    } else {
      int mine = pidfd < 0 ? -1 : static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, tfd, 0));
      if (mine < 0) failed = std::string("pidfd_getfd: ") + std::strerror(errno);
      if (mine >= 0) ::close(mine);
    }
  }
  for (int fd : {ep, tfd, pidfd}) {
    if (fd >= 0) ::close(fd);
  }
  return failed;
}

}  // namespace ckpt::engine
