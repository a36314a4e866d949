#include "engine/precheck.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "engine/eventfds.h"
#include "engine/filetable.h"
#include "engine/incremental.h"
#include "engine/proc.h"
#include "engine/unix_sockets.h"

namespace ckpt::engine {

namespace {

// Why a process cannot be dumped; one explanation per kind in the message.
enum class Why { kTracer, kState, kSeccomp, kFd, kLock, kTimer, kMapping, kIpcNs, kPipe, kShared };

struct Problem {
  pid_t pid = 0;
  Why why = Why::kState;
  std::string what;  // "fd 3 (/tmp/x) holds ...", without the process
};

// One descriptor of a pipe.
struct PipeFd {
  pid_t pid = 0;
  int fd = -1;
  bool write = false;
};
using PipeMap = std::map<std::uint64_t, std::vector<PipeFd>>;  // inode -> descriptors

// One event file (eventfd, signalfd, timerfd, epoll) or socket descriptor
// of a checked process.
struct EventFd {
  pid_t pid = 0;
  int fd = -1;
  std::string link;
};

std::string Who(pid_t pid) {
  return "process " + std::to_string(pid) + " (" + CommOf(pid) + ")";
}

// Another tracer and seccomp, per thread (both are per-thread state).
void CheckThreads(pid_t pid, bool frozen, std::vector<Problem>* out) {
  for (int tid : ListNumbered(ProcPath(pid, "task"))) {
    auto st = ReadProcFile(pid, "task/" + std::to_string(tid) + "/status");
    if (!st.ok()) continue;  // the thread exited meanwhile
    std::string thread = tid == pid ? "" : "thread " + std::to_string(tid) + " ";
    pid_t tracer = std::atoi(TextField(*st, "TracerPid").c_str());
    if (!frozen && tracer != 0 && tracer != ::getpid()) {
      out->push_back({pid, Why::kTracer,
                      thread + "is traced by " + Who(tracer) + " (TracerPid in " +
                          ProcPath(pid, tid == pid ? "status" : "task/" + std::to_string(tid) + "/status") +
                          ")"});
    }
    std::string seccomp = TextField(*st, "Seccomp");
    if (!seccomp.empty() && seccomp != "0") {
      out->push_back({pid, Why::kSeccomp,
                      thread + "runs under seccomp (" + (seccomp == "1" ? "strict mode" : "a filter") + ")"});
    }
  }
}

// Kernel threads, zombies, 32-bit programs, a deleted working directory.
// False if there is nothing more to check (a zombie member, a kernel thread).
Result<bool> CheckState(pid_t pid, bool root, std::vector<Problem>* out) {
  auto stat = ReadStat(pid);
  if (!stat.ok()) {
    if (stat.status().code() == Code::kNotFound)
      return NotFound("process " + std::to_string(pid) + " does not exist");
    return stat.status();
  }
  constexpr unsigned long kPfKthread = 0x00200000;
  if (stat->size() > 6 && (std::strtoul((*stat)[6].c_str(), nullptr, 10) & kPfKthread) != 0) {
    out->push_back({pid, Why::kState, "is a kernel thread"});
    return false;
  }
  if (!stat->empty() && ((*stat)[0] == "Z" || (*stat)[0] == "X")) {
    if (root) {
      bool threads = ListNumbered(ProcPath(pid, "task")).size() > 1;
      out->push_back({pid, Why::kState,
                      threads ? "has a main thread that exited (a zombie leader is not supported)"
                              : "has exited (a zombie its parent has not reaped)"});
    }
    return false;
  }
  auto cwd = ReadLink(ProcPath(pid, "cwd"));
  bool deleted = false;
  if (cwd.ok()) StripDeleted(*cwd, &deleted);
  if (deleted) out->push_back({pid, Why::kState, "has a working directory that was deleted (" + *cwd + ")"});
  int exe = ::open(ProcPath(pid, "exe").c_str(), O_RDONLY | O_CLOEXEC);
  if (exe >= 0) {
    unsigned char ident[EI_NIDENT] = {0};
    bool elf32 = ::pread(exe, ident, sizeof ident, 0) == static_cast<ssize_t>(sizeof ident) &&
                 std::memcmp(ident, ELFMAG, SELFMAG) == 0 && ident[EI_CLASS] == ELFCLASS32;
    ::close(exe);
    if (elf32) {
      auto path = ReadLink(ProcPath(pid, "exe"));
      out->push_back({pid, Why::kState,
                      "runs 32-bit code (" + (path.ok() ? *path : std::string("its executable")) +
                          "); only x86-64 processes are supported"});
    }
  }
  return true;
}

// "a POSIX (fcntl) write lock on bytes 0-99" from an fdinfo "lock:" line:
// "1: POSIX  ADVISORY  WRITE 1234 fe:00:5678 0 99".
std::string DescribeLock(const std::string& line, pid_t holder) {
  std::istringstream in(line);
  std::string id, kind, mode, type, locker, inode, start, end;
  in >> id >> kind >> mode >> type >> locker >> inode >> start >> end;
  std::transform(type.begin(), type.end(), type.begin(), [](unsigned char c) { return std::tolower(c); });
  std::string range =
      end == "EOF" ? "bytes " + start + " to the end of the file" : "bytes " + start + "-" + end;
  if (end == start) range = "byte " + start;
  std::string d;
  if (kind == "FLOCK") {
    d = std::string("an flock() ") +
        (type == "read"    ? "shared"
         : type == "write" ? "exclusive"
                           : type.c_str()) +
        " lock";
  } else if (kind == "POSIX") {
    d = "a POSIX (fcntl) " + type + " lock on " + range;
  } else if (kind == "OFDLCK") {
    d = "an OFD (open file description) " + type + " lock on " + range;
  } else if (kind == "LEASE" || kind == "DELEG") {
    d = std::string(kind == "LEASE" ? "a " : "an NFS delegation, ") + type + " lease";
  } else {
    d = "a " + kind + " " + type + " lock";
  }
  pid_t by = std::atoi(locker.c_str());
  if (kind == "FLOCK" && by > 0 && by != holder) {
    d += " taken by " + Who(by) + " and shared through an inherited descriptor";
  }
  return d;
}

// Every descriptor: the kinds the engine cannot save, the locks held
// through it, and pipe ends (into `pipes`).
// Another process holding the open file description of descriptor `fd` of
// `pid` (a file with stat `st`), found by kcmp; 0 if none.
pid_t DescriptionSharedWith(pid_t pid, int fd, const struct stat& st) {
  for (int p : ListNumbered("/proc")) {
    if (p == pid || p == ::getpid()) continue;
    std::string dir = "/proc/" + std::to_string(p) + "/fd/";
    for (int n : ListNumbered(dir)) {
      struct stat o;
      if (::stat((dir + std::to_string(n)).c_str(), &o) != 0 || o.st_ino != st.st_ino ||
          o.st_dev != st.st_dev)
        continue;
      if (::syscall(SYS_kcmp, pid, p, KCMP_FILE, fd, n) == 0) return p;
    }
  }
  return 0;
}

void CheckFds(pid_t pid, std::vector<Problem>* out, PipeMap* pipes, std::vector<EventFd>* events) {
  for (int n : ListNumbered(ProcPath(pid, "fd"))) {
    std::string link_path = ProcPath(pid, "fd/" + std::to_string(n));
    auto link = ReadLink(link_path);
    struct stat st;
    if (!link.ok() || ::stat(link_path.c_str(), &st) != 0) continue;  // closed meanwhile
    std::string fd = "fd " + std::to_string(n);
    auto info = ReadProcFile(pid, "fdinfo/" + std::to_string(n));
    if (!info.ok()) continue;
    const std::string& l = *link;
    if (IsDirtyTracker(l, *info)) continue;  // ckpt's own (--pre): not saved
    EventKind kind;
    if (EventFileKind(l, &kind)) {
      std::string problem = EventFileProblem(pid, n, kind, *info);
      if (!problem.empty()) out->push_back({pid, Why::kFd, problem});
      if (events != nullptr) events->push_back({pid, n, l});
    } else if (l.compare(0, 8, "socket:[") == 0) {
      // Decided for all the processes together (CheckSockets); after the
      // freeze, by the dump itself.
      if (events != nullptr) events->push_back({pid, n, l});
    } else if (l.compare(0, 5, "pipe:") == 0) {
      std::uint32_t flags =
          static_cast<std::uint32_t>(std::strtoul(TextField(*info, "flags").c_str(), nullptr, 8));
      if (pipes != nullptr) pipes->operator[](st.st_ino).push_back({pid, n, (flags & O_ACCMODE) == O_WRONLY});
    } else if (l.empty() || l[0] != '/') {
      out->push_back({pid, Why::kFd, fd + " is " + l});
    } else if (S_ISBLK(st.st_mode) || S_ISSOCK(st.st_mode)) {
      out->push_back(
          {pid, Why::kFd, fd + " (" + l + ") is a " + (S_ISBLK(st.st_mode) ? "block device" : "socket")});
    }
    std::size_t p = 0;
    while ((p = info->find("lock:", p)) != std::string::npos) {
      std::size_t e = info->find('\n', p);
      std::string line = info->substr(p + 5, e == std::string::npos ? std::string::npos : e - p - 5);
      p = e == std::string::npos ? info->size() : e;
      std::istringstream ls(line);
      std::string id, kind;
      ls >> id >> kind;
      if (kind == "POSIX") continue;  // saved: owned by the process
      if (kind == "FLOCK" || kind == "OFDLCK") {
        // Saved, unless its open file description is shared: a restore
        // would give each holder its own, and the lock to one of them.
        pid_t other = DescriptionSharedWith(pid, n, st);
        if (other == 0) continue;
        std::string d = DescribeLock(line, pid);
        if (d.find("inherited descriptor") == std::string::npos)
          d += " on an open file description " + Who(other) + " shares";
        out->push_back({pid, Why::kLock, fd + " (" + l + ") holds " + d});
        continue;
      }
      out->push_back({pid, Why::kLock, fd + " (" + l + ") holds " + DescribeLock(line, pid)});
    }
  }
}

// An event file that a process outside the dumped set holds too (found by
// kcmp against every descriptor of the same kind on the machine).
void CheckEventFilesOutside(const std::vector<EventFd>& events, const std::set<pid_t>& inside,
                            std::vector<Problem>* out) {
  if (events.empty()) return;
  std::set<std::string> kinds;
  for (const auto& e : events) kinds.insert(e.link);
  std::set<std::pair<pid_t, int>> reported;
  for (int p : ListNumbered("/proc")) {
    if (inside.count(p) != 0 || p == ::getpid()) continue;
    std::string dir = "/proc/" + std::to_string(p) + "/fd/";
    for (int n : ListNumbered(dir)) {
      auto link = ReadLink(dir + std::to_string(n));
      if (!link.ok() || kinds.count(*link) == 0) continue;
      for (const auto& e : events) {
        if (e.link != *link || reported.count({e.pid, e.fd}) != 0 ||
            ::syscall(SYS_kcmp, e.pid, p, KCMP_FILE, e.fd, n) != 0)
          continue;
        reported.insert({e.pid, e.fd});
        out->push_back({e.pid, Why::kShared,
                        "fd " + std::to_string(e.fd) + " (" + e.link + ") is shared with " + Who(p) +
                            " (its fd " + std::to_string(n) + "), outside the dumped set"});
      }
    }
  }
}

// The sockets of the checked processes: only Unix socket pairs whose both
// ends they hold are saved (unix_sockets.h).
void CheckSockets(const std::vector<EventFd>& fds, const std::vector<std::string>& external,
                  std::vector<Problem>* out) {
  std::set<std::uint32_t> inside;
  bool any = false;
  for (const auto& e : fds) {
    if (e.link.compare(0, 8, "socket:[") != 0) continue;
    inside.insert(static_cast<std::uint32_t>(std::strtoul(e.link.c_str() + 8, nullptr, 10)));
    any = true;
  }
  if (!any) return;
  auto all = ListUnixSockets();
  for (const auto& e : fds) {
    if (e.link.compare(0, 8, "socket:[") != 0) continue;
    auto ino = static_cast<std::uint32_t>(std::strtoul(e.link.c_str() + 8, nullptr, 10));
    std::string problem =
        all.ok() ? SocketProblem(e.pid, e.fd, ino, *all, inside, external)
                 : "fd " + std::to_string(e.fd) + " is " + e.link + " (" + all.status().message() + ")";
    if (!problem.empty()) out->push_back({e.pid, Why::kFd, problem});
  }
}

// "fe:00:1234": a device and inode as /proc/locks and fdinfo lock lines show them.
std::string InodeKey(unsigned major, unsigned minor, std::uint64_t ino) {
  char b[64];
  std::snprintf(b, sizeof b, "%02x:%02x:%llu", major, minor, static_cast<unsigned long long>(ino));
  return b;
}

// True if some descriptor of some process shows a lock on `key` (the lock is
// then held through that descriptor's open file description).
bool SomeDescriptorShowsLock(const std::string& key) {
  std::string needle = " " + key + " ";
  for (int p : ListNumbered("/proc")) {
    std::string dir = "/proc/" + std::to_string(p) + "/fd/";
    for (int n : ListNumbered(dir)) {
      struct stat st;
      if (::stat((dir + std::to_string(n)).c_str(), &st) != 0 ||
          InodeKey(major(st.st_dev), minor(st.st_dev), st.st_ino) != key)
        continue;
      auto info = ReadProcFile(p, "fdinfo/" + std::to_string(n));
      if (info.ok() && info->find("lock:") != std::string::npos && info->find(needle) != std::string::npos)
        return true;
    }
  }
  return false;
}

// An flock or OFD lock lives as long as its open file description, which a
// memory mapping keeps after the file's last descriptor is closed: then no
// fdinfo shows the lock. /proc/locks still lists it, by device and inode; a
// member that maps that inode, with no descriptor anywhere showing the
// lock, is taken to hold it through the mapping.
void CheckLocksThroughMappings(const std::vector<pid_t>& pids, std::vector<Problem>* out) {
  std::ifstream in("/proc/locks");
  std::map<std::string, std::string> locked;  // inode key -> kind and type ("FLOCK WRITE")
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::string id, kind, mode, type, pid, key;
    ls >> id >> kind;
    if (kind == "->") continue;  // a waiter, not a holder
    ls >> mode >> type >> pid >> key;
    if (kind == "FLOCK" || kind == "OFDLCK") locked.emplace(key, kind + " " + type);
  }
  if (locked.empty()) return;
  for (pid_t p : pids) {
    auto maps = ReadMaps(p, false);
    if (!maps.ok()) continue;
    std::set<std::string> done;
    for (const auto& e : *maps) {
      std::string key = InodeKey(e.dev_major, e.dev_minor, e.ino);
      auto it = locked.find(key);
      if (e.ino == 0 || it == locked.end() || !done.insert(key).second || SomeDescriptorShowsLock(key))
        continue;
      std::istringstream ks(it->second);
      std::string kind, type;
      ks >> kind >> type;
      std::string what = kind == "FLOCK"
                             ? std::string("an flock() ") + (type == "READ" ? "shared" : "exclusive")
                             : std::string("an OFD ") + (type == "READ" ? "read" : "write");
      out->push_back(
          {p, Why::kLock,
           "maps " + StripDeleted(e.path, nullptr) + ", on which " + what +
               " lock is held that no descriptor shows (held through a memory mapping of the file, "
               "its descriptors closed)"});
    }
  }
}

std::string ClockName(int id) {
  static const char* kNames[] = {"CLOCK_REALTIME",
                                 "CLOCK_MONOTONIC",
                                 "CLOCK_PROCESS_CPUTIME_ID",
                                 "CLOCK_THREAD_CPUTIME_ID",
                                 "CLOCK_MONOTONIC_RAW",
                                 "CLOCK_REALTIME_COARSE",
                                 "CLOCK_MONOTONIC_COARSE",
                                 "CLOCK_BOOTTIME",
                                 "CLOCK_REALTIME_ALARM",
                                 "CLOCK_BOOTTIME_ALARM",
                                 "clock 10",
                                 "CLOCK_TAI"};
  if (id >= 0 && id < static_cast<int>(sizeof kNames / sizeof *kNames)) return kNames[id];
  return id < 0 ? "a CPU-time clock of one process or thread" : "clock " + std::to_string(id);
}

// POSIX timers from /proc/PID/timers (blocks of "ID:", "signal:", "notify:",
// "ClockID:" lines).
Status CheckTimers(pid_t pid, std::vector<Problem>* out) {
  auto t = ReadProcFile(pid, "timers");
  if (!t.ok()) {
    if (t.status().code() == Code::kNotFound && ::access("/proc/self/timers", F_OK) != 0) {
      return NotSupported(
          "cannot tell whether process " + std::to_string(pid) +
          " uses POSIX timers: this kernel has no /proc/PID/timers (CONFIG_CHECKPOINT_RESTORE)");
    }
    return Status::Ok();  // gone meanwhile: the freeze says so
  }
  std::size_t p = 0;
  while ((p = t->find("ID:", p)) != std::string::npos) {
    std::size_t next = t->find("\nID:", p);
    std::string block = t->substr(p, next == std::string::npos ? std::string::npos : next + 1 - p);
    p = next == std::string::npos ? t->size() : next + 1;
    std::string sig = TextField(block, "signal");
    int signo = std::atoi(sig.c_str());
    std::string notify = TextField(block, "notify");
    int clock = std::atoi(TextField(block, "ClockID").c_str());
    bool saved = clock >= 0 && (notify.compare(0, 7, "signal/") == 0 || notify.compare(0, 5, "none/") == 0);
    if (saved) continue;
    std::string how =
        notify.compare(0, 5, "none/") == 0 ? "no signal (SIGEV_NONE)" : "signal " + std::to_string(signo);
    const char* abbrev = signo > 0 ? sigabbrev_np(signo) : nullptr;
    if (abbrev != nullptr && notify.compare(0, 5, "none/") != 0) how += std::string(" (SIG") + abbrev + ")";
    out->push_back({pid, Why::kTimer,
                    "has POSIX timer " + TextField(block, "ID") + " (" +
                        ClockName(std::atoi(TextField(block, "ClockID").c_str())) + ", " + how + ", notify " +
                        notify + ")"});
  }
  return Status::Ok();
}

// Mappings of character devices (as mm.cc refuses them).
void CheckMappings(pid_t pid, std::vector<Problem>* out) {
  auto maps = ReadMaps(pid, false);
  if (!maps.ok()) return;
  for (const auto& e : *maps) {
    if (e.path.empty() || e.path[0] != '/') continue;
    bool deleted = false;
    StripDeleted(e.path, &deleted);
    if (deleted) continue;
    struct stat st;
    std::string mf = ProcPath(pid, "map_files/" + HexAddr(e.start) + "-" + HexAddr(e.end));
    if (::stat(mf.c_str(), &st) == 0 && S_ISCHR(st.st_mode)) {
      out->push_back(
          {pid, Why::kMapping, "maps device " + e.path + " at " + HexAddr(e.start) + "-" + HexAddr(e.end)});
    }
  }
}

// Everything one process can be refused for, from /proc alone.
Status CheckProcess(pid_t pid, bool root, bool frozen, std::vector<Problem>* out, PipeMap* pipes,
                    std::vector<EventFd>* events) {
  ASSIGN_OR_RETURN(bool go_on, CheckState(pid, root, out));
  if (!go_on) return Status::Ok();
  CheckThreads(pid, frozen, out);
  CheckFds(pid, out, pipes, events);
  RETURN_IF_ERROR(CheckTimers(pid, out));
  CheckMappings(pid, out);
  return Status::Ok();
}

const char* Explanation(Why w) {
  switch (w) {
    case Why::kTracer:
      return "A thread has one tracer at most and ckpt must trace every thread it dumps: detach the other "
             "tracer (quit strace or gdb) and dump again.";
    case Why::kState:
      return "";
    case Why::kSeccomp:
      return "The engine cannot restore seccomp filters yet: a restored process would run without its "
             "sandbox.";
    case Why::kFd:
      return "Not supported by this engine version: TCP connections in any state but established, "
             "CLOSE_WAIT and FIN_WAIT2 (a connection closing: dump again in a moment), TCP or UDP sockets "
             "with data or connections "
             "waiting, bound or listening Unix sockets and Unix sockets whose peer is not dumped, io_uring, "
             "anonymous inodes other than eventfd, epoll, inotify, signalfd and timerfd, block devices, and "
             "epoll files watching descriptors the process closed.";
    case Why::kShared:
      return "The dump would split such a file in two: the process outside keeps the old one, the restored "
             "process gets a copy nobody else holds. Dump both together (--tree from a common ancestor).";
    case Why::kLock:
      return "Leases, and flock() and OFD locks on an open file description that another process shares or "
             "that only a memory mapping keeps, are not saved: a restored process would believe it still "
             "holds "
             "them while any other process could take them.";
    case Why::kTimer:
      return "POSIX timers on another process's CPU-time clock are not saved: a restored timer would never "
             "fire.";
    case Why::kMapping:
      return "Device mappings are not supported.";
    case Why::kIpcNs:
      return "The members of a tree must share one IPC namespace.";
    case Why::kPipe:
      return "Dumping would break such a pipe (once the dumped process is gone, the process at the other end "
             "gets end-of-file or SIGPIPE) and a restore could only reattach it while a process outside "
             "still "
             "holds it: dump both ends together (--tree from a common ancestor), or accept this with "
             "--external-pipes.";
  }
  return "";
}

// One error naming every problem, with one explanation per kind. After the
// freeze the caller's context names the dump and the process (`named`
// false: one process, not named again).
Status Refuse(const std::vector<Problem>& problems, pid_t root, bool tree, bool frozen, bool named = true) {
  std::string m =
      frozen ? ""
             : "cannot dump process " + std::to_string(root) + (tree ? " and its descendants" : "") + ": ";
  std::set<Why> kinds;
  bool tracer = false;
  // Grouped by process, in the order found: "process 7 (x) has ...; fd 3 ...".
  std::vector<pid_t> order;
  for (const Problem& p : problems) {
    if (std::find(order.begin(), order.end(), p.pid) == order.end()) order.push_back(p.pid);
  }
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (named) m += (i == 0 ? "" : "; ") + Who(order[i]);
    bool first = true;
    for (const Problem& p : problems) {
      if (p.pid != order[i]) continue;
      m += (first ? (named ? " " : "") : "; ") + p.what;
      first = false;
      kinds.insert(p.why);
      tracer = tracer || p.why == Why::kTracer;
    }
  }
  m += ".";
  for (Why w : kinds) {
    std::string e = Explanation(w);
    if (!e.empty()) m += " " + e;
  }
  if (frozen) {
    m += tree ? " The processes were stopped for a moment and run on."
              : " The process was stopped for a moment and runs on.";
  } else {
    m += tree ? " Nothing was stopped or changed: the processes run on untouched."
              : " Nothing was stopped or changed: the process runs on untouched.";
  }
  return tracer ? FailedPrecondition(m) : NotSupported(m);
}

std::string EndName(bool write) {
  return write ? "write end" : "read end";
}

// Every descriptor of a process outside `inside` (and not ckpt) that refers
// to one of the pipes in `inodes`.
// True if `pid` is below `root` in the process tree (now).
bool DescendsFrom(pid_t pid, pid_t root) {
  for (int depth = 0; depth < 256 && pid > 1; ++depth) {
    auto stat = ReadStat(pid);
    if (!stat.ok() || stat->size() < 2) return false;
    pid = std::atoi((*stat)[1].c_str());
    if (pid == root) return true;
  }
  return false;
}

// `tree_root` (0: none): a holder below it is inside too — a child the tree
// forked after it was listed (it is frozen with the tree).
PipeMap FindOutsideHolders(const std::set<std::uint64_t>& inodes, const std::set<pid_t>& inside,
                           pid_t tree_root) {
  PipeMap out;
  if (inodes.empty()) return out;
  for (int p : ListNumbered("/proc")) {
    if (inside.count(p) != 0 || p == ::getpid()) continue;
    std::string dir = "/proc/" + std::to_string(p) + "/fd/";
    int below_root = -1;  // DescendsFrom(p, tree_root), asked once p holds one of the pipes
    for (int n : ListNumbered(dir)) {
      char buf[64];
      ssize_t len = ::readlink((dir + std::to_string(n)).c_str(), buf, sizeof buf - 1);
      if (len <= 6 || std::strncmp(buf, "pipe:[", 6) != 0) continue;
      buf[len] = 0;
      std::uint64_t ino = std::strtoull(buf + 6, nullptr, 10);
      if (inodes.count(ino) == 0) continue;
      if (below_root < 0) below_root = tree_root != 0 && DescendsFrom(p, tree_root) ? 1 : 0;
      if (below_root == 1) break;
      auto info = ReadProcFile(p, "fdinfo/" + std::to_string(n));
      std::uint32_t flags =
          info.ok() ? static_cast<std::uint32_t>(std::strtoul(TextField(*info, "flags").c_str(), nullptr, 8))
                    : 0;
      out[ino].push_back({p, n, (flags & O_ACCMODE) == O_WRONLY});
    }
  }
  return out;
}

// "fds 1, 2 are the write end of pipe:[5]; its read end is held outside the
// dumped processes by process 7 (cat) fd 0".
std::string DescribeExternalPipe(std::uint64_t ino, const std::vector<PipeFd>& mine,
                                 const std::vector<PipeFd>& outside) {
  std::string fds;
  for (const auto& f : mine) fds += (fds.empty() ? "" : ", ") + std::to_string(f.fd);
  bool write = mine.front().write;
  std::string d = (mine.size() > 1 ? "fds " + fds + " are the " : "fd " + fds + " is the ") + EndName(write) +
                  " of pipe:[" + std::to_string(ino) + "], ";
  bool other_end =
      std::any_of(outside.begin(), outside.end(), [&](const PipeFd& o) { return o.write != write; });
  d += other_end ? "whose " + EndName(!write) + " is held outside the dumped processes by "
                 : "which is also held outside the dumped processes by ";
  std::size_t shown = 0;
  for (const auto& o : outside) {
    if (other_end && o.write == write) continue;
    if (shown == 3) {
      d += " and others";
      break;
    }
    d += (shown == 0 ? "" : ", ") + Who(o.pid) + " fd " + std::to_string(o.fd);
    ++shown;
  }
  return d;
}

// Classifies the pipes in `pipes` (held by the processes in `inside`):
// external ones become problems, or notes when they are accepted.
void ClassifyPipes(const PipeMap& pipes, const std::set<pid_t>& inside, pid_t tree_root, bool accept,
                   PipeCensus* census, std::vector<Problem>* problems) {
  std::set<std::uint64_t> inodes;
  for (const auto& [ino, fds] : pipes) {
    census->seen.insert(ino);
    inodes.insert(ino);
  }
  PipeMap outside = FindOutsideHolders(inodes, inside, tree_root);
  for (const auto& [ino, holders] : outside) {
    census->external.insert(ino);
    // One problem per process and end.
    std::map<std::pair<pid_t, bool>, std::vector<PipeFd>> mine;
    for (const auto& f : pipes.at(ino)) mine[{f.pid, f.write}].push_back(f);
    for (const auto& [key, fds] : mine) {
      std::string d = DescribeExternalPipe(ino, fds, holders);
      if (accept) {
        census->notes.push_back(Who(key.first) + " " + d +
                                ": kept as it is; the restore reopens this pipe through a process that still "
                                "holds it");
      } else {
        problems->push_back({key.first, Why::kPipe, d});
      }
    }
  }
}

}  // namespace

Result<PipeCensus> PrecheckDump(pid_t root, bool tree, bool external_pipes,
                                const std::vector<std::string>& external_unix) {
  std::vector<pid_t> pids = tree ? WithDescendants({root}) : std::vector<pid_t>{root};
  std::vector<Problem> problems;
  PipeMap pipes;
  std::vector<EventFd> events;
  struct stat root_ns;
  bool have_root_ns = ::stat(ProcPath(root, "ns/ipc").c_str(), &root_ns) == 0;
  for (pid_t p : pids) {
    Status st = CheckProcess(p, p == root, false, &problems, &pipes, &events);
    if (!st.ok() && p == root) return st;  // (a descendant that exited meanwhile is not a member)
    struct stat ns;
    if (have_root_ns && ::stat(ProcPath(p, "ns/ipc").c_str(), &ns) == 0 && ns.st_ino != root_ns.st_ino) {
      problems.push_back(
          {p, Why::kIpcNs, "lives in another IPC namespace than process " + std::to_string(root)});
    }
  }
  CheckLocksThroughMappings(pids, &problems);
  CheckEventFilesOutside(events, std::set<pid_t>(pids.begin(), pids.end()), &problems);
  CheckSockets(events, external_unix, &problems);
  PipeCensus census;
  ClassifyPipes(pipes, std::set<pid_t>(pids.begin(), pids.end()), tree ? root : 0, external_pipes, &census,
                &problems);
  if (!problems.empty()) return Refuse(problems, root, tree, false);
  return census;
}

Status RecheckFrozen(pid_t pid) {
  std::vector<Problem> problems;
  RETURN_IF_ERROR(CheckProcess(pid, false, true, &problems, nullptr, nullptr));
  if (!problems.empty()) return Refuse(problems, pid, false, true, false);
  return Status::Ok();
}

Status CensusNewPipes(const std::vector<pid_t>& members, const std::vector<ProcessModel*>& models,
                      bool external_pipes, PipeCensus* census) {
  PipeMap fresh;
  for (std::size_t i = 0; i < models.size(); ++i) {
    for (const auto& f : models[i]->fds) {
      if (f.kind == FdKind::kPipe && census->seen.count(f.pipe_ino) == 0)
        fresh[f.pipe_ino].push_back({members[i], f.fd, f.pipe_write_end});
    }
  }
  if (fresh.empty()) return Status::Ok();
  std::vector<Problem> problems;
  ClassifyPipes(fresh, std::set<pid_t>(members.begin(), members.end()), 0, external_pipes, census, &problems);
  if (!problems.empty()) return Refuse(problems, members.front(), members.size() > 1, true);
  return Status::Ok();
}

}  // namespace ckpt::engine
